"""Each request's time, and the store calls waiting on its behalf.

A :class:`Deadline` is the time a request may take
(``NEWSGRAPH_REQUEST_TIMEOUT_MS``) and the store calls waiting on its behalf:
the gateway ends each store call at the deadline (and caps its ``maxTimeMS``
at the time left), and if the client hangs up every pending call is cancelled
at once. HTTP requests get theirs from ``api.http.guard``; a subscription's
answer to one article gets its own (:func:`begin`).

A deadline lives in a context variable, so DataLoader batches, which run in
tasks of their own, still spend the time of the request that caused them.

**One timer a request, on asyncio.** The app runs only on asyncio (uvicorn),
and every store call waits in a :meth:`Deadline.scope`: an anyio cancel scope
there cost 7 µs of the loop's time a call (measured; ``asyncio.timeout`` 4.6
µs), most of it asking sniffio which library runs. So the deadline is one
asyncio timer (``loop.call_at``), set when the request's first store call
starts waiting and dropped when the request ends; a scope only notes the
task that waits in it. At the deadline, or as soon as the client leaves, the
waiting tasks are cancelled (``Task.cancel``) and each scope turns its own
cancellation back into an ordinary end of the ``with`` block, as a cancel
scope does; a cancellation from anyone else (a cancel scope outside, the
server shutting down) goes on, as :func:`asyncio.timeout` decides it: by the
task's count of cancellations asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType


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
    _waiting: set[_Scope] = field(default_factory=set)
    #: The deadline's timer, once a scope waits; ``ended`` once it has fired.
    _timer: asyncio.TimerHandle | None = None
    _ended: bool = False

    @classmethod
    def starting_now(cls, limit_s: float) -> Deadline:
        return cls(time.monotonic() + limit_s, limit_s)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def scope(self) -> _Scope:
        """A scope whose work ends at the deadline, or as soon as the client
        leaves: its task is cancelled, and the ``with`` block ends there
        (``cancelled_caught`` says so). Only on the event loop."""
        return _Scope(self)

    def cancel(self) -> None:
        """The client left: stop everything waiting for this request."""
        self.gone = True
        self._end()

    def close(self) -> None:
        """The request is over: its timer is dropped, unless a call still
        waits on its behalf (a DataLoader batch's task), which it must end."""
        if self._timer is not None and not self._waiting:
            self._timer.cancel()
            self._timer = None

    def _wait(self, scope: _Scope) -> None:
        self._waiting.add(scope)
        if self.gone or self._ended:
            # Cancelled from the loop, not here: a task cannot be cancelled
            # at an await it has not reached (one the scope may never reach).
            asyncio.get_running_loop().call_soon(scope.stop)
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            # The loop's clock is time.monotonic() on asyncio; convert anyway.
            self._timer = loop.call_at(loop.time() + self.remaining(), self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._ended = True
        self._end()

    def _end(self) -> None:
        for scope in list(self._waiting):
            scope.stop()


class _Scope:
    """A task's wait for a store call within its :class:`Deadline`."""

    __slots__ = ("cancelled_caught", "cancelling", "deadline", "stopped", "task")

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.stopped = False
        self.cancelled_caught = False

    def __enter__(self) -> _Scope:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline's scope waits in a task")
        self.task = task
        self.cancelling = task.cancelling()
        self.deadline._wait(self)
        return self

    def stop(self) -> None:
        """Cancel the task waiting in the scope, once, if it still waits."""
        if not self.stopped and self in self.deadline._waiting:
            self.stopped = True
            self.task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self.deadline._waiting.discard(self)
        if not self.stopped:
            return False
        # Take back the cancellation asked for here; another asked for as
        # well (the server stopping, a cancel scope outside) goes on.
        if self.task.uncancel() > self.cancelling or exc_type is not asyncio.CancelledError:
            return False
        self.cancelled_caught = True
        return True


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
        started.close()
