"""Each request's time, and the store calls waiting on its behalf.

A :class:`Deadline` is the time a request may take
(``NEWSGRAPH_REQUEST_TIMEOUT_MS``) and the store calls waiting on its behalf:
the gateway ends each store call at the deadline (and caps its ``maxTimeMS``
at the time left), and if the client hangs up every pending call is cancelled
at once. HTTP requests get theirs from ``api.http.guard``; a subscription's
answer to one article gets its own (:func:`begin`).

A deadline lives in a context variable, so DataLoader batches, which run in
tasks of their own, still spend the time of the request that caused them.

**One timer a loop, on asyncio.** The app runs only on asyncio (uvicorn),
and every store call waits in a :meth:`Deadline.scope`: an anyio cancel scope
there cost 7 µs of the loop's time a call (measured; ``asyncio.timeout`` 4.6
µs), most of it asking sniffio which library runs. So a deadline goes off by
an asyncio timer, from when the request's first store call starts waiting
until the request ends; a scope only notes the task that waits in it. At the
deadline, or as soon as the client leaves, the waiting tasks are cancelled
(``Task.cancel``) and each scope turns its own cancellation back into an
ordinary end of the ``with`` block, as a cancel scope does; a cancellation
from anyone else (a cancel scope outside, the server stopping) goes on, as
:func:`asyncio.timeout` decides it: by the task's count of cancellations
asked for.

The timer is one for all the deadlines of an event loop (:class:`_Timers`),
as the request guard's backstops share one (``api.http.guard``): a timer of
each request's own was made, pushed on the loop's heap (whose every
comparison is a Python call), cancelled and swept off it again on nearly
every request: about 16 k instructions a request, against 4.7 k for a place
in the shared one (cachegrind, in process). Deadlines of different lengths (a
request's, a subscription answer's) wait in order of their time in a heap of
plain lists, compared in C, and the timer waits for the first one still
live; a request that ends leaves a dead entry that holds nothing, dropped
from the top as others come, swept out, or gone once its time passes. Each
deadline still goes off at the time its own timer would have.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from types import TracebackType
from typing import Any


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
    #: The event loop the request runs on, when whoever made the deadline
    #: knew it (the request guard): its scopes need not look it up, a
    #: ``getpid()`` system call on Python 3.11 (``asyncio.get_running_loop``).
    loop: asyncio.AbstractEventLoop | None = None
    _waiting: set[_Scope] = field(default_factory=set)
    #: Its entry among its loop's deadlines (:class:`_Timers`) from when a
    #: scope waits until it ends; ``ended`` once it has gone off.
    _entry: list[Any] | None = None
    _ended: bool = False

    @classmethod
    def starting_now(
        cls, limit_s: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> Deadline:
        return cls(time.monotonic() + limit_s, limit_s, loop=loop)

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
        entry = self._entry
        if entry is not None and not self._waiting:
            entry[_DEADLINE] = None  # the entry holds nothing from here
            self._entry = None

    def _wait(self, scope: _Scope, loop: asyncio.AbstractEventLoop) -> None:
        self._waiting.add(scope)
        if self.gone or self._ended:
            # Cancelled from the loop, not here: a task cannot be cancelled
            # at an await it has not reached (one the scope may never reach).
            loop.call_soon(scope.stop)
        elif self._entry is None:
            timers = _by_loop.get(loop)
            if timers is None:
                timers = _timers_for(loop)
            self._entry = timers.add(self)

    def _expire(self) -> None:
        """Its time came (called by its loop's :class:`_Timers`)."""
        self._entry = None
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
        # The loop looked up once at most (a getpid() on 3.11), for the task and the timer.
        loop = self.deadline.loop
        if loop is None:
            loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline's scope waits in a task")
        self.task = task
        self.cancelling = task.cancelling()
        self.deadline._wait(self, loop)
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


#: Where a deadline is in a :class:`_Timers` entry: ``[at, order, deadline]``.
_AT, _ORDER, _DEADLINE = 0, 1, 2
#: The fewest entries a loop's heap may hold before ended ones are swept out.
_SWEEP_AT = 64


class _Timers:
    """The deadlines of one event loop that a scope waits on: one asyncio
    timer for them all, which goes off at the first one's time.

    Each is an entry ``[at, order, deadline]`` (``at`` on the loop's clock) in
    a heap: lists, so that the heap compares them in C (by time, then by
    order of arrival; never the deadlines). An entry whose deadline ended
    (:meth:`Deadline.close`) has ``None`` in its place: it keeps nothing
    alive, and leaves the heap when it reaches the top as another comes, or
    once its time has passed. Behind a long request at the top, the ended
    ones are swept out whenever the heap has doubled since the last sweep:
    it holds at most twice the deadlines that waited at once, or
    :data:`_SWEEP_AT`.
    """

    __slots__ = ("_at", "_context", "_heap", "_loop", "_order", "_sweep_at", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[list[Any]] = []
        self._order = itertools.count()
        #: Set while there is a live entry; ``at`` is when it goes off.
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0
        #: What the timer runs in: no request's context (asyncio would copy
        #: the one that set it, keeping its deadline alive till it goes off).
        #: The loop's own: a context is run by one thread at a time.
        self._context = contextvars.Context()
        #: The heap's length at which the next sweep is due.
        self._sweep_at = _SWEEP_AT

    def add(self, deadline: Deadline) -> list[Any]:
        loop = self._loop
        # The loop's clock is time.monotonic() on asyncio; convert anyway.
        at = loop.time() + deadline.remaining()
        heap = self._heap
        while heap and heap[0][_DEADLINE] is None:
            heappop(heap)  # the requests that ended
        if len(heap) >= self._sweep_at:
            self._sweep()
        entry = [at, next(self._order), deadline]
        heappush(heap, entry)
        timer = self._timer
        if timer is None or at < self._at:
            if timer is not None:
                timer.cancel()  # a shorter limit's, due before the others
            self._at = at
            self._timer = loop.call_at(at, self._due, context=self._context)
        return entry

    def _sweep(self) -> None:
        heap = self._heap
        heap[:] = [entry for entry in heap if entry[_DEADLINE] is not None]
        heapify(heap)
        self._sweep_at = max(_SWEEP_AT, 2 * len(heap))

    def _due(self) -> None:
        self._timer = None
        heap = self._heap
        # What the loop found due when it ran this timer, and all due since.
        due = max(self._loop.time(), self._at)
        while heap:
            entry = heap[0]
            deadline = entry[_DEADLINE]
            if deadline is not None and entry[_AT] > due:
                self._at = entry[_AT]
                self._timer = self._loop.call_at(self._at, self._due, context=self._context)
                return
            heappop(heap)
            if deadline is not None:
                entry[_DEADLINE] = None
                deadline._expire()


#: Each event loop's deadline timers (one loop serves; tests run many).
_by_loop: dict[asyncio.AbstractEventLoop, _Timers] = {}


def _timers_for(loop: asyncio.AbstractEventLoop) -> _Timers:
    global _by_loop
    # A loop not seen before: the closed ones are forgotten. The dict is
    # replaced whole, never changed, so another thread's loop reads it safely.
    kept = {seen: t for seen, t in _by_loop.items() if not seen.is_closed()}
    kept[loop] = timers = _Timers(loop)
    _by_loop = kept
    return timers


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


class within:  # lower case: it reads as the function it was (``with within(limit_s)``)
    """A deadline ``limit_s`` from now for the work inside (an HTTP request).

    A class, not a ``contextlib.contextmanager``: every HTTP request enters
    one, and a generator's context manager cost it about 6 k instructions.
    ``loop``: the event loop the work runs on, if the caller has it at hand."""

    __slots__ = ("_deadline", "_limit_s", "_loop", "_token")

    def __init__(self, limit_s: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._limit_s = limit_s
        self._loop = loop

    def __enter__(self) -> Deadline:
        started = self._deadline = Deadline.starting_now(self._limit_s, self._loop)
        self._token = _current.set(started)
        return started

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _current.reset(self._token)
        self._deadline.close()
