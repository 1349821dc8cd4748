"""A bound on the store work in flight, and a quick refusal past it.

Every store call that takes a worker thread passes here: all of a MongoDB
server's, and an embedded store's but for the small reads the event loop
answers itself (``api.data.gateway``: ``Gateway._on_loop``).

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

**asyncio, not anyio.** Every store call that takes a thread passes here, and
the app runs only on asyncio (uvicorn), so this is written on asyncio's own
primitives: anyio's capacity limiters, timeout scope and ``to_thread`` cost
the event loop about three times as much per call (measured: each of their
steps asks sniffio which library runs, and opens cancel scopes), and a
store call was a sixth of a small query's server CPU. A free slot is taken
at once, with no timer; only a call that finds none waits, on a future that
a timer sheds. The thread hop is a future of our own that the worker thread
settles (``call_soon_threadsafe``), on worker threads of our own
(:class:`_Workers`): a call that holds a slot never waits for a thread (one
starts when none is idle), so the slots stay the only queue, and idle
threads end after :data:`IDLE_S`, so gateways made and dropped by the
thousand (scripts, tests) leave none behind. The call runs in a copy of the
caller's context, so it sees its request's deadline (``maxTimeMS``).

**The hop's cost is the threads' wake-ups, not the code.** A call that
returns at once costs the process 30-40 µs of CPU beside an idle loop and
about 100 µs beside a busy one (measured, both threads), little of it the
Python on either side: the rest is futex calls, four context switches a
call, and the GIL changing hands. So the thread hands its call's end to an
inbox of its loop's (:class:`_Inbox`) and wakes the loop only if no wake-up
is on its way already: calls that end while the loop is busy cost it one
wake-up between them, and one ``call_soon_threadsafe``. And a thread is
back among the idle ones *before* its call's end reaches the loop: a call the
loop makes on hearing of it is handed to that thread, still awake, instead
of waking another (a query's next level, say). And two finds where the second
is made of the first's answer (the mobile query's) are one job, one hop
(``api.data.gateway.Chain``): the worker asks the second only while nobody
waits for a slot (:meth:`StoreSlots.contended`), so a waiter is never passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")

#: What a shed request is told to wait before trying again (seconds).
RETRY_AFTER_S = 1
#: Store calls of heavy operations at once, per worker (see the module's docstring).
HEAVY_LANE = 1
#: How long a worker thread waits for another call before it ends (seconds).
IDLE_S = 10.0


class Shed(Exception):
    """Every slot stayed busy for the whole wait."""


class StoreSlots:
    def __init__(self, size: int, wait_ms: int) -> None:
        self.size = size
        self.wait_s = wait_ms / 1000
        self._slots = _Gate(size)
        self._heavy = _Gate(HEAVY_LANE)
        #: Where its calls' ends go: the running loop's (see :class:`_Inbox`).
        self._inbox: _Inbox | None = None

    @property
    def in_flight(self) -> int:
        """Store calls running now, abandoned ones included."""
        return self._slots.taken

    def contended(self) -> bool:
        """Whether a call waits for a slot. Read in a worker thread (a chained
        find's: ``api.data.gateway.Chain``), where it is advice only: a
        waiter seen late, or one already shed, costs one hand-back to the loop."""
        return bool(self._slots._waiters)

    @property
    def heavy_in_flight(self) -> int:
        """Store calls of heavy operations in the slots or waiting for one."""
        return self._heavy.taken

    async def run(self, call: Callable[[], R], heavy: bool = False, *, patient: bool = False) -> R:
        """Run ``call`` in a worker thread once a slot is free; raise
        :class:`Shed` if none is within the wait. Cancelling the caller
        abandons the thread, which gives the slot back when it ends. A
        ``heavy`` operation's call takes the heavy lane first. A ``patient``
        call waits for a slot as long as it takes (its turn comes after the
        calls queued before it, each shed within the wait): the worker's own
        reads, one at a time, that must not be shed by the load clients make
        (``api.data.changes``)."""
        # One coroutine for the whole way (the lane, the slot, the thread):
        # every store call that takes a thread passes here.
        if heavy:
            await self._heavy.take(None)
        try:
            if not self._slots.take_now():  # the common case costs no timer and no wait
                await self._slots.take(None if patient else self.wait_s)
            loop = asyncio.get_running_loop()
            inbox = self._inbox
            if inbox is None or inbox.loop is not loop:
                inbox = self._inbox = _inbox(loop)
            job = _Job(call, self._slots, inbox)
            try:
                _WORKERS.submit(job.run, job.ended)
                return await job.answer
            finally:
                if not job.leave():
                    self._slots.release()
        finally:
            if heavy:
                self._heavy.release()


class _Gate:
    """``size`` places, taken first come, first served: a place given back
    goes straight to the longest waiter, so a newcomer never takes it first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.taken = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a place if one is free and nobody waits for one."""
        if self.taken < self.size and not self._waiters:
            self.taken += 1
            return True
        return False

    async def take(self, within_s: float | None) -> None:
        """Take a place, waiting for one; :class:`Shed` if none comes
        within ``within_s`` seconds (``None``: wait as long as it takes)."""
        if self.take_now():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if within_s is None else loop.call_later(within_s, _shed, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a place, then cancelled before it woke: pass it on.
                self.release()
            else:
                with contextlib.suppress(ValueError):  # shed: still in the queue
                    self._waiters.remove(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # the place passes to it: `taken` stays
                waiter.set_result(None)
                return
        self.taken -= 1


def _shed(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(Shed())


class _Workers:
    """The store calls' threads, shared by every :class:`StoreSlots` of the
    process. A call is handed to an idle thread, or to a new one if none is
    idle: never queued behind another call (anyio's default thread limiter,
    shared with file responses and other blocking work, would queue it with
    no bound); the slots bound how many run. Daemon threads: a call still
    running when the process exits does not hold the exit up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the loop and the threads share the idle list
        self._idle: list[_Worker] = []

    def submit(self, call: Callable[[], object], then: Callable[[], None] | None = None) -> None:
        """Run ``call`` in a thread, and ``then`` in it once the thread is
        back among the idle ones: a store call's end is handed to its loop
        from there, so a call the loop makes on hearing of it finds the
        thread still awake, and takes it without waking another."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self)
            worker.start()
        worker.calls.put((call, then))

    def rest(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def forget(self) -> None:
        """In a forked child: the parent's threads are not there."""
        self._lock = threading.Lock()
        self._idle = []

    def retire(self, worker: _Worker) -> bool:
        """Whether an idle ``worker`` may end: not if a call was just handed to it."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False


#: A call for a worker thread, and what it does once back among the idle ones.
_Call = tuple[Callable[[], object], "Callable[[], None] | None"]


class _Worker(threading.Thread):
    def __init__(self, workers: _Workers) -> None:
        super().__init__(name="newsgraph-store", daemon=True)
        self.workers = workers
        self.calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            try:
                call, then = self.calls.get(timeout=IDLE_S)
            except queue.Empty:
                if self.workers.retire(self):
                    return
                continue  # handed a call as it timed out: it is on its way
            call()
            del call  # not kept alive while idle
            self.workers.rest(self)
            if then is not None:
                then()
                del then


_WORKERS = _Workers()
os.register_at_fork(after_in_child=_WORKERS.forget)


class _Inbox:
    """The calls that ended, for one event loop: settled together, in one of
    its callbacks. A thread wakes the loop only when the inbox was empty (no
    wake-up is on its way): calls that end while the loop is busy, or before it
    got round to the inbox, cost it one wake-up between them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ended: deque[_Job[object]] = deque()
        self.woken = False

    def post(self, job: _Job[object]) -> None:
        """In the worker thread."""
        self.ended.append(job)
        if self.woken:
            return
        self.woken = True
        # Handed to the loop without waiting for it: a loop that has stopped
        # (a test client's, a server shutting down) never runs the callback,
        # and a thread waiting for it would block the process's exit. A
        # closed loop raises: nothing waits then.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.settle)

    def settle(self) -> None:
        """On the loop: every call that ended, handed to its task."""
        self.woken = False  # before reading: a call that ends from here on wakes the loop again
        ended = self.ended
        while ended:
            ended.popleft().settle()


#: Each event loop's inbox (most processes have one loop; tests make many).
_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()


def _inbox(loop: asyncio.AbstractEventLoop) -> _Inbox:
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = _Inbox(loop)
    return inbox


class _Job(Generic[R]):
    """One store call, and who gives its slot back: the waiting task when it
    saw the call end (or never start), else the thread when the call ends."""

    __slots__ = (
        "_lock",
        "_state",
        "abandoned",
        "answer",
        "call",
        "context",
        "error",
        "inbox",
        "result",
        "slots",
    )

    def __init__(self, call: Callable[[], R], slots: _Gate, inbox: _Inbox) -> None:
        self.call = call
        self.slots = slots
        self.inbox = inbox
        self.context = contextvars.copy_context()
        #: What the thread hands back; cancelled when the task stops waiting.
        self.answer: asyncio.Future[R] = inbox.loop.create_future()
        self._lock = threading.Lock()  # the task and the thread both change the state
        self._state = "queued"  # -> running -> done, or -> abandoned -> done, or -> dropped
        self.result: R | None = None
        self.error: BaseException | None = None
        self.abandoned = False

    def run(self) -> None:
        """In the worker thread."""
        with self._lock:
            if self._state == "dropped":
                return  # its request gave up before a thread took it: skip the store
            self._state = "running"
        try:
            self.result = self.context.run(self.call)
        except BaseException as exc:  # handed to the task, which raises it
            self.error = exc
        with self._lock:
            self.abandoned = self._state == "abandoned"
            self._state = "done"

    def ended(self) -> None:
        """In the worker thread, back among the idle ones: the end handed to
        the loop (nothing to hand over for a call dropped before it started)."""
        if self._state == "done":  # set by this thread, in run
            self.inbox.post(self)  # type: ignore[arg-type]

    def settle(self) -> None:
        """On the loop, once the call ended."""
        if self.abandoned:
            self.slots.release()
            return
        answer = self.answer
        if answer.done():  # the task stopped waiting as the call ended: it gives the slot back
            return
        if self.error is not None:
            answer.set_exception(self.error)
        else:
            answer.set_result(self.result)  # type: ignore[arg-type]
        self.error = None  # not kept alive by the job

    def leave(self) -> bool:
        """In the task, as it stops waiting: whether the thread now owns the slot."""
        with self._lock:
            if self._state == "running":
                self._state = "abandoned"
                return True
            if self._state == "queued":
                self._state = "dropped"
            return False
