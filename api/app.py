"""The ASGI application: ``/graphql``, ``/healthz`` (liveness) and ``/readyz`` (readiness).

Run it with ``newsgraph serve``, or with any ASGI server::

    uvicorn --factory api.app:create_app      # settings from the environment
    uvicorn api.app:app                       # the same, as a module attribute

The app holds no state between requests beyond the store's connection pool,
so any number of workers or hosts can serve the same store.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from cross_web import HTTPException
from graphql import ExperimentalIncrementalExecutionResults as GraphQLIncrementalExecutionResults
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from api import deadline, incremental, observe
from api.caching import QueryCaching
from api.context import Context, is_admin
from api.data import Gateway
from api.deadline import RequestGuard
from api.errors import error_code
from api.explorer import Explorer
from api.feed import Feed
from api.limits import BodyLimit
from api.media import GRAPHQL_RESPONSE, JSON, is_request_error, negotiate
from api.metrics import Metrics
from api.requests import RegularRequests
from api.schema import build_schema
from api.slots import RETRY_AFTER_S, StoreSlots
from api.websocket import Connection, Connections, Socket
from core.config import Settings
from core.store import Store, StoreUnavailable, connect

if TYPE_CHECKING:  # strawberry's own HTTP layer, named in a signature only
    from cross_web import AsyncHTTPRequestAdapter

log = logging.getLogger("newsgraph.api")

#: No operation needs a longer name; graphql-core would echo any it cannot find.
MAX_OPERATION_NAME = 200


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with newsgraph's context and a faster encoder;
    subscriptions over WebSocket (``api.websocket``) at the same path."""

    graphql_transport_ws_handler_class = Connection
    websocket_adapter_class = Socket

    def __init__(
        self, settings: Settings, gateway: Gateway, explorer: Explorer, feed: Feed
    ) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.introspection else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_s),
            max_subscriptions_per_connection=None,  # api.websocket counts them
            # A browser page on another origin may subscribe as it may query.
            allowed_origins=cors_origins(settings),
        )
        self.settings = settings
        self.gateway = gateway
        self.explorer = explorer
        self.feed = feed
        self.connections = Connections(settings.ws_connections_max)

    async def render_graphql_ide(self, request: Request) -> Response:
        if self.explorer.local:
            return self.explorer.render()
        return await super().render_graphql_ide(request)  # loads GraphiQL from a CDN

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A hash-only persisted-query GET has no `query` either: it wants data.
        return "extensions" not in request.query_params and super().should_render_graphql_ide(
            request
        )

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        if isinstance(request, Request):
            # Negotiated before anything runs, so a client that can read
            # neither media type costs no parsing; the explorer is HTML.
            accept = request.headers.get("accept")
            media_type = negotiate(accept)
            if incremental.start(accept).multipart and media_type is None:
                # Its parts are application/json: a multipart reader reads that.
                media_type = JSON
            if media_type is None and not self.should_render_graphql_ide(
                self.request_adapter_class(request)
            ):
                raise HTTPException(
                    406, f"not acceptable: ask for {GRAPHQL_RESPONSE} or application/json"
                )
            sub_response.media_type = media_type
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        if sub_response.media_type != GRAPHQL_RESPONSE:
            return super().create_response(response_data, sub_response)
        if sub_response.status_code and isinstance(response_data, dict):
            # Under this media type a 4xx or 5xx means "not executed" (a request
            # error, or shed with 503 to be retried whole), so it has no `data`.
            response_data = response_data.copy()
            response_data.pop("data", None)
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = GRAPHQL_RESPONSE
        return response

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        name = request_data.operation_name
        if not isinstance(name, str | None):
            # Not a GraphQL request at all: refused as strawberry refuses a
            # `query` that is not a string (graphql-core would crash on it).
            raise HTTPException(
                400,
                "The GraphQL operation's `operationName` must be a string or null, if provided.",
            )
        if name is not None and len(name) > MAX_OPERATION_NAME:
            # Refused as graphql-core refuses an unknown name, but without
            # echoing it: the name is the client's text, of any length.
            message = f"operationName is over {MAX_OPERATION_NAME} characters long"
            error = GraphQLError(message, extensions={"code": "BAD_REQUEST"})
            result = ExecutionResult(data=None, errors=[error])
        else:
            stats = observe.current()
            if stats is not None:
                stats.operation = name
            budget = deadline.current()
            if budget is not None:
                budget.running = True  # the deadline's backstop answers it as run
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        if isinstance(result, GraphQLIncrementalExecutionResults):
            # Executing, so not a request error; streamed as multipart/mixed
            # (run() does it), each part in 200's body like any field error.
            return result
        budget = deadline.current()
        if budget is not None and budget.shed:
            # Shed, not failed: nothing is wrong with the query, and a 503 with
            # Retry-After is what clients, proxies and load balancers retry.
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(RETRY_AFTER_S)
            sub_response.headers["Cache-Control"] = "no-store"
        elif sub_response.media_type == GRAPHQL_RESPONSE and is_request_error(
            result.data, result.errors
        ):
            # The media type's own rule: a request that failed before it ran
            # (no `data`) is a 400; field errors with data stay a 200.
            sub_response.status_code = 400
        return result

    async def _process_stream_result(
        self, request: Request, value: Any, all_pending: list[Any]
    ) -> tuple[GraphQLHTTPResponse, list[Any]]:
        response, all_pending = await super()._process_stream_result(request, value, all_pending)
        # strawberry gives each deferred payload its fragment's path, as the
        # 20220824 format Apollo Client reads wants; but that format wants the
        # path of the payload itself, which is deeper by the current draft's
        # `subPath` when fields already sent are left out of the payload.
        for payload in response.get("incremental") or ():
            if "subPath" in payload:
                payload["path"] = [*payload["path"], *payload["subPath"]]
        return response, all_pending

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        stats = observe.current()
        if stats is not None and result.errors:
            stats.error_codes.extend(error_code(e) for e in result.errors)
        return await super().process_result(request, result)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        admin = is_admin(request.headers.get("authorization"), self.settings.admin_token)
        return Context(gateway=self.gateway, admin=admin)

    def parse_query_params(self, params: Mapping[str, str | None]) -> dict[str, Any]:
        # A GET's `variables` and `extensions` are JSON values of their own, and
        # `null` means none (decode_json below refuses a bare null as a body).
        given = {
            k: None if k in ("variables", "extensions") and v == "null" else v
            for k, v in params.items()
        }
        return super().parse_query_params(given)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        # strawberry answers json.JSONDecodeError with a 400. orjson raises a
        # subclass of it for invalid UTF-8 too (json.loads would raise
        # UnicodeDecodeError: a 500), and a body that is JSON but not an object
        # (`null`, `"x"`) is refused the same way rather than crashing the view.
        parsed = orjson.loads(data)
        if not isinstance(parsed, dict | list):
            raise json.JSONDecodeError("expected a JSON object with a `query`", str(data)[:20], 0)
        return parsed


