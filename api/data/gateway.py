"""Store access for the API: every call bounded, and outages made readable.

pymongo is synchronous; each call runs in a worker thread so the event loop
keeps serving other requests while one waits on the store (but an embedded
store's small reads: below). The threads are
bounded by :class:`api.data.slots.StoreSlots` (a call that cannot get one soon is
shed), each call ends at its request's deadline (:mod:`api.data.deadline`), and the
store is told the same through ``maxTimeMS``. The embedded engine (SQLite,
which runs outside the GIL) is called the same way, and stops at ``maxTimeMS``
too, so a busy store never holds the event loop; its small reads are tried
on the loop first, within a bound of their own (below).

**Two dependent finds, one thread hop.** A call's hop to a worker thread and
back costs the process about 0.1 ms of CPU beside a busy loop (the threads'
wake-ups and the GIL changing hands: ``api.data.slots``), more than the Python
on either side. The mobile query's two finds depend on each other (the first's
answer names the related articles), so a plan asks them as one job
(:class:`Chain`, :meth:`Gateway.chain`): the second is made from the first's
answer in the worker thread, by pure code. The request's bookkeeping (its
store-call count, its spans, the record a plan falls back on) is settled on the
loop once the job ended, as two calls would have left it; and the worker hands
the second find back to the loop whenever a lone call could fare otherwise
(another call waits for a slot, the request was shed, its client left, its
deadline passed), so fairness, shedding and deadlines are today's. Each find
still gets its own ``maxTimeMS``, read as it starts. A gateway whose call path
is its own (a subclass, a test replacing a method) never chains: its calls all
take the path it watches. :meth:`Gateway._find_now`, the one find both paths
make, is where a test fails or stalls one.

**Small embedded reads on the loop.** On the embedded engine a page-sized
read takes less than that hop (a front-page find about 0.06 ms), so a
request's read (a find, a count, a chain: :class:`Read`) is first tried on
the event loop itself (:meth:`Gateway._on_loop`), under a hard bound:
:data:`ON_LOOP_MS` of the loop thread's CPU, and :data:`ON_LOOP_WALL_MS` on
the clock (the GIL waited for, the disk). SQLite's progress handler and the
engine's per-document check (``core.engine.database``) stop it there, its
partial work is dropped (a read: nothing to undo) and it is asked again the
ordinary way, in a worker thread under the request's real deadline. So the
loop is never held longer than the bound plus one document's decoding and
matching, whatever the plan: the bound covers the Python-side work, and no
read is refused the loop for its plan's shape. Nothing on the loop waits: the
engine's query slot is taken only if free, its connection (one of the loop
thread's own, opened by the first read, which hops) has a busy timeout of 0,
and anything that would wait raises ``Busy``: the read hops. A heavy
operation's reads, the API's own bookkeeping (budgets, persisted queries)
and every call on a wire store take the thread as before; reads that keep
running out of bound stop being tried for a while, by their shape and in all
(:class:`LoopReads`).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import operator
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, cast

import pymongo.errors

from api.data.deadline import Deadline, current_deadline
from api.data.slots import RETRY_AFTER_S, Shed, StoreSlots
from api.errors import (
    ClientClosedRequestError,
    OverloadedError,
    RequestTimeoutError,
    StoreUnavailableError,
)
from api.telemetry import tracing
from api.telemetry.stats import count_store_call
from core.config import Settings
from core.document import Doc
from core.engine.database import Busy, Unopened
from core.store import Store, StoreUnavailable, is_outage

log = logging.getLogger("newsgraph.api")
R = TypeVar("R")

#: A MaxTimeMSExpired before this fraction of the call's maxTimeMS has passed
#: is the server cancelling the call, not its time limit (see Gateway._limited).
EARLY_EXPIRY = 0.5
#: The most CPU a read may take on the event loop before it is dropped and
#: asked in a worker thread (ms). Every other request on the loop waits
#: behind it, so it is kept near a request's own CPU (a compiled front page
#: costs about half a millisecond): a page-sized read (a front-page find,
#: a mobile chain: a tenth of a millisecond or less) fits many times over,
#: and a read that does not costs the loop no more than this before it hops.
ON_LOOP_MS = 2
#: The same read's bound in time on the clock (ms): what the CPU bound does
#: not see, the disk, and the GIL waited for while worker threads hold it
#: (up to 5 ms, ``sys.getswitchinterval``, each time SQLite gives it up: a
#: few times a read). Wide enough that busy threads do not send a cheap read
#: to the thread for their sake; a read stopped by it is not held against its
#: shape (it waited, it did not work).
ON_LOOP_WALL_MS = 50
#: Loop time that reads which ran out of their bound may throw away, per
#: second of the loop's time (seconds): past it, reads skip the loop until
#: the waste has aged out. Without it a client sending many reads that all
#: overrun (a search that scans) would take ``ON_LOOP_MS`` of the loop from
#: everyone per read; with it, at most this share, however many it sends.
WASTE_PER_S = 0.05
#: How long a read's shape (its collection, filter fields and limit) that ran
#: out of the bound skips the loop (seconds): a client repeating a read that
#: overruns (the same scanning search, many times at once) costs the loop one
#: try, not one a request, and a cheap read of another shape is not held up.
SLOW_FOR_S = 10.0
#: Shapes remembered at once, at most (a bound on memory, not a policy: past
#: it they are forgotten, and the waste allowance still bounds the cost).
SLOW_SHAPES = 1024

#: Until when (``time.monotonic``) the read running on the loop may run:
#: :meth:`Gateway.time_limit_ms` gives it no more. ``None`` off the loop.
_LOOP_UNTIL: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "newsgraph_loop_until", default=None
)
#: Set when the loop answered the task's last read itself: the benchmark's
#: capture reads it (``bench.querying.MemoryGateway``), so that its replay
#: answers the same calls on the loop as the app did.
answered_on_loop: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "newsgraph_answered_on_loop", default=False
)


class Find(NamedTuple):
    """One find's arguments, in the order :meth:`Gateway.find` takes them."""

    collection: str
    query: dict[str, Any]
    projection: dict[str, int] | None = None
    sort: list[tuple[str, int]] | None = None
    limit: int = 0


