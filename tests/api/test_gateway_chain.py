"""Two finds as one worker-thread job (``Gateway.chain``), on each engine: both
asked in one slot and counted as two calls, the second made from the first's
answer; never begun once its request stopped waiting; handed back to the loop
whenever a lone call could fare otherwise (someone waits for a slot); failures
answered as a lone call's. Gateways whose call path is their own never chain."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pymongo
import pymongo.errors
import pymongo.monitoring
import pytest

from api.data import deadline
from api.data.gateway import Chain, Find, Gateway
from api.data.slots import StoreSlots
from api.errors import (
    ClientClosedRequestError,
    OverloadedError,
    RequestTimeoutError,
    StoreUnavailableError,
)
from api.execution.replay import Recording, Replaying
from api.telemetry.stats import RequestStats, collecting
from bench.querying import MemoryGateway
from bench.stubbed import Capture, StubGateway
from core.config import Settings
from core.document import Doc
from core.store import Store
from tests.api.test_store_call_path import holding_the_slot, let_go, settled

ARTICLES = "articles"
DOCS = [
    {"_id": "a", "title": "A", "related": ["b", "c"]},
    {"_id": "b", "title": "B", "related": []},
    {"_id": "c", "title": "C", "related": []},
]


class Watched(Gateway):
    """The store's own finds, each noted as it starts (in the worker thread),
    with a hook to stall or fail the nth."""

    def __init__(self, store: Store, size: int = 1, wait_ms: int = 5000) -> None:
        super().__init__(store, 10_000, StoreSlots(size, wait_ms))
        self.asked: list[Any] = []
        self.threads: list[int] = []
        self.in_flight: list[int] = []
        self.before: dict[int, Any] = {}  # the nth find (from 1): called before it asks

    def _find_now(self, find: Find) -> list[Doc]:
        self.asked.append(find.query)
        self.threads.append(threading.get_ident())
        self.in_flight.append(self.slots.in_flight)
        hook = self.before.get(len(self.asked))
        if hook is not None:
            hook()
        return super()._find_now(find)


def related_of(docs: list[Doc]) -> Find | None:
    """The second find, made of the first's answer (as a plan makes it)."""
    ids = [i for d in docs for i in d.get("related", [])]
    return Find(ARTICLES, {"_id": {"$in": ids}}, {"title": 1}) if ids else None


def first_of(key: str) -> Find:
    return Find(ARTICLES, {"_id": key}, {"title": 1, "related": 1})


@pytest.fixture
def articles(store: Store) -> Store:
    store.db[ARTICLES].insert_many([dict(d) for d in DOCS])
    return store


def chained(gw: Gateway, chain: Chain, limit_s: float = 5) -> tuple[RequestStats, Any]:
    """``chain`` run in a request of ``limit_s`` seconds: its stats, and what it raised."""

    async def main() -> tuple[RequestStats, Any]:
        raised: Any = None
        with collecting() as stats, deadline.within(limit_s):
            try:
                await gw.chain(chain)
            except Exception as exc:
                raised = exc
        return stats, raised

    return asyncio.run(main())


def test_a_chain_asks_both_finds_in_one_slot_and_counts_two_calls(articles: Store) -> None:
    gw = Watched(articles)
    chain = Chain(first_of("a"), related_of)
    stats, raised = chained(gw, chain)
    assert raised is None
    assert stats.store_calls == 2
    assert gw.asked == [{"_id": "a"}, {"_id": {"$in": ["b", "c"]}}]
    assert len(set(gw.threads)) == 1 and gw.in_flight == [1, 1]  # one job, one slot
    assert [d["_id"] for d in chain.first_docs] == ["a"]
    assert sorted(d["title"] for d in chain.second_docs) == ["B", "C"]
    assert chain.began and chain.pending is None
    assert [(tuple(f), [d["_id"] for d in docs]) for f, docs in chain.seen()] == [
        (tuple(first_of("a")), ["a"]),
        (tuple(related_of(chain.first_docs) or ()), [d["_id"] for d in chain.second_docs]),
    ]
    assert gw.slots.in_flight == 0


def test_a_chain_whose_first_answer_asks_nothing_more_is_one_call(articles: Store) -> None:
    gw = Watched(articles)
    chain = Chain(first_of("b"), related_of)
    stats, raised = chained(gw, chain)
    assert raised is None and stats.store_calls == 1
    assert gw.asked == [{"_id": "b"}]
    assert not chain.began and chain.pending is None
    assert [f for f, _ in chain.seen()] == [first_of("b")]


