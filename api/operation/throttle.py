"""Each client's budget: points that refill over time, and operations at once.

The price check (``api.operation.budget``) bounds one operation; nothing there
stops one client from sending many. So every identity (``api.schema.context``:
an address, an API key, the admin) has a **token bucket** of points per tier
(``NEWSGRAPH_<TIER>_POINTS_PER_S`` refilling it, ``NEWSGRAPH_<TIER>_BURST`` the
most it holds) and a **concurrency limit** (``NEWSGRAPH_<TIER>_CONCURRENCY``).
A price in points is :func:`points`: the objects and store calls the cost
analysis counts, and a little for the operation itself, so that a flood of
cheap (or refused) requests is not free. As Shopify does, the worst case is
drawn before the operation runs and what the answer did not take is given
back once it is made, so an honest query's price is what it did.

Four steps apply it to every way in:

- :class:`Admit`, first of all: refuses a request whose API key is unknown
  or revoked, holds a slot of the identity's concurrency until the answer is
  made, and draws the operation's own price; a refused document pays that too;
- :class:`Throttle`, after ``Price``: refuses what the tier may never spend at
  once, puts an operation of at least ``NEWSGRAPH_HEAVY_QUERY_POINTS`` in a
  small pool of its own (``NEWSGRAPH_HEAVY_QUERY_CONCURRENCY`` per worker, more
  are shed with 503), so that cheap ones never wait behind heavy ones, and
  draws the rest of the price;
- :class:`ThrottlePayload`, on each answer of a subscription (the pipeline's
  ``each`` steps): that answer's price;
- :class:`ReportBudget`, on each answer: gives back what it did not use, and
  reports the budget in ``extensions.cost`` (Shopify's ``requestedQueryCost``,
  ``actualQueryCost`` and ``throttleStatus``), and on the request's context
  for the ``RateLimit`` headers; an answer shared caches may keep
  (``api.operation.caching``) carries no budget, being everyone's.

Only clients have budgets: a caller of the schema with no transport in front
(:data:`~api.schema.context.LOCAL`: tests, scripts, benchmarks of execution)
draws nothing, and its answers carry no ``throttleStatus``.

The buckets live behind one small interface, :class:`Buckets` (``take``);
:class:`MemoryBuckets` keeps them per worker (``NEWSGRAPH_BUDGETS=worker``,
the default), so N workers give a client N budgets. With
``NEWSGRAPH_BUDGETS=store`` :class:`StoreBuckets` keeps one per client in the
store the fleet shares (collection ``_budgets``), whichever worker answers:

- each bucket is one document, the time at which it is full again (``full``,
  seconds since the epoch: the "theoretical arrival time" of the generic cell
  rate algorithm), so a draw is one atomic ``findAndModify`` that adds the
  price's refill time when the bucket is not full and the price fits (or sets
  it from now when the bucket is full), which every engine does with plain
  ``$inc``/``$set`` (FerretDB v1 has no update pipelines). A refusal reads the
  document to say when to retry, and is remembered by the worker, so a
  client that keeps asking while refused costs no store call until the wait
  it was told is over. The ``Admit`` and ``Throttle`` draws are awaited (two
  round trips before a query runs); what an answer gives back, and a
  subscription's answers (whose step cannot wait), go to the store behind
  the answer, decided on the level last read there.
- a store that fails refuses at once with ``STORE_UNAVAILABLE``, through the
  gateway's bounds (``api.data.gateway``), as the query itself would.
- a bucket full again is a forgotten one: each worker deletes those (once a
  minute at most, on the ``full`` index); there is no TTL index on FerretDB v1
  nor on the embedded engine.
- the buckets are bounded (``NEWSGRAPH_BUDGETS_STORED_MAX``): a client with
  many identities (an IPv6 /64 each, or forged ``X-Forwarded-For`` through a
  careless proxy) would otherwise add a document per identity within each
  refill window. At the bound, full buckets are deleted first (harmless: a
  full bucket and none are the same); a bucket still refilling is never
  deleted, since that would hand its owner its points back, which a flood
  could use to refill its own. So when the store still holds its most, a
  client with no bucket draws from one **overflow bucket** of its tier
  (``overflow:<tier>``), remembered by the worker for :data:`OVERFLOW_S`: a
  flood of new identities spends one client's budget, its own, never anyone
  else's, and every client that had a bucket keeps it. Newcomers during such
  a flood share the flood's bucket until the flood's buckets are full again.
  Each worker adds buckets one at a time and counts them exactly near the
  bound (once a second further from it, and at it), so a lone worker holds
  the bound to the overflow buckets; with several, the store may pass it by
  what the others added within that second.

README (Running several workers) gives the cost per request of each kind.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from graphql import GraphQLError
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from strawberry.types.graphql import OperationType

from api.bounded import BoundedLRU
from api.data.deadline import current_deadline
from api.data.gateway import Gateway
from api.errors import OverloadedError, QueryTooCostlyError, RateLimitedError, UnauthenticatedError
from api.operation.budget import store_calls_so_far
from api.operation.caching import shared
from api.operation.cost import CAP, Cost
from api.operation.request import Operation, Refused, gateway_of
from api.schema.context import LOCAL, Context, Identity, Tier
from core.config import Settings
from core.indexes import BUDGETS

log = logging.getLogger("newsgraph.api")

#: What any operation costs besides its objects and store calls: reading the
#: request, parsing (or finding) the document, framing the answer. About as
#: much server time as ten objects (README, Benchmarks: ~0.4 ms a request).
OPERATION_POINTS = 10
#: A store call, as objects: its round trip and the thread hop cost about ten.
STORE_CALL_POINTS = 10
#: How many identities' buckets a worker keeps (least recently used go first:
#: a bucket forgotten is a full one), and the bytes each is taken to hold.
MAX_BUCKETS = 100_000
BUCKET_BYTES = 300
#: How often one worker deletes the buckets in the store that are full again (seconds).
PRUNE_BUCKETS_S = 60.0
#: How long a worker sends a client it found no room for to its tier's
#: overflow bucket before it looks for room again (seconds).
OVERFLOW_S = 10.0
#: How long a worker trusts its count of the buckets in the store while far
#: (below nine tenths) from the bound (seconds), and how often at most it
#: deletes full buckets to make room at the bound.
COUNT_S = 1.0


def overflow_key(tier: Tier) -> str:
    """The bucket that clients of ``tier`` share when the store holds its most."""
    return f"overflow:{tier}"


def points(objects: int, store_calls: int) -> int:
    """The price in points of this many objects and store calls."""
    return min(OPERATION_POINTS + objects + STORE_CALL_POINTS * store_calls, CAP)


def price(cost: Cost) -> int:
    return points(cost.objects, cost.store_calls)


@dataclass(frozen=True)
class Policy:
    """One tier's budget."""

    #: Points given back per second.
    rate: float
    #: The most points held at once (a full bucket): the largest price that can run.
    burst: int
    #: Operations of one identity running at once.
    concurrency: int

    @property
    def window_s(self) -> int:
        """Seconds an empty bucket takes to fill."""
        return math.ceil(self.burst / self.rate)


