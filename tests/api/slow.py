"""A store made slow on purpose, and the app served by a real Uvicorn in this
process (so the stub applies to it and its access log can be read)."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx2 as httpx
import orjson
import pymongo.errors
import pytest
import uvicorn

from api.data.gateway import Gateway
from api.http.connections import ConnectionLimits, GuardedServer, server_options
from api.telemetry import stats as observe
from testing.ports import free_port
from tests.waiting import eventually

#: Only requests that name the operation Slow are slowed.
SLOW = "query Slow { articles(first: 2) { totalCount nodes { title } } }"
CHEAP = "query Cheap { topics { totalCount } }"


def request(query: str) -> dict[str, str]:
    """A POST body that names its operation, as clients do (the access log shows it)."""
    return {"query": query, "operationName": query.split()[1]}


class SlowStore:
    """Each store call of a ``Slow`` operation takes ``seconds``, the way a
    slow store is slow on each engine:

    - embedded: the call waits without blocking the event loop (the real
      engine answers inline, so nothing there could be slow and interruptible);
    - wire: the worker thread sleeps, uninterruptible like a pymongo call, and
      gives up at the ``maxTimeMS`` it was sent, as MongoDB does.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
        self.seconds = seconds
        self.started = threading.Event()
        self.calls = 0
        self.cancelled = 0
        self.limits_ms: list[int] = []
        original = Gateway._dispatch

        async def dispatch(gateway: Gateway, call: Callable[[], Any]) -> Any:
            stats = observe.current_stats()
            if stats is None or stats.operation != "Slow":
                return await original(gateway, call)
            self.calls += 1
            if not gateway.store.embedded:
                # Started once the worker thread holds its slot: a test that
                # hangs up on `started` then finds the call in flight.
                return await original(gateway, functools.partial(self._stall, gateway, call))
            self.started.set()
            try:
                await anyio.sleep(self.seconds)
            except anyio.get_cancelled_exc_class():
                self.cancelled += 1
                raise
            return call()

        monkeypatch.setattr(Gateway, "_dispatch", dispatch)

    def _stall(self, gateway: Gateway, call: Callable[[], Any]) -> Any:
        self.started.set()
        limit_s = gateway.time_limit_ms() / 1000
        self.limits_ms.append(round(limit_s * 1000))
        time.sleep(min(self.seconds, limit_s))
        if self.seconds > limit_s:
            raise pymongo.errors.ExecutionTimeout("operation exceeded time limit", 50)
        return call()


@contextlib.contextmanager
def serving(app: Any, limits: ConnectionLimits | None = None) -> Iterator[str]:
    """``app`` on a real Uvicorn on a free loopback port, in a thread: its URL.
    With ``limits``, on the server ``newsgraph serve`` runs, with those limits."""
    options = {} if limits is None else server_options(limits)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False, **options
    )
    server = uvicorn.Server(config) if limits is None else GuardedServer(config, backlog=16)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, 10, "uvicorn to start", alive=thread.is_alive)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def post(url: str, query: str, timeout: float = 10) -> tuple[httpx.Response, float]:
    """The answer to ``query`` and how long it took (seconds)."""
    started = time.monotonic()
    response = httpx.post(f"{url}/graphql", json=request(query), timeout=timeout)
    return response, time.monotonic() - started


def in_flight(url: str) -> int:
    ready = httpx.get(f"{url}/readyz", timeout=2).json()
    return int(ready["store_calls_in_flight"])


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


class AccessLines(logging.Handler):
    """The access log's lines, as dicts, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(record.getMessage()))

    def about(self, operation: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["operation"] == operation]


@contextlib.contextmanager
def access_log() -> Iterator[AccessLines]:
    """The access log's lines while the block runs."""
    logger = logging.getLogger("newsgraph.access")
    handler = AccessLines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
