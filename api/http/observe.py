"""What each HTTP request did, logged as one JSON line and counted in the metrics.

The middleware opens the request's :class:`~api.telemetry.stats.RequestStats`,
which the rest of the request fills in, and records it when the answer is sent.
With tracing on (``api.telemetry.tracing``) it also hands the client's trace
context (``traceparent``) to the operations the request carries.

It is the outermost layer, so it also answers 500 for an app that failed
before its answer started, as it counts it: Starlette's own outermost layer,
which would, is left out of the app (``api.app``), one frame and one send
wrapper less on every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime

import orjson
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.requests import METHODS
from api.telemetry import tracing
from api.telemetry.metrics import Metrics
from api.telemetry.stats import RequestStats, collecting

access_log = logging.getLogger("newsgraph.access")

#: Routes known by name in metrics; anything else is "other", so a scanner
#: trying random paths cannot create unbounded label values.
ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})
#: Longest client-chosen text (path, operation name) written to a log line.
MAX_LOGGED = 200

#: The status logged and counted for a request whose client hung up before its
#: answer was all sent (nginx's "client closed request"); its work was cancelled.
CLIENT_CLOSED = 499

#: What a client gets when the app fails before answering: Starlette's own
#: last resort, whose layer this one replaces (api/app.py).
SERVER_ERROR = "Internal Server Error"


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # A WebSocket's operations are children of its handshake's trace context.
            with tracing.incoming(scope.get("headers", ())):
                await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # none yet: the answer has not started
        sent = 0

        def observe(message: Message) -> Awaitable[None]:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
            return send(message)

        failed = False
        with collecting() as stats, tracing.incoming(scope["headers"]):
            try:
                await self.app(scope, receive, observe)
            except Exception:
                failed = True
                raise
            finally:
                answered = status
                if stats.client_gone:
                    status = CLIENT_CLOSED
                self._record(scope, stats, status or 500, sent, time.perf_counter() - started)
                if failed and not answered:
                    # The app failed before answering: the client gets a 500
                    # (sent past the counts, which hold none of its bytes), and
                    # the error goes on up, for the server to log.
                    await PlainTextResponse(SERVER_ERROR, 500)(scope, receive, send)

    def _record(
        self, scope: Scope, stats: RequestStats, status: int, sent: int, seconds: float
    ) -> None:
        path = scope["path"]
        route = path if path in ROUTES else "other"
        metrics = self.metrics
        # Methods outside the known few were refused before routing; they are
        # counted under one label, as unknown paths are.
        method = scope["method"] if scope["method"] in METHODS else "other"
        metrics.request_counter(route, method, status).inc()
        metrics.latency_of(route).observe(seconds)
        if stats.store_calls:
            metrics.store_round_trips.inc(stats.store_calls)
        for code in stats.error_codes:
            metrics.graphql_errors.labels(code).inc()
        for mode in stats.executions:
            metrics.execution_counter(mode).inc()
        # The line is made only for a log that writes it.
        if self.log_requests and route != "/metrics" and access_log.isEnabledFor(logging.INFO):
            line = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "method": method,
                "path": path[:MAX_LOGGED],
                "status": status,
                "ms": round(seconds * 1000, 2),
                "bytes": sent,
                "store_calls": stats.store_calls,
                "operation": stats.operation and stats.operation[:MAX_LOGGED],
                "errors": stats.error_codes or None,
                "client": (scope.get("client") or ("", 0))[0],
            }
            access_log.info(orjson.dumps(line).decode())