def policies(settings: Settings) -> dict[Tier, Policy]:
    return {
        "anonymous": Policy(
            settings.anonymous_points_per_s,
            settings.anonymous_burst,
            settings.anonymous_concurrency,
        ),
        "key": Policy(settings.key_points_per_s, settings.key_burst, settings.key_concurrency),
        "admin": Policy(
            settings.admin_points_per_s, settings.admin_burst, settings.admin_concurrency
        ),
    }


class Decision(NamedTuple):
    """What a :meth:`Buckets.take` found (a named tuple: three are made for
    most requests, and a tuple is made in a fraction of a frozen dataclass's
    time)."""

    allowed: bool
    #: Points left in the bucket after this take (before it, if refused).
    available: float
    policy: Policy
    #: When refused: seconds until the points asked for will be there.
    retry_after_s: float = 0.0

    @property
    def full_in_s(self) -> int:
        """Seconds until the bucket is full again."""
        return math.ceil(max(0.0, self.policy.burst - self.available) / self.policy.rate)

    def throttle_status(self) -> dict[str, Any]:
        """Shopify's ``throttleStatus``."""
        return {
            "maximumAvailable": self.policy.burst,
            "currentlyAvailable": int(self.available),
            "restoreRate": self.policy.rate,
        }


class Buckets(Protocol):
    """Where the buckets are kept: per worker now (:class:`MemoryBuckets`);
    in the store, shared by a fleet, by another class of the same shape."""

    def take(self, identity: Identity, points: int, now: float) -> Decision:
        """Draw ``points`` from ``identity``'s bucket at time ``now`` (seconds,
        on one clock for all calls): all of them, or none and a refusal. A
        negative ``points`` gives points back (never past a full bucket), and
        0 only reads the bucket."""
        ...