RAISED = {
    "deadline": RequestTimeoutError,
    "client": ClientClosedRequestError,
    "cancelled": asyncio.CancelledError,
}


@pytest.mark.parametrize("by", list(RAISED))
def test_an_abandoned_chain_never_begins_its_second_find(articles: Store, by: str) -> None:
    """Its request stopped waiting during the first find: by its deadline, its
    client leaving, or cancelled by someone else (its deadline still far: only
    the chain being closed tells the worker)."""
    gw, release = Watched(articles), threading.Event()
    gw.before[1] = lambda: release.wait(5)
    chain = Chain(first_of("a"), related_of)

    async def main() -> RequestStats:
        with collecting() as stats, deadline.within(0.2 if by == "deadline" else 30) as budget:
            task = asyncio.get_running_loop().create_task(gw.chain(chain))
            await asyncio.sleep(0.1)
            if by == "client":
                budget.cancel()
            elif by == "cancelled":
                task.cancel()
            with pytest.raises(RAISED[by]):
                await task
            assert gw.slots.in_flight == 1  # the thread holds it, in the first find
            release.set()
            await settled(gw)
        return stats

    stats = asyncio.run(main())
    assert gw.asked == [{"_id": "a"}]  # the worker found the chain closed
    assert stats.store_calls == 1
    assert chain.closed and not chain.began and chain.pending is None and chain.seen() == []


def test_a_chain_hands_its_second_find_back_when_a_call_waits_for_the_slot(
    articles: Store,
) -> None:
    gw = Watched(articles)
    waiting: list[asyncio.Task[int]] = []

    async def main() -> tuple[RequestStats, Any]:
        loop = asyncio.get_running_loop()

        def another_request_asks() -> None:
            with deadline.within(5):
                waiting.append(loop.create_task(gw.count(ARTICLES, {})))

        def first_find() -> None:  # in the worker: another call comes, and waits
            # Another request's: a context of its own, not this one's stats.
            loop.call_soon_threadsafe(another_request_asks, context=contextvars.Context())
            ends = time.monotonic() + 5
            while not gw.slots.contended() and time.monotonic() < ends:
                time.sleep(0.005)

        gw.before[1] = first_find
        chain = Chain(first_of("a"), related_of)
        with collecting() as stats, deadline.within(5):
            await gw.chain(chain)
        assert chain.pending == related_of(chain.first_docs) and not chain.began
        assert gw.asked == [{"_id": "a"}]
        assert await waiting[0] == 3  # the waiter had the slot first
        await settled(gw)
        return stats, chain

    stats, chain = asyncio.run(main())
    assert stats.store_calls == 1  # the second is the caller's to ask, as any call
    assert [f for f, _ in chain.seen()] == [first_of("a")]


def test_a_chain_that_finds_no_slot_within_the_wait_is_shed_as_one_call(articles: Store) -> None:
    gw, release = Watched(articles, wait_ms=100), threading.Event()
    chain = Chain(first_of("a"), related_of)

    async def main() -> RequestStats:
        holder = await holding_the_slot(gw, articles, release, [])
        with collecting() as stats, deadline.within(5) as budget:
            with pytest.raises(OverloadedError):
                await gw.chain(chain)
            assert budget.shed  # the request's other calls are refused at once
        await let_go(gw, release, holder)
        return stats

    stats = asyncio.run(main())
    assert stats.store_calls == 1 and gw.asked == [] and chain.seen() == []


def test_a_deadline_during_the_second_find_is_a_timeout_counted_as_two_calls(
    articles: Store,
) -> None:
    gw, release = Watched(articles), threading.Event()
    gw.before[2] = lambda: release.wait(5)
    chain = Chain(first_of("a"), related_of)

    async def main() -> RequestStats:
        with (
            collecting() as stats,
            deadline.within(0.3),
            pytest.raises(RequestTimeoutError),
        ):
            await gw.chain(chain)
        assert gw.slots.in_flight == 1  # the slot comes back when the thread ends
        release.set()
        await settled(gw)
        return stats

    stats = asyncio.run(main())
    assert stats.store_calls == 2 and chain.began
    assert [f for f, _ in chain.seen()] == [first_of("a")]  # the second's answer never seen


