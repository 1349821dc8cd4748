"""Store access for the API: every call bounded, and outages made readable.

pymongo is synchronous; each call runs in a worker thread so the event loop
keeps serving other requests while one waits on the store. The threads are
bounded by :class:`api.data.slots.StoreSlots` (a call that cannot get one soon is
shed), each call ends at its request's deadline (:mod:`api.data.deadline`), and the
store is told the same through ``maxTimeMS``. The embedded engine (SQLite,
which runs outside the GIL) is called the same way, and stops at ``maxTimeMS``
too, so a busy store never holds the event loop.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

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
from core.store import Store, StoreUnavailable, is_outage

log = logging.getLogger("newsgraph.api")
R = TypeVar("R")

#: A MaxTimeMSExpired before this fraction of the call's maxTimeMS has passed
#: is the server cancelling the call, not its time limit (see Gateway._limited).
EARLY_EXPIRY = 0.5


class Gateway:
    def __init__(self, store: Store, op_timeout_ms: int, slots: StoreSlots | None = None) -> None:
        self.store = store
        self.op_timeout_ms = op_timeout_ms
        if slots is None:  # a gateway outside the app (benchmarks, scripts): the defaults
            slots = StoreSlots(Settings.store_concurrency, Settings.store_queue_ms)
        self.slots = slots

    async def run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        count_store_call()
        return await self._bounded(functools.partial(fn, *args, **kwargs) if args or kwargs else fn)

    async def _bounded(self, call: Callable[[], R]) -> R:
        # One coroutine from here to the slots (every store call of every
        # request passes here): the deadline read once, the checks inline.
        budget = current_deadline()
        try:
            if budget is None:  # outside a request: the op timeout bounds it
                return await self._dispatch(call)
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
            raise RequestTimeoutError(budget.limit_s)
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

    def _dispatch(self, call: Callable[[], R]) -> Awaitable[R]:
        """The store call itself, in a worker thread holding one of the slots
        (a heavy operation's, once it has the heavy lane: ``api.data.slots``).
        Not a coroutine of its own: it hands back the slots' (tests put a
        coroutine in its place, to fail or stall a call)."""
        budget = current_deadline()
        return self.slots.run(call, budget is not None and budget.heavy)

    def time_limit_ms(self) -> int:
        """``maxTimeMS`` for a store call starting now: the op timeout, or the
        request's time left if that is less. Called in the worker thread as
        the call starts, so the time spent waiting for a slot is not given twice."""
        budget = current_deadline()
        if budget is None:
            return self.op_timeout_ms
        left_ms = int(budget.remaining() * 1000)
        if left_ms < 1:
            raise RequestTimeoutError(budget.limit_s)
        return min(self.op_timeout_ms, left_ms)

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
        def fetch() -> list[dict[str, Any]]:
            cursor = self.store.db[collection].find(query, projection)
            if sort:
                cursor = cursor.sort(sort)
            if limit:
                cursor = cursor.limit(limit)
            return self._limited(lambda ms: list(cursor.max_time_ms(ms)))

        return await self.call("find", collection, fetch)

    async def count(self, collection: str, query: dict[str, Any]) -> int:
        def tally() -> int:
            documents = self.store.db[collection]
            return self._limited(lambda ms: documents.count_documents(query, maxTimeMS=ms))

        return await self.call("count", collection, tally)

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
            if elapsed_ms >= limit_ms * EARLY_EXPIRY:
                raise
            raise StoreUnavailable(
                f"the store stopped a call after {elapsed_ms:.0f} ms of the {limit_ms} ms "
                f"it was given (is it shutting down?): {(exc.details or {}).get('errmsg', exc)}"
            ) from exc
