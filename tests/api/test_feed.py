"""api.live.feed's poll, driven by hand on both engines: pages that end inside one
write, a marker that goes back, a subscription that falls behind, and
identical subscriptions sharing each answer."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from api.data.gateway import Gateway
from api.live.feed import ANSWERS_AT_ONCE, Feed, PollPosition, Subscriber, Turns
from core.indexes import LOADER
from core.news import MARKER_ID
from loaders import load_paths
from tests.articles import web_url, write_article


class Owner:
    def __init__(self) -> None:
        self.told = 0

    def overflowed(self) -> None:
        self.told += 1


class Answers:
    """Answers each event with the event itself, counting how often."""

    def __init__(self, key: Any = None) -> None:
        self.key = object() if key is None else key
        self.answered: list[Any] = []

    async def answer(self, event: Any) -> Any:
        self.answered.append(event)
        await asyncio.sleep(0)
        return {"answer to": event}


def feed_of(store: Any, queue: int) -> Feed:
    return Feed(Gateway(store, 5000), 100, queue, 10, 5000)


def listen(
    feed: Feed, owner: Owner, matches: Any = lambda doc: True, answers: Any = None
) -> Subscriber:
    """A subscription, without the poll task (the test polls by hand)."""
    return feed._admit(matches, owner, answers or Answers())


def drain(subscriber: Subscriber) -> list[Any]:
    found = []
    while not subscriber.queue.empty():
        found.append(subscriber.queue.get_nowait().event)
    return found


def test_pages_that_end_inside_one_write_lose_nothing(store, settings, tmp_path):
    for i in range(7):
        write_article(tmp_path, f"{i}.md", webUrl=web_url(f"p{i}"))

    async def scenario() -> None:
        feed = feed_of(store, queue=4)  # pages of 2
        subscriber = listen(feed, Owner())
        position = await feed.poll(None)
        assert position == PollPosition(0)
        await asyncio.to_thread(load_paths, store, [tmp_path], settings)  # one write of 7
        got: list[Any] = []
        for _ in range(6):
            position = await feed.poll(position)
            got += drain(subscriber)
        assert position.last_id is None  # caught up with the marker
        keys = [(d["_source"]["newsSeq"], d["_id"]) for d in got]
        assert keys == sorted(keys) and len(set(keys)) == 7
        assert "secured" not in got[0] and got[0]["title"]  # served whole, never private

    asyncio.run(scenario())


def test_a_marker_that_goes_back_is_followed_from_there(store, settings, tmp_path):
    async def scenario() -> None:
        feed = feed_of(store, queue=4)
        subscriber = listen(feed, Owner())
        write_article(tmp_path, "a.md", webUrl=web_url("a"))
        await asyncio.to_thread(load_paths, store, [tmp_path], settings)
        position = await feed.poll(None)
        store.db[LOADER].update_one({"_id": MARKER_ID}, {"$set": {"written": 1}})
        assert await feed.poll(position) == PollPosition(1)
        assert drain(subscriber) == []  # nothing re-sent

    asyncio.run(scenario())


def test_a_subscription_a_queue_behind_is_dropped_and_its_owner_told(store, settings, tmp_path):
    for i in range(5):
        write_article(tmp_path, f"{i}.md", webUrl=web_url(f"d{i}"))

    async def scenario() -> None:
        feed = feed_of(store, queue=2)  # pages of 1
        slow, fine, uninterested = Owner(), Owner(), Owner()
        stuck = listen(feed, slow)
        reader = listen(feed, fine)
        listen(feed, uninterested, matches=lambda doc: False)
        position = await feed.poll(None)
        small = dataclasses.replace(settings, batch_size=1)
        await asyncio.to_thread(load_paths, store, [tmp_path], small)
        for _ in range(4):
            position = await feed.poll(position)
            drain(reader)
        assert (slow.told, fine.told, uninterested.told) == (1, 0, 0)
        assert stuck not in feed._subscribers() and feed.count == 2 and feed.dropped == 1

    asyncio.run(scenario())


def test_a_filter_that_fails_does_not_stop_the_others(store, settings, tmp_path):
    async def scenario() -> None:
        feed = feed_of(store, queue=4)
        broken = listen(feed, Owner(), matches=lambda doc: 1 / 0)
        working = listen(feed, Owner())
        position = await feed.poll(None)
        write_article(tmp_path, "a.md", webUrl=web_url("a"))
        await asyncio.to_thread(load_paths, store, [tmp_path], settings)
        await feed.poll(position)
        assert drain(broken) == [] and len(drain(working)) == 1

    asyncio.run(scenario())


def test_identical_subscriptions_share_one_answer_per_article(store, settings, tmp_path):
    """Members of one group (equal keys) are each offered the same shared
    answer, computed once however many read it; another group's is its own,
    and a member that falls behind leaves its group mates reading."""
    for i in range(3):
        write_article(tmp_path, f"{i}.md", webUrl=web_url(f"g{i}"))

    async def scenario() -> None:
        feed = feed_of(store, queue=8)  # pages of 4: the three in one poll
        shared, other = Answers(key="same"), Answers(key="other")
        members = [listen(feed, Owner(), answers=shared) for _ in range(5)]
        members.append(listen(feed, Owner(), answers=Answers(key="same")))  # the group's
        alone = listen(feed, Owner(), answers=other)
        assert (feed.count, feed.groups) == (7, 2)
        position = await feed.poll(None)
        await asyncio.to_thread(load_paths, store, [tmp_path], settings)
        await feed.poll(position)
        queued = [[member.queue.get_nowait() for _ in range(3)] for member in members]
        assert all(q == queued[0] for q in queued)  # the same Shared objects
        answers = [await item.answer() for q in queued for item in q]
        assert len(shared.answered) == 3 and feed.answered == 3  # once per article
        assert answers[:3] == [{"answer to": item.event} for item in queued[0]]
        assert answers[3:6] == answers[:3]  # ... sent to each member
        await alone.queue.get_nowait().answer()
        assert len(other.answered) == 1 and feed.answered == 4

        for member in members[1:]:
            feed.leave(member)
        feed.leave(alone)
        assert (feed.count, feed.groups) == (1, 1)
        feed.leave(members[0])
        assert (feed.count, feed.groups) == (0, 0)

    asyncio.run(scenario())


def test_a_member_that_leaves_while_waiting_does_not_cancel_the_others_answer():
    class Slow(Answers):
        async def answer(self, event: Any) -> Any:
            self.answered.append(event)
            await asyncio.sleep(0.2)
            return "done"

    async def scenario() -> None:
        feed = Feed(Gateway(None, 5000), 100, 4, 10, 5000)  # type: ignore[arg-type]
        answers = Slow(key="k")
        first, second = (listen(feed, Owner(), answers=answers) for _ in range(2))
        feed._fan_out([{"_id": "a"}])
        leaving = asyncio.create_task(first.queue.get_nowait().answer())
        await asyncio.sleep(0.05)
        leaving.cancel()
        assert await second.queue.get_nowait().answer() == "done"
        assert answers.answered == [{"_id": "a"}]

    asyncio.run(scenario())


def test_subscription_work_takes_turns_with_the_worker_s_other_requests():
    """Many tasks ready at once (an article's payloads for many subscribers)
    pass the turnstile one per turn of the event loop, the timers and sockets
    looked at between them, in the order they came."""

    async def scenario() -> None:
        turns = Turns()
        loop = asyncio.get_running_loop()
        turn = 0

        def tick() -> None:  # runs once per turn of the loop
            nonlocal turn
            turn += 1
            loop.call_soon(tick)

        passed: list[tuple[int, int]] = []

        async def worker(n: int) -> None:
            for _ in range(3):
                await turns.take()
                passed.append((turn, n))

        tick()
        await asyncio.gather(*(worker(n) for n in range(20)))
        turns_taken = [t for t, _ in passed]
        assert len(set(turns_taken)) == len(passed) == 60  # never two in one turn
        order = [n for _, n in passed]
        firsts = sorted(range(20), key=order.index)
        assert firsts == list(range(20))  # first come, first served
        assert all(order.count(n) == 3 for n in range(20))

    asyncio.run(scenario())


def test_a_worker_builds_a_few_answers_at_a_time():
    """An article sent to many distinct subscriptions: each is answered, but
    no more than ANSWERS_AT_ONCE are being built at once (each may be
    megabytes of objects)."""

    class Counting(Answers):
        building = most = 0

        async def answer(self, event: Any) -> Any:
            Counting.building += 1
            Counting.most = max(Counting.most, Counting.building)
            await asyncio.sleep(0.01)
            Counting.building -= 1
            return await super().answer(event)

    async def scenario() -> None:
        feed = Feed(Gateway(None, 5000), 100, 4, 30, 5000)  # type: ignore[arg-type]
        members = [listen(feed, Owner(), answers=Counting()) for _ in range(3 * ANSWERS_AT_ONCE)]
        feed._fan_out([{"_id": "a"}])
        answers = await asyncio.gather(*(m.queue.get_nowait().answer() for m in members))
        assert answers == [{"answer to": {"_id": "a"}}] * len(members)
        assert Counting.most == ANSWERS_AT_ONCE and feed.answered == len(members)

    asyncio.run(scenario())
