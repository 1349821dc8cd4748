"""Store slots: at most so many store calls in worker threads, abandoned ones
included, and a quick refusal when none comes free."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import pytest

from api.data import slots as slots_module
from api.data.slots import HEAVY_LANE, Shed, StoreSlots, _Gate


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


def test_an_abandoned_call_ends_even_when_its_loop_no_longer_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A test client's loop, or a server's shutting down, stops with an
    # abandoned call in flight: its thread must still end (a thread waiting
    # for the stopped loop kept the whole process from exiting).
    monkeypatch.setattr(slots_module, "IDLE_S", 0.2)
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
        # The call's thread comes free (it does not wait for the loop), and
        # ends once idle for IDLE_S.
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


def test_a_free_slot_is_taken_at_once_even_with_no_wait_allowed() -> None:
    # No wait at all: a call that finds a slot free never waits (nor sets a
    # timer); one that finds none is shed at once.
    slots = StoreSlots(size=1, wait_ms=0)
    release = threading.Event()

    async def main() -> None:
        assert await slots.run(lambda: "served") == "served"
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: slots.run(lambda: release.wait(5)))
            await anyio.sleep(0.05)
            with pytest.raises(Shed):
                await slots.run(lambda: "no slot for me")
            release.set()
        assert slots.in_flight == 0

    anyio.run(main)


def test_a_call_that_finds_every_slot_busy_waits_its_turn_in_order() -> None:
    """A slot given back within the wait goes to the call that waited longest,
    not to one that came later (nor to a newcomer that finds no one running)."""
    slots = StoreSlots(size=1, wait_ms=2000)
    release = threading.Event()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await slots.run(lambda: order.append(n))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: slots.run(lambda: release.wait(5)))
            await anyio.sleep(0.05)
            for n in range(3):
                tg.start_soon(waiter, n)
                await anyio.sleep(0.01)
            assert slots.in_flight == 1 and order == []
            release.set()
        assert order == [0, 1, 2]
        assert slots.in_flight == 0

    anyio.run(main)


def test_a_call_cancelled_while_it_waits_for_a_slot_neither_runs_nor_holds_one() -> None:
    slots = StoreSlots(size=1, wait_ms=5000)
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: slots.run(lambda: release.wait(5)))
            await anyio.sleep(0.05)
            with anyio.move_on_after(0.1) as waited:
                await slots.run(lambda: ran.append("cancelled call"))
            assert waited.cancelled_caught
            release.set()
        assert ran == [] and slots.in_flight == 0
        assert await slots.run(lambda: "served") == "served"

    anyio.run(main)


def test_a_slot_handed_to_a_call_cancelled_before_it_woke_passes_on() -> None:
    # The slot is handed over and the waiting task cancelled in the same turn
    # of the loop: the cancelled call gives the slot to the next one in line.
    gate = _Gate(1)

    async def main() -> None:
        assert gate.take_now()
        loop = asyncio.get_running_loop()
        first = loop.create_task(gate.take(None))
        second = loop.create_task(gate.take(None))
        await asyncio.sleep(0)  # both wait
        gate.release()  # to `first` ...
        first.cancel()  # ... before it woke
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 2)
        assert gate.taken == 1  # `second`'s
        gate.release()
        assert gate.taken == 0 and gate.take_now()

    asyncio.run(main())


def test_a_call_runs_in_its_callers_context() -> None:
    # The gateway reads the request's deadline in the worker thread (maxTimeMS).
    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="none")
    slots = StoreSlots(size=1, wait_ms=100)

    async def main() -> str:
        seen.set("the request's")
        return await slots.run(seen.get)

    assert anyio.run(main) == "the request's"


def test_a_call_that_fails_gives_its_error_and_its_slot_back() -> None:
    slots = StoreSlots(size=1, wait_ms=100)

    def broken() -> None:
        raise ValueError("the store said no")

    async def main() -> None:
        with pytest.raises(ValueError, match="the store said no"):
            await slots.run(broken)
        assert slots.in_flight == 0

    anyio.run(main)


def test_a_call_handed_to_a_worker_as_it_retires_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Calls come about as often as an idle thread gives up waiting for one:
    # a call handed to a thread that just timed out is run, never lost.
    monkeypatch.setattr(slots_module, "IDLE_S", 0.002)
    workers = slots_module._Workers()
    for n in range(300):
        done = threading.Event()
        workers.submit(done.set)
        assert done.wait(2), f"call {n} was lost"
        threading.Event().wait(0.002 * (n % 3))  # before, at, and after the idle time


def test_worker_threads_are_reused_and_end_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    # Gateways made and dropped by the thousand (scripts, tests) share the
    # threads, and leave none behind.
    monkeypatch.setattr(slots_module, "IDLE_S", 0.2)
    workers = slots_module._Workers()
    seen: set[threading.Thread] = set()
    for _ in range(50):
        done = threading.Event()
        workers.submit(lambda: (seen.add(threading.current_thread()), done.set()))  # noqa: B023
        assert done.wait(2)
        threading.Event().wait(0.01)  # for the thread to go back to rest
    assert len(seen) == 1
    for thread in seen:
        thread.join(3)
        assert not thread.is_alive()


def ends_together(slots: StoreSlots, tasks: int) -> None:
    """Hold the loop (as a busy one is) until ``tasks`` calls have ended and
    handed their ends over, none of them settled yet."""
    inbox = slots._inbox
    assert inbox is not None
    ends = time.monotonic() + 3
    while len(inbox.ended) < tasks and time.monotonic() < ends:
        time.sleep(0.01)  # lets the threads run; the loop runs nothing meanwhile
    assert len(inbox.ended) == tasks


def test_calls_that_end_together_wake_the_loop_once_and_each_gets_its_own_end() -> None:
    slots = StoreSlots(size=8, wait_ms=1000)
    release = threading.Event()

    def call(n: int) -> int:
        release.wait(5)
        if n == 3:
            raise ValueError("the store said no")
        return n

    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakes: list[object] = []
        wake = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
            wakes.append(callback)
            return wake(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        tasks = [loop.create_task(slots.run(functools.partial(call, n))) for n in range(6)]
        await asyncio.sleep(0.05)  # every call runs in a thread of its own
        assert slots.in_flight == 6
        release.set()
        ends_together(slots, 6)
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        assert answers[:3] == [0, 1, 2] and answers[4:] == [4, 5]
        assert isinstance(answers[3], ValueError)
        assert len(wakes) == 1  # six ends, one wake-up
        assert slots.in_flight == 0

    asyncio.run(main())


def test_a_call_cancelled_as_its_end_waits_to_be_settled_gives_its_slot_back_once() -> None:
    # Two calls stop being waited for: one as it runs (abandoned: its thread
    # gives the slot back), one after it ended but before the loop settled it
    # (its task gives it back). Neither is given back twice, and the calls
    # ending beside them are answered.
    slots = StoreSlots(size=4, wait_ms=1000)
    release = threading.Event()

    def call(n: int) -> int:
        release.wait(5)
        return n

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(slots.run(functools.partial(call, n))) for n in range(4)]
        await asyncio.sleep(0.05)
        tasks[0].cancel()  # running: abandoned
        await asyncio.sleep(0)
        assert slots.in_flight == 4  # its thread still holds the slot
        release.set()
        ends_together(slots, 4)
        tasks[1].cancel()  # ended, not yet settled
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        assert [type(a) for a in answers[:2]] == [asyncio.CancelledError] * 2
        assert answers[2:] == [2, 3]
        await asyncio.sleep(0)  # the abandoned call's end, settled with the rest
        assert slots.in_flight == 0
        assert await slots.run(lambda: "served") == "served"
        assert slots.in_flight == 0

    asyncio.run(main())


def test_a_call_made_on_hearing_of_the_last_one_takes_the_same_thread() -> None:
    # A thread is back among the idle ones before its call's end reaches the
    # loop: the next call is handed to it, awake, not to another.
    slots = StoreSlots(size=1, wait_ms=100)

    async def main() -> set[threading.Thread]:
        return {await slots.run(threading.current_thread) for _ in range(50)}

    assert len(asyncio.run(main())) == 1


def test_slots_serve_each_loop_they_are_called_from() -> None:
    # A process may run loops one after another (tests, scripts): each call's
    # end goes to the loop that waits for it.
    slots = StoreSlots(size=1, wait_ms=100)
    for n in range(3):
        assert asyncio.run(slots.run(lambda: n)) == n  # noqa: B023
    assert slots.in_flight == 0
