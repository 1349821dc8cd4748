"""Answers already made, given again to the same query asked again, until the
stored articles change.

Mobile apps opening their front page all ask the same thing: the same query
text, operation and variables, with the same visibility. A worker keeps the
answer it made (:class:`AnswerCache`) and gives it to the next identical
operation instead of asking the store and shaping it again. Only the answer
is reused: every step of the pipeline still runs before it, on every
request (the client admitted, its document found and priced, the price
drawn from its budget), and every finishing step after it (errors, the
cost report, cache hints, the budget given back); so a refused operation is
refused whether or not its answer is kept. A kept answer is given as it
was made, ``extensions.cost`` included (what making it took, which is what
the client pays for): so the cache never changes what a client is sent or
charged, and no client can tell from an answer whether another asked the
same before it. The access log, the metrics (``mode="cached"``) and the
trace say what the worker really did.

**Fresh to two intervals.** An answer is kept with the loaders' change
marker as read before it was made (``api.data.changes``), and given only
while the marker, read at most two intervals ago
(``NEWSGRAPH_ANSWER_CACHE_CHECK_MS``, default 1 s), still says that. So an
answer is never given once a write that landed two intervals before has
been heard of, on any worker of a fleet; the marker moving drops every
answer at once. An answer made while the marker moved is not kept. While the
store cannot tell (it does not answer), nothing kept is given. And none is
kept longer than ``NEWSGRAPH_CACHE_MAX_AGE``, which bounds what any cache may
keep of an answer, whoever changed the store.

**Not what a shared cache may keep.** An answer that may go to a shared
cache (an anonymous GET's: its request gathers cache keys,
``api.schema.caching``) is always made. A CDN in front keeps those itself,
and the loader purges it right after each write (``loaders.purge``): a CDN
refilled within the two intervals a worker still trusts its marker would be
handed the answer the purge was for, and keep it for ``s-maxage`` (an hour).
Made, it is what the store holds. Without a CDN such requests are not kept
here either; POSTs, and whatever carries credentials, are.

**What is kept.** A query's answer with data and no error (an error may be
the moment's: a timeout, a store that did not answer), made whole (not in
parts). The key is what makes two operations answered alike, as it makes
identical subscriptions share their answers
(``api.execution.subscription.share_key``: the text, the operation, the
variables as JSON, whether the admin asks, which sees what others do not),
and whether ``@defer`` was taken out. Clients choose texts and variables, so
the cache is bounded by estimated bytes (``NEWSGRAPH_ANSWER_CACHE_BYTES``,
default 16 MB; 0: nothing kept), least recently used first out, and one
answer may take at most a sixteenth of it: one client sending distinct
variables evicts answers, which costs the others what an answer costs
without the cache, never memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult
from strawberry.types.graphql import OperationType

from api.bounded import ENTRY_BYTES, BoundedLRU, deep_size
from api.data.changes import Changes, Marker
from api.data.gateway import Gateway
from api.execution.compiled import count
from api.execution.plan.nodes import Answer
from api.execution.subscription import share_key
from api.operation.budget import store_calls_so_far
from api.operation.cost import count_objects
from api.operation.request import Operation

#: A label of ``Operation.execution`` and of the executions metric.
CACHED = "cached"
#: Memory an answer's data holds, estimated as this many times its JSON's
#: length and :data:`OBJECT_BYTES` per object (one more for the root): within
#: 0.96-1.18 of ``sys.getsizeof`` of everything in it for the front page, the
#: mobile query, pages of titles and providers, 0.61 for a lone count
#: (tests/api/test_answered.py keeps it so). Measuring each answer took 50
#: times as long as encoding it: 0.3 ms for a front page.
JSON_FACTOR = 2
OBJECT_BYTES = 250


class KeptAnswer(Answer):
    """A kept answer as given again: with the store calls making it took."""

    __slots__ = ("store_calls",)

    def __init__(self, data: dict[str, Any], objects: int, store_calls: int | None) -> None:
        super().__init__(data, None, objects)
        self.store_calls = store_calls


@dataclass(frozen=True, slots=True)
class Kept:
    """An answer kept: its data (never changed once made: every request it
    is given to reads the same), its objects counted, the store calls making
    it took, and when making it began."""

    data: dict[str, Any]
    objects: int
    store_calls: int | None
    made: float
    size: int


@dataclass(slots=True)
class Lookup:
    """What :meth:`AnswerCache.find` found: the answer to give, or where to
    keep the one about to be made (``key`` None: it is not kept), and when it
    began to be made (its data is read from then on: its age counts from then)."""

    answer: KeptAnswer | None = None
    key: Hashable | None = None
    marker: Marker | None = None
    began: float = 0.0


#: Nothing found and nothing to keep.
MISS = Lookup()


class AnswerCache:
    """One worker's kept answers (per schema, so per app)."""

    #: Share of the bound one answer may take; larger ones are made each time.
    MAX_SHARE = 16

    def __init__(
        self,
        max_bytes: int,
        check_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check_s = check_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.answers: BoundedLRU[Hashable, Kept] = BoundedLRU(
            max_bytes // ENTRY_BYTES, max_bytes, lambda kept: kept.size, max_bytes // self.MAX_SHARE
        )
        #: The store whose marker says whether answers still hold; the first
        #: the app's requests reach (one per app).
        self.changes: Changes | None = None
        #: The marker the answers now kept were made under.
        self.marker: Marker | None = None

    @property
    def bytes(self) -> int:
        return int(self.answers.currsize)

    def find(self, op: Operation, gateway: Gateway | None) -> Lookup:
        """The kept answer to ``op``, about to run: a result of its own (for
        the finishing steps to write in), holding the kept data (which none
        changes); else where to keep the one about to be made."""
        context = op.context
        if (
            op.kind is not OperationType.QUERY
            or gateway is None
            or not op.query
            or getattr(context, "keys", None) is not None  # may go to a shared cache
        ):
            return MISS
        changes = self.changes
        if changes is None:
            changes = self.changes = Changes(gateway, self.check_s, self.clock)
        elif changes.gateway is not gateway:
            return MISS  # another store's: not this cache's to answer
        marker = changes.current()
        if marker is None:  # not heard from the store lately: nothing is trusted
            return MISS
        if marker != self.marker:  # the store changed: nothing kept holds
            self.answers.clear()
            self.marker = marker
        shared = share_key(op.query, op.name, op.variables, bool(getattr(context, "admin", False)))
        if type(shared) is not tuple:
            return MISS
        whole = op.executed is not None and op.executed is not op.document  # @defer out
        key = (shared, whole)
        kept = self.answers.get(key)
        now = self.clock()
        if kept is None:
            return Lookup(key=key, marker=marker, began=now)
        if now - kept.made > self.max_age_s:
            del self.answers[key]
            return Lookup(key=key, marker=marker, began=now)
        op.execution = CACHED
        count(CACHED)
        return Lookup(KeptAnswer(kept.data, kept.objects, kept.store_calls))

    def keep(self, lookup: Lookup, op: Operation, result: Any) -> None:
        """Keep ``result``, the answer just made for ``lookup``'s key, if it
        is whole, has data and no error, and the marker did not move while it
        was made."""
        key, marker = lookup.key, lookup.marker
        if key is None or marker is None or self.changes is None:
            return
        if type(result) not in (ExecutionResult, Answer) or result.errors or result.data is None:
            return
        if self.changes.value != marker or self.marker != marker:
            # Made while the store changed: it may hold some of both. (So
            # every answer kept was made under ``self.marker``, and dropped
            # with the others when that moves.)
            return
        objects = getattr(result, "objects", None)
        if objects is None:
            objects = count_objects(result.data)
        size = OBJECT_BYTES * (objects + 1) + deep_size(key) + ENTRY_BYTES
        if size > self.answers.max_item_bytes:
            return  # too large by its objects alone: not encoded to be sure
        try:  # and its JSON: together, a fiftieth of measuring it
            size += JSON_FACTOR * len(orjson.dumps(result.data))
        except TypeError:
            return
        if size > self.answers.max_item_bytes:
            return
        now, before = store_calls_so_far(), op.calls_before
        calls = now - before if now is not None and before is not None else None
        self.answers[key] = Kept(result.data, objects, calls, lookup.began, size)

    async def close(self) -> None:
        self.answers.clear()
        if self.changes is not None:
            await self.changes.close()
