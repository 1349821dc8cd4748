"""One poll of the store per worker, fanned out in memory to its subscriptions.

The API learns what became news from the store alone (``core.news``), so a
loader on any host is heard: MongoDB's change streams would push it, but they
need a replica set, which neither engine here has. Instead, while a worker has
at least one subscription, one task asks the store every
``NEWSGRAPH_SUBSCRIPTION_POLL_MS`` for the news marker (a lookup by ``_id``)
and, only when it moved, for the articles that became news since the last
poll (one indexed query, oldest first, a page at a time). However many
subscriptions there are, that is all the store is asked.

Identical subscriptions (the same document, operation, variables and
visibility: the key their :class:`Answers` give) form one :class:`Group`,
as Hasura multiplexes its live queries: each article is offered to a group
whose filter (``api.data.matcher``) selects it, tested once, and answered
once (:class:`Shared`), when the first member reads it; every member is sent
that answer. The work per article is then that of the distinct
subscriptions, however many clients hold each; a worker builds a few answers
at a time (``ANSWERS_AT_ONCE``), and that work, like each payload's, takes
turns with the worker's other requests (:class:`Turns`).

Every limit on how many subscriptions run and what they hold, the worker's
and each client's, is checked in one step as a subscription joins, whatever
its transport (``api.live.allowance``): each is counted, and charged its
group's document and plan (once per group for the worker, once per group for
each client with a member in it) and what it holds of its own, when it
joins, and given it back when it leaves, however it ends.

Every subscription has a bounded queue: one that falls a whole queue behind
(its client stopped reading) is dropped and its owner told, so no client can
make the worker hold more than that. What its connection holds unsent is
bounded in bytes too (``NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES``): each
transport measures it (``api.live.unsent``) and asks :meth:`Feed.admits`
before each message, and a client over the bound is dropped as one that fell
behind is (close 4008 over WebSocket, the end of its event stream).

A failed poll is reported to every subscription once, as
``STORE_UNAVAILABLE``, and retried with a growing pause; when the store
answers again the polls go on from where they were, so the articles written
meanwhile still arrive.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import weakref
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from api.data import deadline
from api.data.gateway import Gateway
from api.data.matcher import Predicate
from api.errors import ClientError, StoreUnavailableError
from api.live.allowance import Allowance, ClientKey, own_network
from core.document import PRIVATE_FIELDS, Doc
from core.indexes import ARTICLES, LOADER
from core.news import MARKER_FIELD, MARKER_ID, NEWS_SEQ

log = logging.getLogger("newsgraph.api")

#: What a subscription is given: an article, or an error to report.
Event = Doc | ClientError

#: Longest pause between two polls while the store does not answer (seconds).
MAX_RETRY_S = 5.0
#: Articles a worker answers at once for its groups of subscriptions. An
#: answer may be a few megabytes of objects (the budget allows 50,000), and
#: an article sent to many distinct subscriptions would otherwise have all of
#: them built at once; a few at a time keep that memory small and leave the
#: store's slots to the worker's queries, while the work itself, CPU or the
#: store's, is the same.
ANSWERS_AT_ONCE = 4
#: Everything an Article may select (its fields, and what its filter reads), never a private field.
PROJECTION = dict.fromkeys(sorted(PRIVATE_FIELDS), 0)
ORDER = [(NEWS_SEQ, 1), ("_id", 1)]
#: Memory one subscription holds of its own, measured with tracemalloc
#: (tests/api/test_live_memory.py): its place in the feed and its empty
#: queue, its operation as the pipeline and the transport keep it, their
#: generators and task: 14-15 kB over WebSocket, rounded up.
SUBSCRIPTION_BYTES = 20_000


class Owner(Protocol):
    """Who holds subscriptions: a WebSocket connection, or an event stream."""

    def overflowed(self, why: str | None = None) -> None:
        """One of its subscriptions fell a whole queue behind and was dropped
        (or all of them, as their connection held too much unsent: ``why``)."""

    @property
    def writing(self) -> asyncio.Lock:
        """Held while one of its payloads is answered and written: one at a
        time, so a slow reader keeps one answer waiting, not one per
        subscription."""


class Answers(Protocol):
    """How a subscription answers each event it is sent
    (``api.execution.subscription``). Subscriptions whose keys are equal get
    equal answers: one answer serves them all."""

    @property
    def key(self) -> Hashable: ...

    def size(self) -> int:
        """Estimated bytes the group of subscriptions answered alike holds for
        all its members (the document, its plan, the key): measured, so
        asked once per group, when its first member is let in."""

    @property
    def own(self) -> int:
        """Estimated bytes each member holds of its own (its text)."""

    async def answer(self, event: Event) -> Any:
        """The answer to ``event`` (an ``ExecutionResult``); never raises."""


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


class Turns:
    """A turnstile for work that runs without waiting (a payload encoded and
    compressed, the start of an article's answer): one task passes per turn
    of the event loop.

    An article sent to a hundred subscribers wakes a hundred tasks at once;
    asyncio runs every ready task before it looks at the sockets again, so
    each request arriving meanwhile would wait for all of them. A task
    passes by taking the lock, which is given back at the next turn of the
    loop, by then with the others waiting in line behind it (asyncio's locks
    are fair): one piece per turn, with the timers and sockets, and what they
    woke, served between them. What the piece then waits for (a slow client,
    the store) holds up no one."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        await self._lock.acquire()
        asyncio.get_running_loop().call_soon(self._lock.release)


class Group:
    """Identical subscriptions: one filter, one way of answering (the first
    member's: the others' are equal), and the members sent each answer."""

    def __init__(self, feed: Feed, matches: Predicate, answers: Answers) -> None:
        self.feed = feed
        self.matches = matches
        self.answers = answers
        self.members: set[Subscriber] = set()
        #: Bytes it holds for all its members (``Answers.size``), charged
        #: once to the worker's allowance.
        self.size = 0

    async def answer(self, event: Event) -> Any:
        """``event`` answered, within a time limit of its own as a request's
        answer is (this runs in a task of its own, see :class:`Shared`),
        once one of the worker's answering slots is free."""
        async with self.feed.answering:
            deadline.begin(self.feed.time_limit_s)
            self.feed.answered += 1
            await self.feed.turns.take()
            return await self.answers.answer(event)


class Shared:
    """One event as a group is sent it. It is answered once, when the first
    member reads it (a group whose members have all left, or fell behind,
    answers nothing), in a task of its own: a member that leaves while
    waiting does not cancel the answer the others wait for."""

    __slots__ = ("_task", "event", "group")

    def __init__(self, event: Event, group: Group) -> None:
        self.event = event
        self.group = group
        self._task: asyncio.Task[Any] | None = None

    async def answer(self) -> Any:
        task = self._task
        if task is None:
            task = self._task = asyncio.get_running_loop().create_task(
                self.group.answer(self.event)
            )
            task.add_done_callback(_retrieved)
        return await asyncio.shield(task)


def _retrieved(task: asyncio.Task[Any]) -> None:
    """An answer's task ended: its exception, if any, was (or will never be)
    awaited by a member; not an "exception never retrieved" warning."""
    if not task.cancelled():
        task.exception()


class Subscriber:
    """One subscription: its group, and the events waiting to be sent; the
    client it was charged to, and the bytes it holds of its own."""

    def __init__(self, group: Group, owner: Owner) -> None:
        self.group = group
        self.owner = owner
        self.client: ClientKey | None = None
        self.own = 0
        self.queue: asyncio.Queue[Shared] = asyncio.Queue(group.feed.queue_size)

    def offer(self, shared: Shared) -> bool:
        """Queue ``shared``; False if the queue is full."""
        try:
            self.queue.put_nowait(shared)
        except asyncio.QueueFull:
            return False
        return True

    def leave(self) -> None:
        self.group.feed.leave(self)


class Events:
    """A subscription's events, as the subscription field returns them: each
    a :class:`Shared` answer to await. Closing leaves the feed; so does being
    dropped unclosed (an operation cancelled before it started)."""

    def __init__(self, subscriber: Subscriber) -> None:
        self._queue = subscriber.queue
        self._leave = weakref.finalize(self, subscriber.leave)

    def __aiter__(self) -> AsyncIterator[Shared]:
        return self

    async def __anext__(self) -> Shared:
        if not self._leave.alive:
            raise StopAsyncIteration
        return await self._queue.get()

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
        max_bytes: int | None = None,
        per_client_bytes: int | None = None,
        per_client: int | None = None,
        unsent_bytes: int | None = None,
        per_network_bytes: int | None = None,
        per_network: int | None = None,
        network: Callable[[ClientKey], ClientKey] = own_network,
    ) -> None:
        self.gateway = gateway
        self.interval_s = poll_ms / 1000
        self.queue_size = queue_size
        #: Articles read per poll: a subscription that keeps up never has a
        #: full queue, and a burst (a whole folder loaded) arrives over
        #: several polls rather than dropping every subscription at once.
        self.page = max(1, queue_size // 2)
        #: How many subscriptions may run and the bytes they may hold, in all
        #: and per client and network (None: unbounded).
        self.allowance = Allowance(
            max_bytes or sys.maxsize,
            per_client_bytes or sys.maxsize,
            max_subscribers,
            per_client or sys.maxsize,
            per_network_bytes or sys.maxsize,
            per_network or sys.maxsize,
            network,
        )
        self.time_limit_s = time_limit_ms / 1000
        #: Most bytes a subscription's connection may hold that its client
        #: has not read, once it holds any (None: unbounded).
        self.unsent_bytes = unsent_bytes or sys.maxsize
        #: Polls done, subscriptions dropped (for falling behind, or, of
        #: those, for holding too much unsent), and events answered (once per
        #: group each) (metrics, tests).
        self.polls = 0
        self.dropped = 0
        self.dropped_unsent = 0
        self.answered = 0
        #: The worker's subscription work, taken in turns with its other requests.
        self.turns = Turns()
        self.answering = asyncio.Semaphore(ANSWERS_AT_ONCE)
        self._groups: dict[Hashable, Group] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def count(self) -> int:
        """Subscriptions served now."""
        return sum(len(group.members) for group in self._groups.values())

    @property
    def bytes(self) -> int:
        """Estimated bytes its subscriptions hold now (``api.live.allowance``)."""
        return self.allowance.held

    @property
    def groups(self) -> int:
        """Distinct subscriptions served now: the answers each article may take."""
        return len(self._groups)

    def join(
        self, matches: Predicate, owner: Owner, answers: Answers, client: ClientKey
    ) -> Subscriber:
        """A new subscription of ``client``, polled for from now on; the poll
        starts with the first. It joins the group of the subscriptions
        identical to it, whose filter is ``matches`` too, if the worker's
        bounds and its client's let it in (``api.live.allowance``: raises
        ``TooManySubscriptionsError`` if not)."""
        group = self._groups.get(answers.key)
        own = SUBSCRIPTION_BYTES + answers.own
        # A new group's size is measured (its plan made with it) only for a
        # new group, and only once the counts let it in.
        size = self.allowance.admit(
            client, answers.key, answers.size if group is None else group.size, group is None, own
        )
        subscriber = self._admit(matches, owner, answers)
        subscriber.group.size = size
        subscriber.client, subscriber.own = client, own
        if self._task is None:
            # In a context of its own: the first subscriber's may be an HTTP
            # request's (over SSE), whose deadline ends when that client leaves.
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        return subscriber

    def _admit(self, matches: Predicate, owner: Owner, answers: Answers) -> Subscriber:
        group = self._groups.get(answers.key)
        if group is None:
            group = self._groups[answers.key] = Group(self, matches, answers)
        subscriber = Subscriber(group, owner)
        group.members.add(subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        """A subscription ends; its group with its last member, the poll with the last."""
        group = subscriber.group
        if subscriber not in group.members:
            return
        group.members.discard(subscriber)
        if subscriber.client is not None:
            ended = not group.members
            self.allowance.release(
                subscriber.client, group.answers.key, group.size, ended, subscriber.own
            )
        if not group.members and self._groups.get(group.answers.key) is group:
            del self._groups[group.answers.key]
        if not self._groups and self._task is not None:
            self._task.cancel()
            self._task = None

    def leave_all(self, owner: Owner) -> None:
        """Every subscription of ``owner`` ends (its connection closed)."""
        for subscriber in [s for s in self._subscribers() if s.owner is owner]:
            self.leave(subscriber)

    def admits(self, owner: Owner, unsent: int, size: int) -> bool:
        """Whether the connection of ``owner``, which holds ``unsent`` bytes
        its client has not read (``api.live.unsent``), may be handed a
        message of ``size`` bytes more: always when it holds none (an answer
        larger than the bound still reaches a client that reads), else while
        it would hold at most ``unsent_bytes``. If not, the subscriptions of
        ``owner`` are dropped, as those that fall a whole queue behind are,
        and the message is not to be sent: a client that does not read holds
        its last answer's bytes, not one more answer's besides, and the
        copies made to send it."""
        if not unsent or unsent + size <= self.unsent_bytes:
            return True
        mine = [s for s in self._subscribers() if s.owner is owner]
        for subscriber in mine:
            self.leave(subscriber)
        self.dropped += len(mine)
        self.dropped_unsent += len(mine)
        log.info(
            "dropped %d subscription(s) whose client left %d bytes unread, a %d-byte "
            "message more would pass NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES=%d",
            len(mine),
            unsent,
            size,
            self.unsent_bytes,
        )
        try:
            owner.overflowed(f"too slow: {unsent} bytes were waiting to be read")
        except Exception:
            log.exception("could not drop a subscription's client")
        return False

    def _subscribers(self) -> list[Subscriber]:
        return [s for group in self._groups.values() for s in group.members]

    async def close(self) -> None:
        for group in self._groups.values():
            group.members.clear()
        self._groups.clear()
        self.allowance.clear()
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
        """Offer ``events`` to every group that wants them, one shared answer
        each, to all its members; drop those that cannot take one more."""
        behind: list[Subscriber] = []
        for group in list(self._groups.values()):
            members = list(group.members)
            for event in events:
                if not (everyone or self._wants(group, event)):
                    continue
                shared = Shared(event, group)
                fell = {s for s in members if not s.offer(shared)}
                if fell:
                    behind.extend(fell)
                    members = [s for s in members if s not in fell]
        for subscriber in behind:
            self.leave(subscriber)
            self.dropped += 1
            try:
                subscriber.owner.overflowed()
            except Exception:
                log.exception("could not drop a subscription's client")

    @staticmethod
    def _wants(group: Group, doc: Doc) -> bool:
        try:
            return group.matches(doc)
        except Exception:  # a bug must not stop the others' articles
            log.exception("a subscription's filter failed; the article is not sent to it")
            return False