def test_each_find_of_a_chain_gets_its_own_time_limit(articles: Store) -> None:
    gw = Watched(articles)
    limits: list[int] = []
    gw.before[1] = lambda: (limits.append(gw.time_limit_ms()), time.sleep(0.6))
    gw.before[2] = lambda: limits.append(gw.time_limit_ms())
    stats, raised = chained(gw, Chain(first_of("a"), related_of), limit_s=3)
    assert raised is None and stats.store_calls == 2
    assert limits[0] <= 3000 and limits[1] <= limits[0] - 600


class FindsSent(pymongo.monitoring.CommandListener):
    """The find commands a client sends, as the server receives them."""

    def __init__(self) -> None:
        self.finds: list[dict[str, Any]] = []

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds.append(dict(event.command))

    def succeeded(self, event: pymongo.monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: pymongo.monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize("engine", [pytest.param("wire", marks=pytest.mark.wire)])
def test_on_the_wire_each_find_of_a_chain_sends_its_own_max_time_ms(settings: Settings) -> None:
    """What the driver puts on the wire (the embedded engine has no wire: the
    test above reads the limit each find is given on both engines): each find
    command of a chain carries a ``maxTimeMS``, the second's read when it
    starts, after the first's answer, not carried over from the first."""
    listener = FindsSent()
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        settings.mongodb_uri, event_listeners=[listener], serverSelectionTimeoutMS=3000
    )
    try:
        store = Store(client[settings.db_name], where="wire", embedded=False)
        store.db[ARTICLES].insert_many([dict(d) for d in DOCS])
        gw = Watched(store)
        gw.before[2] = lambda: time.sleep(0.6)
        stats, raised = chained(gw, Chain(first_of("a"), related_of), limit_s=3)
    finally:
        client.close()
    assert raised is None and stats.store_calls == 2
    sent = [find.get("maxTimeMS") for find in listener.finds]
    assert len(sent) == 2 and all(isinstance(ms, int) for ms in sent), listener.finds
    assert 0 < sent[0] <= 3000 and 0 < sent[1] <= sent[0] - 600, sent


@pytest.mark.parametrize("which", [1, 2])
def test_a_store_outage_in_either_find_is_store_unavailable(articles: Store, which: int) -> None:
    gw = Watched(articles)

    def down() -> None:
        raise pymongo.errors.AutoReconnect("connection reset")

    gw.before[which] = down
    chain = Chain(first_of("a"), related_of)
    stats, raised = chained(gw, chain)
    assert isinstance(raised, StoreUnavailableError)
    assert stats.store_calls == which and len(gw.asked) == which
    assert [f for f, _ in chain.seen()] == [first_of("a")][: which - 1]


def test_an_error_of_the_second_finds_making_is_raised_with_the_first_seen(
    articles: Store,
) -> None:
    def broken(docs: list[Doc]) -> Find | None:
        raise TypeError("not a URL")

    gw = Watched(articles)
    chain = Chain(first_of("a"), broken)
    stats, raised = chained(gw, chain)
    assert isinstance(raised, TypeError) and raised is chain.then_error
    assert stats.store_calls == 1 and gw.asked == [{"_id": "a"}]
    assert [f for f, _ in chain.seen()] == [first_of("a")]


def test_gateways_with_a_call_path_of_their_own_do_not_chain(
    articles: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Dispatching(Gateway):
        def _dispatch(self, call: Any) -> Any:
            return super()._dispatch(call)

    class Finding(Gateway):
        async def find(self, *args: Any, **kwargs: Any) -> Any:
            return await super().find(*args, **kwargs)

    plain = Gateway(articles, 1000)
    assert plain.can_chain() and Watched(articles).can_chain()
    assert not Dispatching(articles, 1000).can_chain()
    assert not Finding(articles, 1000).can_chain()
    assert not MemoryGateway(articles, 1000).can_chain()  # captures each find itself
    assert Recording(plain).can_chain()  # records a chain's finds as they are seen
    assert not Replaying(Recording(plain)).can_chain()
    assert StubGateway(articles, 1000, Capture({}, {}, {})).can_chain()

    async def heavy() -> bool:
        with deadline.within(5) as budget:
            budget.heavy = True  # its calls take the heavy lane one by one
            return plain.can_chain()

    assert not asyncio.run(heavy())
    original = Gateway._dispatch
    monkeypatch.setattr(Gateway, "_dispatch", lambda self, call: original(self, call))
    assert not plain.can_chain() and not Recording(plain).can_chain()
