"""Store slots: at most so many store calls in worker threads, abandoned ones
included, and a quick refusal when none comes free."""

from __future__ import annotations

import asyncio
import threading

import anyio
import anyio.to_thread
import pytest

from api.data.slots import HEAVY_LANE, Shed, StoreSlots


def test_an_abandoned_call_keeps_its_slot_until_its_thread_ends() -> None:
    release = threading.Event()
    slots = StoreSlots(size=1, wait_ms=100)

    async def main() -> None:
        with anyio.move_on_after(0.1):  # the caller gives up; the thread cannot
            await slots.run(lambda: release.wait(5))
        assert slots.in_flight == 1
        with pytest.raises(Shed):
            await slots.run(lambda: "no slot for me")
        release.set()
        with anyio.fail_after(2):
            while slots.in_flight:
                await anyio.sleep(0.01)
        assert await slots.run(lambda: "served") == "served"
        assert slots.in_flight == 0

    anyio.run(main)


def test_store_calls_do_not_queue_behind_anyio_default_thread_limiter() -> None:
    slots = StoreSlots(size=2, wait_ms=100)
    release = threading.Event()

    async def main() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: anyio.to_thread.run_sync(release.wait, 5))  # takes it
            await anyio.sleep(0.05)
            with anyio.fail_after(1):
                assert await slots.run(lambda: "served") == "served"
            release.set()

    anyio.run(main)


def test_an_abandoned_call_ends_even_when_its_loop_no_longer_runs() -> None:
    # A test client's loop, or a server's shutting down, stops with an
    # abandoned call in flight: its thread must still end (a thread waiting
    # for the stopped loop kept the whole process from exiting).
    release = threading.Event()
    threads: list[threading.Thread] = []
    slots = StoreSlots(size=1, wait_ms=100)

    def call() -> None:
        threads.append(threading.current_thread())
        release.wait(5)

    async def main() -> None:
        with anyio.move_on_after(0.1):
            await slots.run(call)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())  # the loop stops here, and is not closed
        release.set()
        (thread,) = threads
        thread.join(timeout=3)
        assert not thread.is_alive()
    finally:
        loop.close()


def test_heavy_calls_take_one_lane_and_cheap_ones_pass_them_waiting() -> None:
    """However many calls heavy operations start at once, at most HEAVY_LANE of
    them hold or wait for a slot; a cheap call that comes after them all runs
    while they wait, not after them."""
    slots = StoreSlots(size=4, wait_ms=1000)
    running, most = [0], [0]
    lock = threading.Lock()
    release = threading.Event()
    order: list[str] = []

    def heavy() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1
        order.append("heavy")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(lambda: slots.run(heavy, heavy=True))
            await anyio.sleep(0.05)
            assert slots.in_flight == HEAVY_LANE and slots.heavy_in_flight == HEAVY_LANE
            with anyio.fail_after(1):
                assert await slots.run(lambda: "cheap") == "cheap"
            order.append("cheap")
            release.set()
        assert most[0] == HEAVY_LANE
        assert order[0] == "cheap" and order.count("heavy") == 10
        assert slots.in_flight == 0 and slots.heavy_in_flight == 0

    anyio.run(main)
