"""One poll of the store per worker, fanned out in memory to its subscriptions.

The API learns what became news from the store alone (``core.news``), so a
loader on any host is heard: MongoDB's change streams would push it, but they
need a replica set, which neither engine here has. Instead, while a worker has
at least one subscription, one task asks the store every
``NEWSGRAPH_SUBSCRIPTION_POLL_MS`` for the news marker (a lookup by ``_id``)
and, only when it moved, for the articles that became news since the last
poll (one indexed query, oldest first, a page at a time). However many
subscriptions there are, that is all the store is asked; each article is
then offered to every subscription whose filter (``api.data.matcher``) selects it.

Every subscription has a bounded queue: one that falls a whole queue behind
(its client stopped reading) is dropped and its owner told, so no client can
make the worker hold more than that. A failed poll is reported to every
subscription once, as ``STORE_UNAVAILABLE``, and retried with a growing pause;
when the store answers again the polls go on from where they were, so the
articles written meanwhile still arrive.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from api.data import deadline
from api.data.gateway import Gateway
from api.data.matcher import Predicate
from api.errors import ClientError, StoreUnavailableError, TooManySubscriptionsError
from core.document import PRIVATE_FIELDS, Doc
from core.indexes import ARTICLES, LOADER
from core.news import MARKER_FIELD, MARKER_ID, NEWS_SEQ

log = logging.getLogger("newsgraph.api")

#: What a subscription is given: an article, or an error to report.
Event = Doc | ClientError

#: Longest pause between two polls while the store does not answer (seconds).
MAX_RETRY_S = 5.0
#: Everything an Article may select (its fields, and what its filter reads), never a private field.
PROJECTION = dict.fromkeys(sorted(PRIVATE_FIELDS), 0)
ORDER = [(NEWS_SEQ, 1), ("_id", 1)]


class Owner(Protocol):
    """Who holds subscriptions: a WebSocket connection."""

    def overflowed(self) -> None:
        """One of its subscriptions fell a whole queue behind and was dropped."""


@dataclass(frozen=True)
class PollPosition:
    """How far the polls have read: every article with a lower newsSeq, and
    those at ``seq`` up to ``last_id`` when a page ended inside one write."""

    seq: int
    last_id: str | None = None

    def query(self, written: int) -> dict[str, Any]:
        """The articles after this position, up to the marker ``written``."""
        if self.last_id is None:
            return {NEWS_SEQ: {"$gt": self.seq, "$lte": written}}
        return {
            "$and": [
                {NEWS_SEQ: {"$gte": self.seq, "$lte": written}},
                {"$or": [{NEWS_SEQ: {"$gt": self.seq}}, {"_id": {"$gt": self.last_id}}]},
            ]
        }


class Subscriber:
    """One subscription: its filter, and the articles waiting to be sent."""

    def __init__(self, feed: Feed, matches: Predicate, owner: Owner) -> None:
        self.feed = feed
        self.matches = matches
        self.owner = owner
        self.queue: asyncio.Queue[Event] = asyncio.Queue(feed.queue_size)

    def offer(self, event: Event) -> bool:
        """Queue ``event``; False if the queue is full."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def leave(self) -> None:
        self.feed.leave(self)


class Events:
    """A subscription's events, as the subscription field returns them.

    Each article is answered with fresh batch loaders (a subscription lives
    long: they must neither hold old answers nor grow) and within a time
    limit of its own, as a request's answer is. Closing leaves the feed; so
    does being dropped unclosed (an operation cancelled before it started).
    """

    def __init__(
        self, subscriber: Subscriber, forget: Callable[[], None], time_limit_s: float
    ) -> None:
        self._queue = subscriber.queue
        self._forget = forget
        self._time_limit_s = time_limit_s
        self._leave = weakref.finalize(self, subscriber.leave)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if not self._leave.alive:
            raise StopAsyncIteration
        event = await self._queue.get()
        self._forget()
        deadline.begin(self._time_limit_s)
        return event

    async def aclose(self) -> None:
        self._leave()