class MemoryBuckets:
    """Each identity's bucket in this worker's memory, as [points, when]:
    refilled lazily when next taken from. A bucket is changed where it is
    kept (reading it marks it used), so a take costs one look-up, not a
    look-up and a store: three are made for most requests."""

    def __init__(self, policies: Mapping[Tier, Policy], max_buckets: int = MAX_BUCKETS) -> None:
        self.policies = dict(policies)
        self._levels: BoundedLRU[str, list[float]] = BoundedLRU(
            max_buckets, max_buckets * BUCKET_BYTES, lambda _: BUCKET_BYTES
        )

    def __len__(self) -> int:
        return len(self._levels)

    def take(self, identity: Identity, points: int, now: float) -> Decision:
        policy = self.policies[identity.tier]
        burst = float(policy.burst)
        bucket = self._levels.get(identity.key)
        if bucket is None:
            bucket = self._levels[identity.key] = [burst, now]
        level, then = bucket
        level = min(burst, level + max(0.0, now - then) * policy.rate)
        bucket[1] = now
        if points > level:
            bucket[0] = level
            return Decision(False, level, policy, (points - level) / policy.rate)
        bucket[0] = level = min(burst, level - points)
        return Decision(True, level, policy)


def _level(policy: Policy, full: float | None, now: float) -> float:
    """The points in a bucket that is full at ``full`` (None: never drawn from)."""
    if full is None or full <= now:
        return float(policy.burst)
    return max(0.0, policy.burst - (full - now) * policy.rate)