def create_app(
    settings: Settings | None = None, store: Store | None = None, gateway: Gateway | None = None
) -> Starlette:
    """The app over ``store`` (by default the one the settings name). A
    ``gateway`` given replaces the one made over it: the benchmark passes one
    that answers from memory, to time the API with the store taken out."""
    settings = settings or Settings.from_env()
    if gateway is None:
        store = store or connect(settings)
        slots = StoreSlots(settings.store_concurrency, settings.store_queue_ms)
        gateway = Gateway(store, settings.store_op_timeout_ms, slots)
    store, slots = gateway.store, gateway.slots
    explorer = Explorer(Path(settings.graphiql_assets) if settings.graphiql_assets else None)
    feed = Feed(
        gateway,
        settings.subscription_poll_ms,
        settings.subscription_queue,
        settings.subscriptions_max,
        settings.request_timeout_ms,
    )
    graphql = GraphQLApp(settings, gateway, explorer, feed)

    async def healthz(request: Request) -> Response:
        # Liveness: the process serves requests. It touches no store, so an
        # outage or a busy store never gets a healthy process restarted.
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        # Readiness: whether this instance can answer queries now, from the
        # driver's view of the topology (no round trip queued behind busy slots).
        ready = gateway.ready()
        body = {
            "status": "ready" if ready else "unavailable",
            "store": "up" if ready else "down",
            "store_calls_in_flight": slots.in_flight,
            "store_call_slots": slots.size,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A store that is down at start must not stop the API from starting:
        # /readyz says 503 until it answers, and queries fail clearly meanwhile.
        try:
            await anyio.to_thread.run_sync(store.ensure_indexes)
        except StoreUnavailable as exc:
            log.warning("starting without the store: %s", exc)
        yield
        await feed.close()

    metrics = Metrics()
    metrics.follow(feed)
    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if settings.introspection:
        routes.append(Route("/graphiql/{name}", explorer.asset, methods=["GET"]))
    if settings.metrics:
        routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    origins = cors_origins(settings)
    middleware = [
        # Outermost, so it times and counts everything, refusals included.
        Middleware(observe.Observe, metrics=metrics, log_requests=settings.access_log),
        Middleware(RegularRequests),
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        ),
        # Inside CORS, so a browser can read the TIMEOUT it answers with.
        Middleware(RequestGuard, timeout_ms=settings.request_timeout_ms),
        # Mobile clients on slow networks: article lists are repetitive JSON.
        Middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes),
        Middleware(QueryCaching, max_age=settings.cache_max_age),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


def cors_origins(settings: Settings) -> list[str]:
    return [o.strip() for o in settings.cors_origins.split(",") if o.strip()]


app: Starlette  # made on first access, by __getattr__ below


def __getattr__(name: str) -> Any:
    """``api.app:app``, created on first use from the environment's settings."""
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
