"""The ASGI application: ``/graphql``, ``/healthz`` (liveness) and ``/readyz`` (readiness).

``/healthz`` and ``/readyz`` say what :class:`api.http.health.Health` says;
``newsgraph serve --health-port`` answers the same from a process of its own,
which a busy event loop does not delay (it reads ``app.state.health.record``).

Run it with ``newsgraph serve``, or with any ASGI server::

    uvicorn --factory api.app:create_app      # settings from the environment
    uvicorn api.app:app                       # the same, as a module attribute

The app holds no state between requests beyond the store's connection pool,
so any number of workers or hosts can serve the same store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from api.http import observe
from api.http.body import BodyLimit
from api.http.caching import CachePolicy, QueryCaching
from api.http.compression import Compression
from api.http.cors import CrossOrigin
from api.http.explorer import Explorer
from api.http.guard import RequestGuard
from api.http.health import Health
from api.http.identity import network_key
from api.http.requests import RegularRequests
from api.http.view import GraphQLApp, cors_origins
from api.live.feed import Feed
from api.telemetry import tracing
from api.telemetry.metrics import Metrics
from core.config import Settings
from core.store import Store, StoreUnavailable, connect

if TYPE_CHECKING:  # strawberry's own HTTP layer, named in a signature only
    pass

log = logging.getLogger("newsgraph.api")


def create_app(
    settings: Settings | None = None, store: Store | None = None, gateway: Gateway | None = None
) -> Starlette:
    """The app over ``store`` (by default the one the settings name). A
    ``gateway`` given replaces the one made over it: the benchmark passes one
    that answers from memory, to time the API with the store taken out."""
    settings = settings or Settings.from_env()
    tracing.configure()  # the OTEL_* settings, read once per process
    if gateway is None:
        store = store or connect(settings)
        slots = StoreSlots(settings.store_concurrency, settings.store_queue_ms)
        gateway = Gateway(store, settings.store_op_timeout_ms, slots)
    store = gateway.store
    explorer = Explorer(Path(settings.graphiql_assets) if settings.graphiql_assets else None)
    feed = Feed(
        gateway,
        settings.subscription_poll_ms,
        settings.subscription_queue,
        settings.subscriptions_max,
        settings.request_timeout_ms,
        settings.subscriptions_max_bytes,
        settings.subscriptions_per_client_bytes,
        settings.subscriptions_per_client,
        settings.subscription_unsent_bytes,
        settings.subscriptions_per_network_bytes,
        settings.subscriptions_per_network,
        network_key,
    )
    graphql = GraphQLApp(settings, gateway, explorer, feed)

    health = Health(gateway)

    async def healthz(request: Request) -> Response:
        # Liveness: the process serves requests. It touches no store, so an
        # outage or a busy store never gets a healthy process restarted.
        status, body = health.liveness()
        return JSONResponse(body, status_code=status)

    async def readyz(request: Request) -> Response:
        # Readiness: whether this instance can answer queries now.
        status, body = health.readiness()
        return JSONResponse(body, status_code=status)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A store that is down at start must not stop the API from starting:
        # /readyz says 503 until it answers, and queries fail clearly meanwhile.
        try:
            await anyio.to_thread.run_sync(store.ensure_indexes)
        except StoreUnavailable as exc:
            log.warning("starting without the store: %s", exc)
        health.start()
        yield
        health.stop()
        await feed.close()
        await graphql.close()

    metrics = Metrics()
    metrics.follow(feed)
    metrics.follow_loop_reads(gateway.loop_reads)
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
            CrossOrigin,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        ),
        # Inside CORS, so a browser can read the TIMEOUT it answers with.
        Middleware(RequestGuard, timeout_ms=settings.request_timeout_ms),
        # Mobile clients on slow networks: article lists are repetitive JSON.
        Middleware(Compression, minimum_size=settings.gzip_min_bytes),
        Middleware(QueryCaching, policy=CachePolicy.for_settings(settings)),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        Middleware(GraphQLFirst, view=graphql),
    ]
    app = _Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.health = health
    return app


class _Starlette(Starlette):
    """Starlette without its outermost layer, which answers 500 when the app
    fails before answering: the outermost of ours (``api.http.observe``)
    answers it, as it counts it, and a layer (a frame and a send wrapper on
    every request) is spared. The layer does no more here: no debug pages, no
    handler of ours for 500."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        assert isinstance(stack, ServerErrorMiddleware)
        assert stack.handler is None and not stack.debug
        return stack.app


class GraphQLFirst:
    """The innermost layer: a GET or POST to ``/graphql``, nearly every
    request, goes straight to the view, where Starlette's router would send
    it after its exception layer (a send wrapper, for HTTPExceptions the view
    never raises: it answers its own refusals) and a match of the path against
    each route. Anything else, a WebSocket at ``/graphql`` included, is routed.
    Under a ``root_path`` the router's matching decides, as before.

    It hands the request on without a frame of its own (see ``api.http``)."""

    def __init__(self, app: ASGIApp, view: ASGIApp) -> None:
        self.app = app
        self.view = view

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if (
            scope["type"] == "http"
            and scope["path"] == "/graphql"
            and scope["method"] in ("GET", "POST")
            and not scope.get("root_path")
        ):
            return self.view(scope, receive, send)
        return self.app(scope, receive, send)


app: Starlette  # made on first access, by __getattr__ below


def __getattr__(name: str) -> Any:
    """``api.app:app``, created on first use from the environment's settings."""
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
