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
  for the ``RateLimit`` headers.

Only clients have budgets: a caller of the schema with no transport in front
(:data:`~api.schema.context.LOCAL`: tests, scripts, benchmarks of execution)
draws nothing, and its answers carry no ``throttleStatus``.

The buckets live behind one small interface, :class:`Buckets` (``take``);
:class:`MemoryBuckets` keeps them per worker. A fleet sharing one budget per
client needs one other class keeping them in the store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from graphql import GraphQLError
from strawberry.types.graphql import OperationType

from api.bounded import BoundedLRU
from api.data.deadline import current_deadline
from api.errors import OverloadedError, QueryTooCostlyError, RateLimitedError, UnauthenticatedError
from api.operation.budget import store_calls_so_far
from api.operation.cost import CAP, Cost
from api.operation.request import Operation, Refused
from api.schema.context import LOCAL, Context, Identity, Tier
from core.config import Settings

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


@dataclass(frozen=True)
class Decision:
    """What a :meth:`Buckets.take` found."""

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
    """Each identity's bucket in this worker's memory, as (points, when):
    refilled lazily when next taken from."""

    def __init__(self, policies: Mapping[Tier, Policy], max_buckets: int = MAX_BUCKETS) -> None:
        self.policies = dict(policies)
        self._levels: BoundedLRU[str, tuple[float, float]] = BoundedLRU(
            max_buckets, max_buckets * BUCKET_BYTES, lambda _: BUCKET_BYTES
        )

    def __len__(self) -> int:
        return len(self._levels)

    def take(self, identity: Identity, points: int, now: float) -> Decision:
        policy = self.policies[identity.tier]
        level, then = self._levels.get(identity.key, (float(policy.burst), now))
        level = min(float(policy.burst), level + max(0.0, now - then) * policy.rate)
        if points > level:
            self._levels[identity.key] = (level, now)
            return Decision(False, level, policy, (points - level) / policy.rate)
        level = min(float(policy.burst), level - points)
        self._levels[identity.key] = (level, now)
        return Decision(True, level, policy)


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

    @classmethod
    def for_settings(cls, settings: Settings) -> Limits:
        tiers = policies(settings)
        return cls(
            MemoryBuckets(tiers),
            tiers,
            settings.heavy_query_points,
            settings.heavy_query_concurrency,
        )

    def take(self, identity: Identity, points: int) -> Decision:
        return self.buckets.take(identity, points, self.clock())

    def policy(self, identity: Identity) -> Policy:
        return self.policies[identity.tier]


def identity_of(op: Operation) -> Identity:
    context = op.context
    return context.identity if isinstance(context, Context) else LOCAL


def _note(op: Operation, decision: Decision) -> None:
    """Keep the budget's state where the transport reads it for its headers."""
    if isinstance(op.context, Context):
        op.context.budget_status = decision


def _draw(limits: Limits, op: Operation, identity: Identity, points: int, asked: int) -> None:
    """Draw ``points`` towards a price of ``asked`` from ``identity``'s
    bucket, or refuse the operation (``RATE_LIMITED``)."""
    decision = limits.take(identity, points)
    _note(op, decision)
    if not decision.allowed:
        raise _over_budget(decision, asked)


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
        identity = identity_of(op)
        return None if identity == LOCAL else identity

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

    def __call__(self, op: Operation) -> None:
        identity = self.client(op)
        if identity is None:
            return
        if identity.refused is not None:
            # Out of budget, guessing further waits (RATE_LIMITED).
            asked = OPERATION_POINTS + STORE_CALL_POINTS
            _draw(self.limits, op, identity, asked, asked)
            error = UnauthenticatedError(identity.refused)
            raise Refused(GraphQLError(str(error), original_error=error))
        policy = self.limits.policy(identity)
        leave = self.limits.running.enter(identity, policy.concurrency)
        if leave is None:
            message = (
                f"rate limited: {policy.concurrency} operations of this client are running "
                "already; wait for one to end"
            )
            raise Refused(GraphQLError(message, original_error=RateLimitedError(message, 1)))
        op.done.append(leave)
        _draw(self.limits, op, identity, OPERATION_POINTS, OPERATION_POINTS)
        op.charged = OPERATION_POINTS


class Throttle(_BudgetStep):
    """Step, once the operation is priced: its price within the client's
    budget. A price over the tier's whole bucket could never run
    (``QUERY_TOO_COSTLY``); a heavy one waits for nothing, it takes a slot of
    the heavy pool or is shed (503, ``OVERLOADED``); then the rest of the
    price is drawn, or the operation refused (``RATE_LIMITED``, 429). A
    subscription draws each answer's price as it sends it (:class:`ThrottlePayload`)."""

    def __call__(self, op: Operation) -> None:
        priced = self.priced(op)
        if priced is None:
            return
        identity, asked = priced
        policy = self.limits.policy(identity)
        if asked > policy.burst:
            message = (
                f"query too costly: it could cost {asked:,} points, more than a client of "
                f"this kind ({identity.tier}) may spend at once ({policy.burst:,}). Ask for "
                "fewer items with `first`, or nest fewer lists."
            )
            raise Refused(GraphQLError(message, original_error=QueryTooCostlyError(message)))
        if op.kind is OperationType.SUBSCRIPTION:
            return
        if asked >= self.limits.heavy_points:
            leave = self.limits.running.enter_heavy(self.limits.heavy_concurrency)
            if leave is None:
                deadline = current_deadline()
                if deadline is not None:
                    deadline.shed = True  # a 503 with Retry-After, as a full store is
                error = OverloadedError(1)
                raise Refused(GraphQLError(str(error), original_error=error))
            op.done.append(leave)
        _draw(self.limits, op, identity, asked - op.charged, asked)
        op.charged = asked


class ThrottlePayload(_BudgetStep):
    """Step on each answer of a subscription, before it is sent: its price
    (one query's, for the article it answers), or ``RATE_LIMITED`` in its place."""

    def __call__(self, op: Operation) -> None:
        priced = self.priced(op)
        if priced is None:
            return
        identity, asked = priced
        _draw(self.limits, op, identity, asked, asked)
        op.charged = asked


class ReportBudget(_BudgetStep):
    """Step on each answer: what it drew and did not use given back, and the
    budget reported in ``extensions.cost`` as Shopify reports it:
    ``requestedQueryCost`` and ``actualQueryCost`` in points, beside the
    objects and store calls, and the bucket as ``throttleStatus``."""

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
            cost["requestedQueryCost"] = price(op.cost)
            cost["actualQueryCost"] = min(used, price(op.cost))
        if identity is not None:
            cost["throttleStatus"] = self._give_back(op, identity, used).throttle_status()
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
        decision = self.limits.take(identity, -unused)
        _note(op, decision)
        return decision
