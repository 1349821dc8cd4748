"""Strawberry's ASGI view, fitted to newsgraph: the request's context, media
types negotiated before anything runs, status codes by the
``application/graphql-response+json`` rules, requests shed with 503, and
subscriptions over WebSocket (``api.http.websocket``) at the same path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from cross_web import HTTPException
from graphql import ExperimentalIncrementalExecutionResults as GraphQLIncrementalExecutionResults
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from api.data.deadline import current_deadline
from api.data.gateway import Gateway
from api.data.slots import RETRY_AFTER_S
from api.errors import error_code
from api.http.explorer import Explorer
from api.http.media import GRAPHQL_RESPONSE, JSON, accepts_multipart, is_request_error, negotiate
from api.http.websocket import Connections, Socket, TransportWSHandler
from api.live.feed import Feed
from api.operation import incremental
from api.operation.schema import build_schema
from api.schema.context import Context, is_admin
from api.telemetry.stats import current_stats
from core.config import Settings

if TYPE_CHECKING:  # strawberry's own HTTP layer, named in a signature only
    from cross_web import AsyncHTTPRequestAdapter

log = logging.getLogger("newsgraph.api")


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with newsgraph's context and a faster encoder;
    subscriptions over WebSocket (``api.http.websocket``) at the same path."""

    graphql_transport_ws_handler_class = TransportWSHandler
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
            max_subscriptions_per_connection=None,  # api.http.websocket counts them
            # A browser page on another origin may subscribe as it may query.
            allowed_origins=cors_origins(settings),
        )
        self.settings = settings
        self.gateway = gateway
        self.explorer = explorer
        self.feed = feed
        self.connections = Connections(
            settings.ws_connections_max,
            settings.ws_connections_per_client,
            settings.subscriptions_per_client,
        )

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
            if incremental.start(accepts_multipart(accept)).multipart and media_type is None:
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
        budget = current_deadline()
        if budget is not None:
            budget.running = True  # the deadline's backstop answers it as run
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if isinstance(result, GraphQLIncrementalExecutionResults):
            # Executing, so not a request error; streamed as multipart/mixed
            # (run() does it), each part in 200's body like any field error.
            return result
        budget = current_deadline()
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
        stats = current_stats()
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


def cors_origins(settings: Settings) -> list[str]:
    return [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