class Read(Generic[R]):
    """A request's read, ``fn(arg)``, that an embedded store may answer on the
    event loop (:meth:`Gateway._on_loop`); ``undo`` puts back what a try
    that ran out of its bound left behind (a chain's state) before it is asked
    again in a thread. Any other callable a gateway runs takes the thread."""

    __slots__ = ("arg", "fn", "undo")

    def __init__(
        self, fn: Callable[[Any], R], arg: Any, undo: Callable[[], None] | None = None
    ) -> None:
        self.fn = fn
        self.arg = arg
        self.undo = undo

    def __call__(self) -> R:
        return self.fn(self.arg)

    def shape(self) -> tuple[Any, ...] | None:
        """What reads alike have alike: the collection, the filter's fields
        and a find's limit (a chain's first find's); ``None`` for a read
        that is not a find or count of this module's."""
        arg = self.arg
        if isinstance(arg, Chain):
            arg = arg.first
        if isinstance(arg, Find):
            return (arg.collection, arg.limit, *arg.query)
        if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], dict):
            return (arg[0], None, *arg[1])  # a count's (collection, query)
        return None


class _Answered(Generic[R]):
    """An answer the loop already has, awaited without suspending."""

    __slots__ = ("value",)

    def __init__(self, value: R) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, R]:
        return self.value
        yield  # a generator: awaited, it returns at once


#: :meth:`Gateway._on_loop`'s answer when the read must take the thread, and
#: when it must also open the loop thread's connection there.
hop: Any = object()
_UNOPENED: Any = object()


