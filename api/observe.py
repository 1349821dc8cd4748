"""What each request did, logged as one JSON line and counted in the metrics.

The middleware opens a :class:`RequestStats` for each HTTP request; the
GraphQL view fills in the operation and its error codes, and the store gateway
counts its round trips into it (a context variable, so DataLoader batches that
run in their own tasks still count toward the request that caused them).
"""

from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics
from api.requests import METHODS

access_log = logging.getLogger("newsgraph.access")

#: Routes known by name in metrics; anything else is "other", so a scanner
#: trying random paths cannot create unbounded label values.
ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})
#: Longest client-chosen text (path, operation name) written to a log line.
MAX_LOGGED = 200

#: The status logged and counted for a request whose client hung up before its
#: answer was all sent (nginx's "client closed request"); its work was cancelled.
CLIENT_CLOSED = 499


@dataclass
class RequestStats:
    store_calls: int = 0
    operation: str | None = None
    error_codes: list[str] = field(default_factory=list)
    #: Set by api.deadline's guard when the client left mid-request.
    client_gone: bool = False
    #: How each operation ran: "compiled" or "fallback" (api/compiled.py).
    executions: list[str] = field(default_factory=list)


_current: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar(
    "newsgraph_request", default=None
)


def current() -> RequestStats | None:
    """The stats of the request being served, if any."""
    return _current.get()


def count_store_call() -> None:
    stats = _current.get()
    if stats is not None:
        stats.store_calls += 1


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stats = RequestStats()
        token = _current.set(stats)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering
        sent = 0

        async def observe(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            _current.reset(token)
            if stats.client_gone:
                status = CLIENT_CLOSED
            self._record(scope, stats, status, sent, time.perf_counter() - started)

    def _record(
        self, scope: Scope, stats: RequestStats, status: int, sent: int, seconds: float
    ) -> None:
        path = scope["path"]
        route = path if path in ROUTES else "other"
        metrics = self.metrics
        # Methods outside the known few were refused before routing; they are
        # counted under one label, as unknown paths are.
        method = scope["method"] if scope["method"] in METHODS else "other"
        metrics.requests.labels(route, method, str(status)).inc()
        metrics.latency.labels(route).observe(seconds)
        if stats.store_calls:
            metrics.store_round_trips.inc(stats.store_calls)
        for code in stats.error_codes:
            metrics.graphql_errors.labels(code).inc()
        for mode in stats.executions:
            metrics.graphql_executions.labels(mode).inc()
        if self.log_requests and route != "/metrics":
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


def log_config(level: str) -> dict[str, Any]:
    """Uvicorn's logging configuration, with newsgraph's loggers added: the
    access log as bare JSON lines on stdout (uvicorn's own access log is
    replaced by it), everything else as text on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "disable_existing_loggers": False}
    config["formatters"] = {
        **LOGGING_CONFIG["formatters"],
        "json_line": {"format": "%(message)s"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    }
    config["handlers"] = {
        **LOGGING_CONFIG["handlers"],
        "newsgraph_access": {
            "class": "logging.StreamHandler",
            "formatter": "json_line",
            "stream": "ext://sys.stdout",
        },
        "newsgraph": {
            "class": "logging.StreamHandler",
            "formatter": "text",
            "stream": "ext://sys.stderr",
        },
    }
    level = level.upper()
    config["loggers"] = {
        **LOGGING_CONFIG["loggers"],
        "newsgraph": {"handlers": ["newsgraph"], "level": level, "propagate": False},
        "newsgraph.access": {
            "handlers": ["newsgraph_access"],
            "level": level,
            "propagate": False,
        },
    }
    return config