class Feed:
    def __init__(
        self,
        gateway: Gateway,
        poll_ms: int,
        queue_size: int,
        max_subscribers: int,
        time_limit_ms: int,
    ) -> None:
        self.gateway = gateway
        self.interval_s = poll_ms / 1000
        self.queue_size = queue_size
        #: Articles read per poll: a subscription that keeps up never has a
        #: full queue, and a burst (a whole folder loaded) arrives over
        #: several polls rather than dropping every subscription at once.
        self.page = max(1, queue_size // 2)
        self.max_subscribers = max_subscribers
        self.time_limit_s = time_limit_ms / 1000
        #: Polls done and subscriptions dropped for falling behind (metrics, tests).
        self.polls = 0
        self.dropped = 0
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def count(self) -> int:
        return len(self._subscribers)

    def join(self, matches: Predicate, owner: Owner) -> Subscriber:
        """A new subscription, polled for from now on; the poll starts with the first."""
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscriptionsError(
                f"this server holds as many subscriptions as it may ({self.max_subscribers}); "
                "try again later"
            )
        subscriber = Subscriber(self, matches, owner)
        self._subscribers.add(subscriber)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        """A subscription ends; the poll stops with the last."""
        self._subscribers.discard(subscriber)
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    def leave_all(self, owner: Owner) -> None:
        """Every subscription of ``owner`` ends (its connection closed)."""
        for subscriber in [s for s in self._subscribers if s.owner is owner]:
            self.leave(subscriber)

    async def close(self) -> None:
        self._subscribers.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        position: PollPosition | None = None
        failures = 0
        while True:
            try:
                position = await self.poll(position)
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("subscriptions cannot poll the store: %s", exc)
                    self._fan_out([StoreUnavailableError()], everyone=True)
                pause = min(self.interval_s * 2**failures, MAX_RETRY_S)
            else:
                if failures:
                    log.info("the store answers again: subscriptions go on from where they were")
                failures, pause = 0, 0.0
            self.polls += 1
            await asyncio.sleep(max(self.interval_s, pause))

    async def poll(self, position: PollPosition | None) -> PollPosition:
        """One poll: where the next begins. The first only reads the marker:
        a subscription hears of what becomes news after it began."""
        found = await self.gateway.find(LOADER, {"_id": MARKER_ID}, {MARKER_FIELD: 1})
        written = int(found[0].get(MARKER_FIELD, 0)) if found else 0
        if position is None:
            return PollPosition(written)
        if written < position.seq:
            log.warning(
                "the news marker went back from %d to %d (was the database replaced?); "
                "subscriptions follow it from there",
                position.seq,
                written,
            )
            return PollPosition(written)
        if written == position.seq and position.last_id is None:
            return position  # nothing new: the marker alone was asked
        docs = await self.gateway.find(
            ARTICLES, position.query(written), PROJECTION, ORDER, self.page
        )
        self._fan_out(docs)
        if len(docs) < self.page:
            return PollPosition(written)
        last = docs[-1]
        return PollPosition(int(last["_source"]["newsSeq"]), str(last["_id"]))

    def _fan_out(self, events: list[Any], everyone: bool = False) -> None:
        """Offer ``events`` to every subscription that wants them; drop those
        that cannot take one more."""
        behind: list[Subscriber] = []
        for subscriber in list(self._subscribers):
            for event in events:
                if not (everyone or self._wants(subscriber, event)):
                    continue
                if not subscriber.offer(event):
                    behind.append(subscriber)
                    break
        for subscriber in behind:
            self.leave(subscriber)
            self.dropped += 1
            try:
                subscriber.owner.overflowed()
            except Exception:
                log.exception("could not drop a subscription's client")

    @staticmethod
    def _wants(subscriber: Subscriber, doc: Doc) -> bool:
        try:
            return subscriber.matches(doc)
        except Exception:  # a bug must not stop the others' articles
            log.exception("a subscription's filter failed; the article is not sent to it")
            return False
