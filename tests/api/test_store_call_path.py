"""One store call's way through the gateway, on each engine: a free slot is
taken at once, a busy one waited for; the request's deadline ends a call that
waits for a slot or runs, the client leaving ends it at once, and a
cancellation from anyone else goes on as it came. An abandoned call keeps its
slot until its thread ends; one dropped before it started never asks the store."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from api.data import deadline
from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from api.errors import ClientClosedRequestError, OverloadedError, RequestTimeoutError
from core.store import Store

COLLECTION = "articles"


def gateway(store: Store, size: int = 1, wait_ms: int = 5000) -> Gateway:
    return Gateway(store, 10_000, StoreSlots(size, wait_ms))


def blocking(store: Store, release: threading.Event, asked: list[str]) -> Callable[[], int]:
    """A store call that waits for ``release`` first, as a slow store would."""

    def call() -> int:
        asked.append("blocking")
        release.wait(5)
        return store.db[COLLECTION].count_documents({})

    return call


def counting(store: Store, asked: list[str]) -> Callable[[], int]:
    def call() -> int:
        asked.append("count")
        return store.db[COLLECTION].count_documents({})

    return call


async def holding_the_slot(
    gw: Gateway, store: Store, release: threading.Event, asked: list[str]
) -> asyncio.Task[int]:
    """A call of another request's that holds a slot until ``release``."""
    with deadline.within(5):
        holder = asyncio.get_running_loop().create_task(
            gw.call("count", COLLECTION, blocking(store, release, asked))
        )
    await asyncio.sleep(0.05)
    return holder


async def let_go(gw: Gateway, release: threading.Event, holder: asyncio.Task[int]) -> None:
    release.set()
    await holder
    await settled(gw)


@contextlib.contextmanager
def ended(by: str) -> Iterator[tuple[deadline.Deadline, type[Exception]]]:
    """A request that ends ``by`` its deadline (0.2 s) or its client leaving
    (at 0.1 s), and what its store call raises then."""
    with deadline.within(0.2 if by == "deadline" else 5) as budget:
        if by == "client":
            asyncio.get_running_loop().call_later(0.1, budget.cancel)
        yield budget, RequestTimeoutError if by == "deadline" else ClientClosedRequestError


async def settled(gw: Gateway, seconds: float = 3) -> None:
    ends = time.monotonic() + seconds
    while gw.slots.in_flight and time.monotonic() < ends:
        await asyncio.sleep(0.01)
    assert gw.slots.in_flight == 0


def test_a_call_with_a_free_slot_is_answered_and_gives_it_back(store: Store) -> None:
    gw, asked = gateway(store, size=2), []

    async def main() -> None:
        with deadline.within(5):
            assert await gw.call("count", COLLECTION, counting(store, asked)) == 0
            assert await gw.count(COLLECTION, {}) == 0
        assert gw.slots.in_flight == 0

    asyncio.run(main())
    assert asked == ["count"]


def test_a_call_that_finds_no_slot_waits_for_one_within_the_queue_wait(store: Store) -> None:
    gw, asked, release = gateway(store, wait_ms=5000), [], threading.Event()

    async def main() -> None:
        holder = await holding_the_slot(gw, store, release, asked)
        with deadline.within(5):
            waiting = asyncio.get_running_loop().create_task(
                gw.call("count", COLLECTION, counting(store, asked))
            )
        await asyncio.sleep(0.05)
        assert not waiting.done() and gw.slots.in_flight == 1
        release.set()
        assert await asyncio.wait_for(waiting, 3) == 0
        await let_go(gw, release, holder)

    asyncio.run(main())
    assert asked == ["blocking", "count"]


def test_a_call_that_finds_no_slot_within_the_wait_is_shed(store: Store) -> None:
    gw, asked, release = gateway(store, wait_ms=100), [], threading.Event()

    async def main() -> None:
        holder = await holding_the_slot(gw, store, release, asked)
        with deadline.within(5) as budget:
            with pytest.raises(OverloadedError):
                await gw.call("count", COLLECTION, counting(store, asked))
            assert budget.shed
        await let_go(gw, release, holder)

    asyncio.run(main())
    assert asked == ["blocking"]


@pytest.mark.parametrize("by", ["deadline", "client"])
def test_a_call_waiting_for_a_slot_ends_with_its_request_and_never_runs(
    store: Store, by: str
) -> None:
    gw, asked, release = gateway(store, wait_ms=5000), [], threading.Event()

    async def main() -> None:
        holder = await holding_the_slot(gw, store, release, asked)
        with ended(by) as (budget, expected):
            started = time.monotonic()
            with pytest.raises(expected):
                await gw.call("count", COLLECTION, counting(store, asked))
            assert time.monotonic() - started < 1  # not the slot's 5 s wait
            assert not budget.shed
        assert gw.slots.in_flight == 1  # the holder's, still running
        await let_go(gw, release, holder)

    asyncio.run(main())
    assert asked == ["blocking"]