class StoreBuckets:
    """Each identity's bucket in the store, shared by every worker and host
    (see the module's docstring). Its draws are awaited (:meth:`take`), or
    made behind an answer that cannot wait (:meth:`take_behind`)."""

    def __init__(
        self,
        policies: Mapping[Tier, Policy],
        clock: Callable[[], float] | None = None,
        max_buckets: int = MAX_BUCKETS,
        stored_max: int = 50_000,
    ) -> None:
        self.policies = dict(policies)
        #: Seconds since the epoch: one clock for the fleet.
        self.clock = clock or time.time
        #: Most buckets in the store (NEWSGRAPH_BUDGETS_STORED_MAX).
        self.stored_max = stored_max
        #: The buckets in the store as last counted (plus those added since),
        #: when, and when full ones were last deleted to make room.
        self._stored = 0
        self._counted = float("-inf")
        self._cleared = float("-inf")
        #: One new bucket at a time from this worker: count, then insert.
        self._creating = threading.Lock()
        #: Clients sent to their tier's overflow bucket, until when.
        self._overflowed: BoundedLRU[str, float] = BoundedLRU(
            max_buckets, max_buckets * BUCKET_BYTES, lambda _: BUCKET_BYTES
        )
        #: When each bucket this worker last saw is full again.
        self._known: BoundedLRU[str, float] = BoundedLRU(
            max_buckets, max_buckets * BUCKET_BYTES, lambda _: BUCKET_BYTES
        )
        self._pruned = float("-inf")
        self._behind: set[asyncio.Task[Any]] = set()
        #: Refill time given back by this worker's answers and not yet in the
        #: store, by identity: what the store says is that much later.
        self._giving: dict[str, float] = {}
        #: Each bucket's lock while this worker draws on it, and how many wait.
        self._locks: dict[str, list[Any]] = {}

    async def take(
        self, gateway: Gateway, identity: Identity, points: int, landing: float = 0.0
    ) -> Decision:
        """As :meth:`Buckets.take`, on the bucket in the store. This worker's
        draws on one bucket go to the store one at a time: FerretDB v1 reads
        and then writes a ``findAndModify``, so two at once could lose one.
        ``landing``: refill time this draw gives back that was counted as given."""
        key = self.bucket_of(identity)
        held = self._locks.get(key)
        if held is None:
            held = self._locks[key] = [asyncio.Lock(), 0]
        held[1] += 1
        try:
            async with held[0]:
                return await self._take(gateway, identity, key, points, landing)
        finally:
            held[1] -= 1
            if not held[1]:
                del self._locks[key]

    def bucket_of(self, identity: Identity) -> str:
        """The key of the bucket ``identity`` draws from: its own, or its
        tier's overflow bucket while this worker found no room for its own."""
        until = self._overflowed.get(identity.key)
        if until is None:
            return identity.key
        if until <= self.clock():
            del self._overflowed[identity.key]
            return identity.key
        return overflow_key(identity.tier)

    async def _take(
        self, gateway: Gateway, identity: Identity, key: str, points: int, landing: float
    ) -> Decision:
        policy = self.policies[identity.tier]
        now = self.clock()
        known = self._known.get(key)
        if points > 0 and known is not None and _level(policy, known, now) < points:
            # Refused when last seen, and not refilled since: only what this
            # client's answers give back could have changed that.
            return self._decide(policy, known, now, points, allowed=False)
        cost_s = points / policy.rate
        window_s = policy.burst / policy.rate
        buckets = gateway.store.db[BUDGETS]

        def draw() -> tuple[float | None, bool, str]:
            bucket = key
            if points <= 0:
                if points == 0:
                    found = buckets.find_one({"_id": bucket})
                else:  # given back: the bucket is full that much sooner
                    found = buckets.find_one_and_update(
                        {"_id": bucket},
                        {"$inc": {"full": cost_s}},
                        return_document=ReturnDocument.AFTER,
                    )
                return (found["full"] if found else None), True, bucket
            # Three times at most: another worker may create it first, and
            # with no room for it, the overflow bucket is drawn on instead.
            for _ in range(3):
                found = buckets.find_one_and_update(
                    {"_id": bucket, "full": {"$gt": now, "$lte": now + window_s - cost_s}},
                    {"$inc": {"full": cost_s}},
                    return_document=ReturnDocument.AFTER,
                )
                if found is None:  # full (or never drawn from): from now
                    found = buckets.find_one_and_update(
                        {"_id": bucket, "full": {"$lte": now}},
                        {"$set": {"full": now + cost_s}},
                        return_document=ReturnDocument.AFTER,
                    )
                if found is not None:
                    return found["full"], True, bucket
                found = buckets.find_one({"_id": bucket})
                if found is not None:  # the price does not fit
                    return found["full"], False, bucket
                try:
                    if bucket == overflow or self._create(buckets, bucket, now + cost_s, now):
                        if bucket == overflow:  # past the bound by one per tier, at most
                            buckets.insert_one({"_id": bucket, "full": now + cost_s})
                        return now + cost_s, True, bucket
                except DuplicateKeyError:
                    continue
                bucket = overflow  # no room: the bucket new clients of the tier share
            return None, False, bucket

        overflow = overflow_key(identity.tier)
        try:
            full, allowed, bucket = await gateway.call(
                "findAndModify", BUDGETS, draw, counted=False
            )
        finally:
            if landing:  # in the store now (or lost with it)
                left = self._giving.get(key, 0.0) - landing
                if left > 1e-9:
                    self._giving[key] = left
                else:
                    self._giving.pop(key, None)
        if bucket != key:  # sent to the overflow bucket: from now on, for a while
            self._overflowed[identity.key] = now + OVERFLOW_S
            key = bucket
        if full is not None:
            full -= self._giving.get(key, 0.0)
            self._known[key] = full
        if now - self._pruned >= PRUNE_BUCKETS_S:
            self._pruned = now
            self._later(self._prune(gateway, now))
        return self._decide(policy, full, now, points, allowed)

    def _create(self, buckets: Any, key: str, full: float, now: float) -> bool:
        """Insert ``key``'s bucket if the store has room for it (in a gateway
        thread): False if it has none. Raises ``DuplicateKeyError`` if another
        worker inserted it first."""
        with self._creating:
            # Counted exactly near the bound; far from it, or at it (where each
            # new identity of a flood would otherwise cost a count), once a second.
            near = self.stored_max * 0.9 <= self._stored < self.stored_max
            if near or now - self._counted >= COUNT_S:
                self._stored, self._counted = buckets.count_documents({}), now
            if self._stored >= self.stored_max and now - self._cleared >= COUNT_S:
                # Full buckets first: deleting one changes nobody's budget.
                self._cleared = now
                buckets.delete_many({"full": {"$lt": now}})
                self._stored, self._counted = buckets.count_documents({}), now
            if self._stored >= self.stored_max:
                return False
            buckets.insert_one({"_id": key, "full": full})
            self._stored += 1
            return True

    def known(self, identity: Identity) -> float:
        """The points in ``identity``'s bucket as this worker last saw it."""
        policy = self.policies[identity.tier]
        return _level(policy, self._known.get(self.bucket_of(identity)), self.clock())

    def take_behind(self, gateway: Gateway, identity: Identity, points: int) -> Decision:
        """A draw that cannot wait for the store: decided on the bucket as this
        worker last saw it, and made in the store behind the answer."""
        policy = self.policies[identity.tier]
        now = self.clock()
        key = self.bucket_of(identity)
        known = self._known.get(key)
        level = _level(policy, known, now)
        if points > 0 and level < points:
            return self._decide(policy, known, now, points, allowed=False)
        full = max(known or now, now) + points / policy.rate
        self._known[key] = full
        if points > 0:
            self._later(self.take(gateway, identity, points))
        elif points < 0:
            seconds = -points / policy.rate
            self._giving[key] = self._giving.get(key, 0.0) + seconds
            self._later(self.take(gateway, identity, points, landing=seconds))
        return self._decide(policy, full, now, points, allowed=True)

    @staticmethod
    def _decide(
        policy: Policy, full: float | None, now: float, points: int, allowed: bool
    ) -> Decision:
        level = _level(policy, full, now)
        if allowed:
            return Decision(True, level, policy)
        return Decision(False, level, policy, max(0.0, points - level) / policy.rate)

    async def _prune(self, gateway: Gateway, now: float) -> None:
        buckets = gateway.store.db[BUDGETS]
        stale = {"full": {"$lt": now}}
        await gateway.call("delete", BUDGETS, lambda: buckets.delete_many(stale), counted=False)

    def _later(self, work: Coroutine[Any, Any, Any]) -> None:
        """``work`` on this event loop, outside the request (its deadline is
        not this work's: the gateway's own bounds apply), its failure logged."""
        task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self._behind.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._behind.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a budget's draw behind an answer failed: %s", task.exception())


