"""A bound on the store work in flight, and a quick refusal past it.

pymongo is synchronous, so each store call holds a worker thread while it
waits. A call that runs in a thread cannot be killed: when its request gives
up on it (the deadline passed, the client left), the thread goes on until the
store answers or its ``maxTimeMS`` ends it. So a slot here is held by the
*thread*, not by the request that started it: an abandoned call keeps its
slot until it really ends, and the number of store calls running is never
more than the number of slots, however many requests gave up on theirs.

A call that finds every slot busy waits briefly (``NEWSGRAPH_STORE_QUEUE_MS``);
if none comes free it is refused with :class:`Shed`, which the API answers
with 503 and ``Retry-After``: a queue without limit is how abandoned work
used to starve every later request.

**The heavy lane.** The slots are taken first come, first served, and one
heavy query (``NEWSGRAPH_HEAVY_QUERY_POINTS``: ``api.operation.throttle``)
asks for a hundred and more pages at once: everyone's calls that came after
would queue behind all of them, and on the embedded engine, whose calls hold
the GIL while they decode rows, wait out the whole query. So the calls of a
heavy operation (its request's deadline says so) first take the worker's
heavy lane, :data:`HEAVY_LANE` wide: however many heavy operations run, at
most that many of their calls are in the slots or waiting for one, and a
cheap query's call waits behind one heavy call at most. The heavy query
takes longer (its calls one after another); everyone else does not notice
it. The lane is waited for within the request's deadline, not the slots'
short wait: a heavy query is not shed for waiting its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

R = TypeVar("R")

#: What a shed request is told to wait before trying again (seconds).
RETRY_AFTER_S = 1
#: Store calls of heavy operations at once, per worker (see the module's docstring).
HEAVY_LANE = 1


class Shed(Exception):
    """Every slot stayed busy for the whole wait."""


class StoreSlots:
    def __init__(self, size: int, wait_ms: int) -> None:
        self.size = size
        self.wait_s = wait_ms / 1000
        self._slots = anyio.CapacityLimiter(size)
        # Store calls bypass anyio's default thread limiter (40 threads, shared
        # with file responses and other blocking work in the process): queued
        # there, they would wait with no bound. The slots are the only queue.
        self._threads = anyio.CapacityLimiter(math.inf)
        self._heavy = anyio.CapacityLimiter(HEAVY_LANE)

    @property
    def in_flight(self) -> int:
        """Store calls running now, abandoned ones included."""
        return self._slots.borrowed_tokens

    @property
    def heavy_in_flight(self) -> int:
        """Store calls of heavy operations in the slots or waiting for one."""
        return self._heavy.borrowed_tokens

    async def run(self, call: Callable[[], R], heavy: bool = False) -> R:
        """Run ``call`` in a worker thread once a slot is free; raise
        :class:`Shed` if none is within the wait. Cancelling the caller
        abandons the thread, which gives the slot back when it ends. A
        ``heavy`` operation's call takes the heavy lane first."""
        if heavy:
            async with self._heavy:
                return await self._run(call)
        return await self._run(call)

    async def _run(self, call: Callable[[], R]) -> R:
        job = _Job(call, self._slots)
        acquired = False
        with anyio.move_on_after(self.wait_s):
            await self._slots.acquire_on_behalf_of(job)
            acquired = True
        if not acquired:
            raise Shed()
        try:
            return await anyio.to_thread.run_sync(
                job.run, abandon_on_cancel=True, limiter=self._threads
            )
        finally:
            if not job.leave():
                self._slots.release_on_behalf_of(job)


class _Job(Generic[R]):
    """One store call, and who gives its slot back: the waiting task when it
    saw the call end (or never start), else the thread when the call ends."""

    def __init__(self, call: Callable[[], R], slots: anyio.CapacityLimiter) -> None:
        self.call = call
        self.slots = slots
        self.loop = asyncio.get_running_loop()  # made by the task, on the loop
        self._lock = threading.Lock()  # the task and the thread both change the state
        self._state = "queued"  # -> running -> done, or -> abandoned -> done, or -> dropped

    def run(self) -> R:
        """In the worker thread."""
        with self._lock:
            if self._state == "dropped":
                # Its request gave up before a thread took it: skip the store.
                raise RuntimeError("store call abandoned before it started")
            self._state = "running"
        try:
            return self.call()
        finally:
            with self._lock:
                abandoned = self._state == "abandoned"
                self._state = "done"
            if abandoned:
                # Handed to the loop without waiting for it: a loop that has
                # stopped (a test client's, a server shutting down) never runs
                # the release, and a thread waiting for it would block the
                # process's exit. A closed loop raises: nothing waits then.
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(self.slots.release_on_behalf_of, self)

    def leave(self) -> bool:
        """In the task, as it stops waiting: whether the thread now owns the slot."""
        with self._lock:
            if self._state == "running":
                self._state = "abandoned"
                return True
            if self._state == "queued":
                self._state = "dropped"
            return False
