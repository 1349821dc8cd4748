"""Each request's time, and the store calls waiting on its behalf.

A :class:`Deadline` is the time a request may take
(``NEWSGRAPH_REQUEST_TIMEOUT_MS``) and the store calls waiting on its behalf:
the gateway ends each store call at the deadline (and caps its ``maxTimeMS``
at the time left), and if the client hangs up every pending call is cancelled
at once. HTTP requests get theirs from ``api.http.guard``; a subscription's
answer to one article gets its own (:func:`begin`).

A deadline lives in a context variable, so DataLoader batches, which run in
tasks of their own, still spend the time of the request that caused them.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio


@dataclass(eq=False)
class Deadline:
    """One request's time, and the store calls waiting on its behalf."""

    #: On time.monotonic()'s clock, which worker threads may read too.
    deadline: float
    limit_s: float
    #: The client hung up: nothing more is worth doing for this request.
    gone: bool = False
    #: A store call found no free slot: the answer is 503 + Retry-After.
    shed: bool = False
    #: The GraphQL view has the whole request and runs it: a TIMEOUT from
    #: here on is an executed query's answer, not a request that never arrived.
    running: bool = False
    #: A heavy operation's (``api.operation.throttle``): its store calls take
    #: the worker's heavy lane (``api.data.slots``), one at a time.
    heavy: bool = False
    _waiting: set[anyio.CancelScope] = field(default_factory=set)

    @classmethod
    def starting_now(cls, limit_s: float) -> Deadline:
        return cls(time.monotonic() + limit_s, limit_s)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @contextlib.contextmanager
    def scope(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope that ends at the deadline, or as soon as the client leaves."""
        # anyio's clock is the event loop's; on asyncio (uvicorn) it is
        # time.monotonic() too, but convert rather than rely on that.
        with anyio.CancelScope(deadline=anyio.current_time() + self.remaining()) as scope:
            if self.gone:
                scope.cancel()
            self._waiting.add(scope)
            try:
                yield scope
            finally:
                self._waiting.discard(scope)

    def cancel(self) -> None:
        """The client left: stop everything waiting for this request."""
        self.gone = True
        for scope in list(self._waiting):
            scope.cancel()


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "newsgraph_deadline", default=None
)


def current_deadline() -> Deadline | None:
    """The budget of the request being served; ``None`` outside one (benchmarks, scripts)."""
    return _current.get()


def begin(limit_s: float) -> Deadline:
    """A budget for work that no HTTP request bounds (a subscription's answer
    to one article), for the rest of the current task."""
    deadline = Deadline.starting_now(limit_s)
    _current.set(deadline)
    return deadline


@contextlib.contextmanager
def within(limit_s: float) -> Iterator[Deadline]:
    """A deadline ``limit_s`` from now for the work inside (an HTTP request)."""
    started = Deadline.starting_now(limit_s)
    token = _current.set(started)
    try:
        yield started
    finally:
        _current.reset(token)