@pytest.mark.parametrize("by", ["deadline", "client"])
def test_a_running_call_ends_with_its_request_and_keeps_its_slot_until_its_thread_ends(
    store: Store, by: str
) -> None:
    gw, asked, release = gateway(store, size=1, wait_ms=100), [], threading.Event()

    async def main() -> None:
        with ended(by) as (_, expected), pytest.raises(expected):
            await gw.call("count", COLLECTION, blocking(store, release, asked))
        # Abandoned, not ended: the thread still holds the only slot.
        assert gw.slots.in_flight == 1
        with deadline.within(5), pytest.raises(OverloadedError):
            await gw.call("count", COLLECTION, counting(store, asked))
        release.set()
        await settled(gw)
        with deadline.within(5):
            assert await gw.call("count", COLLECTION, counting(store, asked)) == 0

    asyncio.run(main())
    assert asked == ["blocking", "count"]


def test_a_batch_in_a_task_of_its_own_spends_its_requests_deadline(store: Store) -> None:
    # A DataLoader batch runs in a task the request started: the request's
    # deadline, in the context it inherited, ends its store call too.
    gw, asked, release = gateway(store, size=2), [], threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with deadline.within(0.2):
            batch = loop.create_task(gw.call("count", COLLECTION, blocking(store, release, asked)))
        # The request's own part is over; its batch still waits on the store.
        with pytest.raises(RequestTimeoutError):
            await asyncio.wait_for(batch, 3)
        release.set()
        await settled(gw)

    asyncio.run(main())


def test_a_cancellation_from_elsewhere_goes_on_as_it_came(store: Store) -> None:
    # The server stopping cancels the request's task: that is no TIMEOUT nor
    # a client gone, and nothing of the deadline's is left on the task.
    gw, asked, release = gateway(store, size=1), [], threading.Event()

    async def request() -> int:
        with deadline.within(0.3):
            return await gw.call("count", COLLECTION, blocking(store, release, asked))

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(request())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelling() == 1  # the server's, none of the deadline's
        release.set()
        await settled(gw)

    asyncio.run(main())


def test_the_deadline_and_an_outside_cancellation_at_once_let_the_outside_one_go_on(
    store: Store,
) -> None:
    gw, asked, release = gateway(store, size=1), [], threading.Event()

    async def request(budget_box: list[deadline.Deadline]) -> int:
        with deadline.within(5) as budget:
            budget_box.append(budget)
            return await gw.call("count", COLLECTION, blocking(store, release, asked))

    async def main() -> None:
        box: list[deadline.Deadline] = []
        task = asyncio.get_running_loop().create_task(request(box))
        await asyncio.sleep(0.1)
        box[0].cancel()  # the client left ...
        task.cancel()  # ... and the server stops, in the same turn
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        await settled(gw)

    asyncio.run(main())


def test_a_request_without_store_calls_sets_no_timer_and_one_with_many_sets_one(
    store: Store,
) -> None:
    # Its timer: its entry on its loop's one timer (api.data.deadline._Timers).
    gw = gateway(store, size=2)

    async def main() -> None:
        with deadline.within(5) as budget:
            assert budget._entry is None
        with deadline.within(5) as budget:
            await gw.count(COLLECTION, {})
            entry = budget._entry
            assert entry is not None and entry[deadline._DEADLINE] is budget
            await gw.count(COLLECTION, {})
            assert budget._entry is entry
        # Dropped with the request: the entry no longer holds it.
        assert budget._entry is None and entry[deadline._DEADLINE] is None

    asyncio.run(main())


def test_a_heavy_operations_call_waits_for_the_heavy_lane_within_its_deadline(
    store: Store,
) -> None:
    # Only a heavy operation's calls take the lane; one waiting for it is not
    # shed after the slots' short wait, but ends at its request's deadline.
    gw, asked, release = gateway(store, size=4, wait_ms=50), [], threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with deadline.within(5) as heavy:
            heavy.heavy = True
            holder = loop.create_task(gw.call("count", COLLECTION, blocking(store, release, asked)))
            await asyncio.sleep(0.05)
        assert gw.slots.heavy_in_flight == 1
        with deadline.within(0.3) as other_heavy:
            other_heavy.heavy = True
            started = time.monotonic()
            with pytest.raises(RequestTimeoutError):
                await gw.call("count", COLLECTION, counting(store, asked))
            assert time.monotonic() - started >= 0.25  # waited past the slots' 50 ms
            assert not other_heavy.shed
        with deadline.within(5):  # a cheap call passes the lane
            assert await gw.call("count", COLLECTION, counting(store, asked)) == 0
        release.set()
        await holder
        await settled(gw)
        assert gw.slots.heavy_in_flight == 0

    asyncio.run(main())
    assert asked == ["blocking", "count"]