class Running:
    """Operations running now: per identity, and in the heavy pool."""

    def __init__(self) -> None:
        self._by_identity: dict[str, int] = {}
        self.heavy = 0

    def enter(self, identity: Identity, most: int) -> Callable[[], None] | None:
        """A slot of ``identity``'s (its release), or None if all ``most`` are taken."""
        held = self._by_identity.get(identity.key, 0)
        if held >= most:
            return None
        self._by_identity[identity.key] = held + 1

        def leave() -> None:
            left = self._by_identity[identity.key] - 1
            if left:
                self._by_identity[identity.key] = left
            else:
                del self._by_identity[identity.key]

        return leave

    def running(self, identity: Identity) -> int:
        return self._by_identity.get(identity.key, 0)

    def enter_heavy(self, most: int) -> Callable[[], None] | None:
        if self.heavy >= most:
            return None
        self.heavy += 1

        def leave() -> None:
            self.heavy -= 1

        return leave


class Limits:
    """The budgets of one schema (so one worker): the buckets, who runs now,
    and the heavy pool; shared by the steps below."""

    def __init__(
        self,
        buckets: Buckets,
        policies: Mapping[Tier, Policy],
        heavy_points: int,
        heavy_concurrency: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buckets = buckets
        self.policies = dict(policies)
        self.heavy_points = heavy_points
        self.heavy_concurrency = heavy_concurrency
        self.clock = clock
        self.running = Running()
        #: The buckets in the store, when the fleet shares them (NEWSGRAPH_BUDGETS=store).
        self.shared: StoreBuckets | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Limits:
        tiers = policies(settings)
        limits = cls(
            MemoryBuckets(tiers),
            tiers,
            settings.heavy_query_points,
            settings.heavy_query_concurrency,
        )
        if settings.budgets == "store":
            limits.shared = StoreBuckets(tiers, stored_max=settings.budgets_stored_max)
        return limits

    def shared_for(self, op: Operation) -> tuple[StoreBuckets, Gateway] | None:
        """The store's buckets, and the gateway to them, if ``op`` draws there."""
        if self.shared is None:
            return None
        gateway = gateway_of(op)
        return None if gateway is None else (self.shared, gateway)

    def take(self, identity: Identity, points: int) -> Decision:
        return self.buckets.take(identity, points, self.clock())

    def available(self, identity: Identity) -> float:
        """The points in ``identity``'s bucket as this worker knows them now,
        without asking the store (with the budgets there: as last read)."""
        if self.shared is not None:
            return self.shared.known(identity)
        return self.take(identity, 0).available

    def policy(self, identity: Identity) -> Policy:
        return self.policies[identity.tier]


def identity_of(op: Operation) -> Identity:
    context = op.context
    return context.identity if isinstance(context, Context) else LOCAL


def _note(op: Operation, decision: Decision) -> None:
    """Keep the budget's state where the transport reads it for its headers."""
    context = op.context
    if isinstance(context, Context):
        context.budget_status = decision


def _forget(op: Operation) -> None:
    """Leave the budget's state out of ``op``'s answer (its headers)."""
    if isinstance(op.context, Context):
        op.context.budget_status = None


def _draw(
    limits: Limits, op: Operation, identity: Identity, points: int, asked: int
) -> Awaitable[None] | None:
    """Draw ``points`` towards a price of ``asked`` from ``identity``'s
    bucket, or refuse the operation (``RATE_LIMITED``): at once from this
    worker's buckets, or what to await for the store's."""
    # This worker's buckets (the default) first: three draws a request.
    shared = None if limits.shared is None else limits.shared_for(op)
    if shared is None:
        decision = limits.take(identity, points)
        _note(op, decision)
        if not decision.allowed:
            raise _over_budget(decision, asked)
        return None
    buckets, gateway = shared

    async def draw() -> None:
        _decided(op, await buckets.take(gateway, identity, points), asked)

    return draw()


def _decided(op: Operation, decision: Decision, asked: int) -> None:
    _note(op, decision)
    if not decision.allowed:
        raise _over_budget(decision, asked)


def _then(first: Awaitable[None] | None, then: Callable[[], None]) -> Awaitable[None] | None:
    """``then()`` once ``first`` is done: at once if it is None (nothing to await)."""
    if first is None:
        then()
        return None

    async def both() -> None:
        await first
        then()

    return both()


def _charge(op: Operation, points: int, drawing: Awaitable[None] | None) -> Awaitable[None] | None:
    """``op.charged`` set to ``points`` once ``drawing`` (the draw that
    charges them) is done: at once if there is nothing to await."""
    if drawing is None:
        op.charged = points
        return None

    def charged() -> None:
        op.charged = points

    return _then(drawing, charged)


def _over_budget(decision: Decision, asked: int) -> Refused:
    wait = max(1, math.ceil(decision.retry_after_s))
    message = (
        f"rate limited: this operation costs {asked:,} points and {int(decision.available):,} "
        f"are left (they refill at {decision.policy.rate:g} a second); retry in {wait} s"
    )
    return Refused(GraphQLError(message, original_error=RateLimitedError(message, wait)))


class _BudgetStep:
    """A step of this module: it works on the budgets of one schema."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    @staticmethod
    def client(op: Operation) -> Identity | None:
        """Whose budget ``op`` draws from; None for :data:`LOCAL`, which has none."""
        context = op.context  # identity_of, read on every step of this module
        identity = context.identity if isinstance(context, Context) else LOCAL
        # The key first: one text compared, not the dataclass's fields, for every client.
        return None if identity.key == LOCAL.key and identity == LOCAL else identity

    def priced(self, op: Operation) -> tuple[Identity, int] | None:
        """Whose budget ``op`` draws from, and its price; None for :data:`LOCAL`."""
        assert op.cost is not None
        identity = self.client(op)
        return None if identity is None else (identity, price(op.cost))


class Admit(_BudgetStep):
    """Step, first of all: who asks may ask. Refuses an unknown or revoked API
    key (``UNAUTHENTICATED``; the address's budget pays for the look-up, and
    once it is spent the refusal is ``RATE_LIMITED``),
    holds a slot of the identity's concurrency until the answer is made, and
    draws :data:`OPERATION_POINTS`, so that even a document that is refused
    later has been paid for."""

    def __call__(self, op: Operation) -> Awaitable[None] | None:
        identity = self.client(op)
        if identity is None:
            return None
        if identity.refused is not None:
            # Out of budget, guessing further waits (RATE_LIMITED).
            asked = OPERATION_POINTS + STORE_CALL_POINTS
            error = UnauthenticatedError(identity.refused)

            def refuse() -> None:
                raise Refused(GraphQLError(str(error), original_error=error))

            return _then(_draw(self.limits, op, identity, asked, asked), refuse)
        policy = self.limits.policies[identity.tier]
        leave = self.limits.running.enter(identity, policy.concurrency)
        if leave is None:
            message = (
                f"rate limited: {policy.concurrency} operations of this client are running "
                "already; wait for one to end"
            )
            raise Refused(GraphQLError(message, original_error=RateLimitedError(message, 1)))
        op.done.append(leave)
        return _charge(
            op,
            OPERATION_POINTS,
            _draw(self.limits, op, identity, OPERATION_POINTS, OPERATION_POINTS),
        )


class Throttle(_BudgetStep):
    """Step, once the operation is priced: its price within the client's
    budget. A price over the tier's whole bucket could never run
    (``QUERY_TOO_COSTLY``); a heavy one waits for nothing, it takes a slot of
    the heavy pool or is shed (503, ``OVERLOADED``); then the rest of the
    price is drawn, or the operation refused (``RATE_LIMITED``, 429). A
    subscription draws each answer's price as it sends it (:class:`ThrottlePayload`)."""

    def __call__(self, op: Operation) -> Awaitable[None] | None:
        priced = self.priced(op)
        if priced is None:
            return None
        identity, asked = priced
        policy = self.limits.policies[identity.tier]
        if asked > policy.burst:
            message = (
                f"query too costly: it could cost {asked:,} points, more than a client of "
                f"this kind ({identity.tier}) may spend at once ({policy.burst:,}). Ask for "
                "fewer items with `first`, or nest fewer lists."
            )
            raise Refused(GraphQLError(message, original_error=QueryTooCostlyError(message)))
        if op.kind is OperationType.SUBSCRIPTION:
            return None
        if asked >= self.limits.heavy_points:
            deadline = current_deadline()
            leave = self.limits.running.enter_heavy(self.limits.heavy_concurrency)
            if leave is None:
                if deadline is not None:
                    deadline.shed = True  # a 503 with Retry-After, as a full store is
                error = OverloadedError(1)
                raise Refused(GraphQLError(str(error), original_error=error))
            op.done.append(leave)
            if deadline is not None:  # its store calls take the heavy lane (api.data.slots)
                deadline.heavy = True
        return _charge(op, asked, _draw(self.limits, op, identity, asked - op.charged, asked))


class ThrottlePayload(_BudgetStep):
    """Step on each answer of a subscription, before it is sent: its price
    (one query's, for the article it answers), or ``RATE_LIMITED`` in its place."""

    def __call__(self, op: Operation) -> None:
        priced = self.priced(op)
        if priced is None:
            return
        identity, asked = priced
        shared = self.limits.shared_for(op)
        if shared is None:
            decision = self.limits.take(identity, asked)
        else:  # it cannot wait: made in the store behind the answer
            buckets, gateway = shared
            decision = buckets.take_behind(gateway, identity, asked)
        _decided(op, decision, asked)
        op.charged = asked


class ReportBudget(_BudgetStep):
    """Step on each answer: what it drew and did not use given back, and the
    budget reported in ``extensions.cost`` as Shopify reports it:
    ``requestedQueryCost`` and ``actualQueryCost`` in points, beside the
    objects and store calls, and the bucket as ``throttleStatus``; but not
    in an answer shared caches may keep (``api.operation.caching``, the step
    before this one, decides), which carries no client's budget."""

    def __call__(self, op: Operation, result: Any) -> Any:
        identity = self.client(op)
        extensions = dict(result.extensions or {})
        cost = dict(extensions.get("cost") or {})
        used: int | None = None
        if "actual" in cost and op.cost is not None:
            actual = cost["actual"]
            calls = actual.get("storeCalls")
            if calls is None:  # not counted here: as many as asked
                calls = op.cost.store_calls
            used = points(actual.get("objects", 0), calls)
            cost["requestedQueryCost"] = asked = price(op.cost)
            cost["actualQueryCost"] = min(used, asked)
        if identity is not None:
            status = self._give_back(op, identity, used)
            if shared(op):
                # Everyone's answer (a CDN may keep it): no client's budget in it.
                _forget(op)
            else:
                cost["throttleStatus"] = status.throttle_status()
        op.charged = 0
        if cost:
            extensions["cost"] = cost
            result.extensions = extensions
        return result

    def settle(self, op: Operation, objects: int) -> None:
        """An answer delivered in parts is made, with this many objects in
        all: what it did not use is given back (its parts carry no
        ``extensions.cost``)."""
        identity = self.client(op)
        if identity is None or op.cost is None:
            return
        now, before = store_calls_so_far(), op.calls_before
        calls = now - before if now is not None and before is not None else op.cost.store_calls
        self._give_back(op, identity, points(objects, calls))
        op.charged = 0

    def _give_back(self, op: Operation, identity: Identity, used: int | None) -> Decision:
        """What ``op`` drew and did not use (all it drew is used when ``used``
        is unknown) back in ``identity``'s bucket: the bucket as it is now."""
        unused = op.charged - used if used is not None and op.charged > used else 0
        shared = None if self.limits.shared is None else self.limits.shared_for(op)
        if shared is None:
            decision = self.limits.take(identity, -unused)
        else:  # behind the answer, which is made
            buckets, gateway = shared
            decision = buckets.take_behind(gateway, identity, -unused)
        _note(op, decision)
        return decision