class LoopReads:
    """What the loop did with the reads it was offered (counted for
    ``newsgraph_store_on_loop``: ``api.telemetry.metrics``), and the loop time
    thrown away by those that ran out of bound (:data:`WASTE_PER_S`). Only
    the loop reads and writes it."""

    __slots__ = ("answered", "busy", "held", "overran", "since", "slow", "wasted")

    def __init__(self) -> None:
        #: Answered on the loop.
        self.answered = 0
        #: Ran out of :data:`ON_LOOP_MS` and were asked again in a thread.
        self.overran = 0
        #: Could not start at once (a query slot, the file, the connection) and hopped.
        self.busy = 0
        #: Not tried: their shape overran lately, or the waste allowance was spent.
        self.held = 0
        #: The shapes of reads that overran lately, and until when they skip the loop.
        self.slow: dict[tuple[Any, ...], float] = {}
        #: Loop time thrown away (s), as of ``since`` (``time.monotonic``).
        self.wasted = 0.0
        self.since = 0.0

    def allowed(self, read: Read[Any], now: float) -> bool:
        """Whether ``read`` may be tried on the loop now: not if its shape
        overran lately; and the waste ages out at :data:`WASTE_PER_S`, and
        what is left must be under a second's allowance."""
        slow = self.slow
        if slow:  # a read's shape is worked out only when some overran lately
            until = slow.get(read.shape())  # type: ignore[arg-type]
            if until is not None:
                if now < until:
                    self.held += 1
                    return False
                del slow[read.shape()]  # type: ignore[arg-type]
        if self.wasted:
            self.wasted = max(0.0, self.wasted - (now - self.since) * WASTE_PER_S)
            self.since = now
            if self.wasted >= WASTE_PER_S:
                self.held += 1
                return False
        return True

    def waste(self, read: Read[Any], started: float, now: float) -> None:
        """``read`` ran out of its CPU bound: its shape skips the loop for a while."""
        if self.wasted:  # the allowance aged to now, before adding
            self.wasted = max(0.0, self.wasted - (now - self.since) * WASTE_PER_S)
        self.wasted += now - started
        self.since = now
        shape = read.shape()
        if shape is not None:
            if len(self.slow) >= SLOW_SHAPES:
                self.slow.clear()
            self.slow[shape] = now + SLOW_FOR_S


class Chain:
    """Two finds run as one job (:meth:`Gateway.chain`): ``first``, then the
    find ``then`` makes of its answer (``None``: nothing more to ask), in the
    same worker thread, so the request pays one thread hop instead of two.

    ``then`` runs in the worker thread: it must read only what nobody writes
    any more and write nothing but its own closure (the plan's code for it is
    pure: ``api.execution.plan.fetch``). The worker writes only this object;
    the loop reads it after :meth:`close`, and does the request's
    bookkeeping itself (store-call counts, spans, records): counting or
    tracing in the worker would race with the loop.
    """

    __slots__ = (
        "_lock",
        "began",
        "closed",
        "first",
        "first_docs",
        "first_ended",
        "first_seen",
        "pending",
        "second",
        "second_docs",
        "second_seen",
        "second_started",
        "then",
        "then_error",
        "traced",
    )

    def __init__(self, first: Find, then: Callable[[list[Doc]], Find | None]) -> None:
        self.first = first
        self.then = then
        self.first_docs: list[Doc] = []
        #: The second find, once the worker began it (``began``), or when it
        #: handed it back to the loop (``pending``), which asks it as any call.
        self.second: Find | None = None
        self.second_docs: list[Doc] = []
        self.pending: Find | None = None
        self.began = False
        self.closed = False
        self.then_error: BaseException | None = None
        #: Whether the request saw each find's answer (see :meth:`seen`).
        self.first_seen = self.second_seen = False
        #: Time marks for the spans, taken only when the operation is traced.
        self.traced = False
        self.first_ended: int | None = None
        self.second_started: int | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        """On the loop, after a try on the loop ran out of its bound: as
        before it began, for the worker thread to run it again."""
        self.first_docs, self.second_docs = [], []
        self.second = self.pending = self.then_error = None
        self.began = False
        self.first_ended = self.second_started = None

    def close(self) -> bool:
        """On the loop, once the job ended or the request stopped waiting for
        it: no second find begins from now on. Whether one began."""
        with self._lock:
            self.closed = True
            return self.began

    def seen(self) -> list[tuple[Find, list[Doc]]]:
        """The finds whose answers the request saw, and those answers (set by
        :meth:`Gateway.chain` as the job is settled)."""
        seen = [(self.first, self.first_docs)] if self.first_seen else []
        if self.second_seen and self.second is not None:
            seen.append((self.second, self.second_docs))
        return seen


class Gateway:
    #: Whether :meth:`chain` may run two finds as one job: not for a gateway
    #: whose call path is its own (see :meth:`__init_subclass__`).
    chains: ClassVar[bool] = True
    #: Whether an embedded store's reads may be answered on the event loop
    #: (:meth:`_on_loop`): not for a gateway that asks the store its own way
    #: (a test double stalling a find in ``_find_now`` would stall the loop).
    reads_on_loop: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass with its own call path (a test double counting or failing
        # calls in ``_dispatch``, a capturing gateway's ``find``) sees every
        # call only on that path: it does not chain unless it says it may.
        super().__init_subclass__(**kwargs)
        if "chains" not in cls.__dict__ and any(name in cls.__dict__ for name in _CALL_PATH):
            cls.chains = False
        if "reads_on_loop" not in cls.__dict__ and any(name in cls.__dict__ for name in _READS):
            cls.reads_on_loop = False

    def __init__(self, store: Store, op_timeout_ms: int, slots: StoreSlots | None = None) -> None:
        self.store = store
        self.op_timeout_ms = op_timeout_ms
        if slots is None:  # a gateway outside the app (benchmarks, scripts): the defaults
            slots = StoreSlots(Settings.store_concurrency, Settings.store_queue_ms)
        self.slots = slots
        self.loop_reads = LoopReads()

    async def run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        count_store_call()
        return await self._bounded(functools.partial(fn, *args, **kwargs) if args or kwargs else fn)

    async def _bounded(self, call: Callable[[], R], patient: bool = False) -> R:
        # One coroutine from here to the slots (every store call of every
        # request passes here): the deadline read once, the checks inline.
        budget = current_deadline()
        try:
            if budget is None:  # outside a request: the op timeout bounds it
                return await (self._dispatch(call, True) if patient else self._dispatch(call))
            if budget.gone:
                raise ClientClosedRequestError()
            if budget.shed:  # one refusal answers the request; its other calls would wait the same
                raise OverloadedError(RETRY_AFTER_S)
            if budget.remaining() <= 0:
                raise RequestTimeoutError(budget.limit_s)
            with budget.scope():
                try:
                    return await self._dispatch(call)
                except Shed:
                    budget.shed = True
                    raise OverloadedError(RETRY_AFTER_S) from None
            # Only reached when the scope ended the call: the deadline, or the client left.
            if budget.gone:
                raise ClientClosedRequestError()
            raise RequestTimeoutError(budget.limit_s, waiting_on_store=True)
        except pymongo.errors.ExecutionTimeout:
            # maxTimeMS ran out: the query costs more than it may, the store is fine.
            raise RequestTimeoutError(self._limit_s(budget)) from None
        except (pymongo.errors.PyMongoError, StoreUnavailable) as exc:
            # Not reachable, dropped, or shutting down under the call (see
            # core.store.is_outage); any other is the call's own failure: an internal error.
            if not is_outage(exc):
                raise
            log.warning("store unavailable: %s", exc)
            raise StoreUnavailableError() from None

    def _dispatch(self, call: Callable[[], R], patient: bool = False) -> Awaitable[R]:
        """The store call itself, in a worker thread holding one of the slots
        (a heavy operation's, once it has the heavy lane: ``api.data.slots``),
        or on the loop, for an embedded store's read that may be (:meth:`_on_loop`).
        Not a coroutine of its own: it hands back the slots' (tests put a
        coroutine in its place, to fail or stall a call)."""
        budget = current_deadline()
        heavy = budget is not None and budget.heavy
        if type(call) is Read and self.store.embedded and not heavy and self.reads_on_loop:
            answer = self._on_loop(call)
            if answer is _UNOPENED:
                # Opened in the thread, as the read's first step: opening may wait on the file.
                call = functools.partial(_opening, self.store.db, threading.get_ident(), call)
            elif answer is not hop:
                return _Answered(answer)
        elif self.store.embedded and type(call) is not Read:
            call = functools.partial(self._lock_wait_bounded, call)
        # (patient only when asked: the store's stand-ins in tests and the
        # benchmark take the ordinary call's two arguments)
        return self.slots.run(call, heavy, patient=True) if patient else self.slots.run(call, heavy)

    def _lock_wait_bounded(self, call: Callable[[], R]) -> R:
        """In the worker thread: ``call`` (the API's own bookkeeping, which
        may write: budgets, persisted queries), whose writes wait for another
        process's hold on the embedded file's write lock (a load's batch) no
        longer than a call waits for a slot (the store is busy either way),
        nor past its time limit. SQLite's own wait is a minute, which no
        deadline ends: the thread, and its slot, were held that long after
        the request had answered ``TIMEOUT``. Past it the store did not answer:
        ``LockTimeout``, a ``NetworkTimeout``, read as an outage (``STORE_UNAVAILABLE``)."""
        wait_s = min(self.time_limit_ms() / 1000, self.slots.wait_s)
        with cast(Any, self.store.db).writes_wait_until(time.monotonic() + wait_s):
            return call()

    def _on_loop(self, call: Read[R]) -> R:
        """``call`` answered on the event loop, within :data:`ON_LOOP_MS` (or
        the request's time left, if less): its answer, or :data:`hop` if it
        must take the thread (it could not start at once, or ran out of the bound)."""
        counts = self.loop_reads
        started = time.monotonic()
        if not counts.allowed(call, started):
            return hop  # type: ignore[no-any-return]
        reset = _LOOP_UNTIL.set(started + ON_LOOP_WALL_MS / 1000)
        try:
            with cast(Any, self.store.db).quickly(ON_LOOP_MS) as worked:
                answer = call()
        except Unopened:
            return _UNOPENED  # type: ignore[no-any-return]
        except Busy:
            counts.busy += 1
            return hop  # type: ignore[no-any-return]
        except pymongo.errors.ExecutionTimeout:
            # Out of its bound (or of the request's time, which the thread will say).
            counts.overran += 1
            if time.thread_time() - worked >= ON_LOOP_MS / 1000:  # not if it waited
                counts.waste(call, started, time.monotonic())
            if call.undo is not None:
                call.undo()
            return hop  # type: ignore[no-any-return]
        finally:
            _LOOP_UNTIL.reset(reset)
        counts.answered += 1
        answered_on_loop.set(True)
        return answer

    def time_limit_ms(self) -> int:
        """``maxTimeMS`` for a store call starting now: the op timeout, or the
        request's time left if that is less. Called in the worker thread as
        the call starts, so the time spent waiting for a slot is not given twice."""
        budget = current_deadline()
        limit_ms = self.op_timeout_ms
        if budget is not None:
            left_ms = int(budget.remaining() * 1000)
            if left_ms < 1:
                raise RequestTimeoutError(budget.limit_s)
            limit_ms = min(limit_ms, left_ms)
        until = _LOOP_UNTIL.get()
        if until is not None:  # on the loop: its bound, what a chain's first find left of it
            bound_ms = int((until - time.monotonic()) * 1000)
            if bound_ms < 1:
                raise pymongo.errors.ExecutionTimeout("the loop's bound ran out", 50)
            limit_ms = min(limit_ms, bound_ms)
        return limit_ms

    def _limit_s(self, budget: Deadline | None) -> float:
        """The limit a query ran into: the op timeout, or the request's if shorter."""
        op_s = self.op_timeout_ms / 1000
        return op_s if budget is None else min(op_s, budget.limit_s)

    def ready(self) -> bool:
        """Whether the driver knows a server it can read from right now.

        This reads the topology that pymongo's monitor threads keep up to date
        (every ``heartbeatFrequencyMS``, sooner after some failed calls): no
        round trip, so it answers at once however busy the store slots are.
        """
        if self.store.embedded:
            return True
        db = self.store.db
        return db.client.topology_description.has_readable_server(db.read_preference)

    async def find(
        self,
        collection: str,
        query: dict[str, Any],
        projection: dict[str, int] | None = None,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        args = Find(collection, query, projection, sort, limit)
        return await self.call("find", collection, Read(self._find_now, args))

    async def find_patiently(
        self, collection: str, query: dict[str, Any], projection: dict[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """A find of the worker's own, outside any request, that waits for a
        store slot however busy clients keep them, never shed
        (``api.data.slots.StoreSlots.run``); not a client's store call."""
        args = Find(collection, query, projection, None, 0)
        with tracing.store_call("find", collection):
            return await self._bounded(Read(self._find_now, args), patient=True)

    def _find_now(self, find: Find) -> list[Doc]:
        """One find, in the worker thread: what every find of this gateway
        asks the store, chained or not (tests fail or stall a find here)."""
        cursor = self.store.db[find.collection].find(find.query, find.projection)
        if find.sort:
            cursor = cursor.sort(find.sort)
        if find.limit:
            cursor = cursor.limit(find.limit)
        return self._limited(lambda ms: list(cursor.max_time_ms(ms)))

    def can_chain(self) -> bool:
        """Whether :meth:`chain` may run now: the gateway's call path is
        Gateway's own (not replaced, by a subclass or a test), and the
        operation is not heavy (whose calls take the heavy lane one by one)."""
        if not (type(self).chains and _call_path_intact()):
            return False
        budget = current_deadline()
        return budget is None or not budget.heavy

    async def chain(self, chain: Chain) -> None:
        """``chain``'s two finds in one job, each counted and traced as
        :meth:`find` counts and traces one, on the loop, once the job ended
        (or the request stopped waiting for it). A second find the worker
        handed back is left in ``chain.pending`` for the caller to ask."""
        count_store_call()  # where run() counts the first: before any check
        first = tracing.store_call("find", chain.first.collection)
        first.__enter__()  # opened before the slot is waited for, as call() opens it
        chain.traced = first.recording
        error: BaseException | None = None
        try:
            await self._bounded(Read(self._chained, chain, chain.reset))
        except BaseException as exc:
            error = exc
            raise
        finally:
            began = chain.close()
            self._settle_chain(chain, first, began, error)

    def _chained(self, chain: Chain) -> None:
        """In the worker thread: the first find, then the second, unless the
        request stopped waiting, or today's path could answer it otherwise
        (someone waits for a slot, the request was shed, its client left, its
        deadline passed): then it is handed back to the loop."""
        chain.first_docs = self._find_now(chain.first)
        if chain.traced:
            chain.first_ended = time.time_ns()
        try:
            second = chain.then(chain.first_docs)
        except Exception as exc:
            chain.then_error = exc  # the plan's own error, not the store's
            raise
        if second is None:
            return
        budget = current_deadline()
        with chain._lock:
            if chain.closed:
                return  # its request stopped waiting: ask nothing more
            if self.slots.contended() or (
                budget is not None and (budget.gone or budget.shed or budget.remaining() <= 0)
            ):
                chain.pending = second
                return
            chain.second, chain.began = second, True
        if chain.traced:
            chain.second_started = time.time_ns()
        chain.second_docs = self._find_now(second)

    def _settle_chain(
        self,
        chain: Chain,
        first: tracing.StoreSpan | tracing.Untraced,
        began: bool,
        error: BaseException | None,
    ) -> None:
        """On the loop, once the job is settled (:meth:`Chain.close`): the
        count and spans of what it did, as the loop would have had them for
        two calls (the first's answer seen unless it failed; the second
        counted as it began, failed with the job if it did)."""
        chain.first_seen = error is None or began or error is chain.then_error
        chain.second_seen = began and error is None
        if isinstance(first, tracing.StoreSpan):
            if chain.first_seen:
                first.returned(len(chain.first_docs))
            if began:  # it ended in the worker, as the second began
                first.ended = chain.first_ended
        first.__exit__(None, None if chain.first_seen else error, None)
        if not began:
            return
        assert chain.second is not None
        count_store_call()
        second = tracing.store_call("find", chain.second.collection)
        second.__enter__()
        if isinstance(second, tracing.StoreSpan):
            second.started = chain.second_started or second.started
            if error is None:
                second.returned(len(chain.second_docs))
        second.__exit__(None, error, None)

    async def count(self, collection: str, query: dict[str, Any]) -> int:
        return await self.call("count", collection, Read(self._count_now, (collection, query)))

    def _count_now(self, args: tuple[str, dict[str, Any]]) -> int:
        collection, query = args
        documents = self.store.db[collection]
        return self._limited(lambda ms: documents.count_documents(query, maxTimeMS=ms))

    async def call(
        self, command: str, collection: str, fn: Callable[[], R], counted: bool = True
    ) -> R:
        """``fn``, one ``command`` on ``collection``, as :meth:`run` makes
        it, in a span of its own when the operation is traced
        (``api.telemetry.tracing``). Not ``counted`` among the request's
        store calls (which its client pays for) when it is the API's own
        bookkeeping: a client's budget kept in the store."""
        with tracing.store_call(command, collection) as span:
            result = await (self.run(fn) if counted else self._bounded(fn))
            if span.recording and isinstance(result, list):
                span.returned(len(result))
            return result

    def _limited(self, call: Callable[[int], R]) -> R:
        """``call(maxTimeMS)`` in the worker thread, with :meth:`time_limit_ms`.

        A MaxTimeMSExpired that comes before half that time has passed is not
        the limit running out (a server counts from when the call reached it,
        after it left here): it is the server cancelling the call. FerretDB v1
        does that to what still runs 3 s after its SIGTERM, and some of its
        commands (count's aggregate) then report "operation exceeded time
        limit"; answered as a timeout, an outage would read as the query's fault.
        """
        limit_ms = self.time_limit_ms()
        started = time.monotonic()
        try:
            return call(limit_ms)
        except pymongo.errors.ExecutionTimeout as exc:
            elapsed_ms = (time.monotonic() - started) * 1000
            if elapsed_ms >= limit_ms * EARLY_EXPIRY or _LOOP_UNTIL.get() is not None:
                raise  # on the loop: its CPU bound, which comes before the clock's
            raise StoreUnavailable(
                f"the store stopped a call after {elapsed_ms:.0f} ms of the {limit_ms} ms "
                f"it was given (is it shutting down?): {(exc.details or {}).get('errmsg', exc)}"
            ) from exc


#: The methods a find passes through, as Gateway has them: one replaced (by a
#: test, on the class) turns chaining off (:meth:`Gateway.can_chain`).
_CALL_PATH = ("find", "call", "run", "_bounded", "_dispatch")
#: The methods that ask the store: one of a subclass's own keeps its reads
#: off the loop (:attr:`Gateway.reads_on_loop`).
_READS = ("_find_now", "_count_now", "_chained", "_limited")
_methods = operator.itemgetter(*_CALL_PATH)
_ORIGINAL = _methods(vars(Gateway))


def _call_path_intact() -> bool:
    return bool(_methods(vars(Gateway)) == _ORIGINAL)  # functions compare by identity


def _opening(db: Any, thread: int, call: Callable[[], R]) -> R:
    """In a worker thread: the loop thread's quick connection opened (for its
    later reads: ``core.engine.database.Database.quickly``), then ``call``."""
    db.open_quick(thread)
    return call()
