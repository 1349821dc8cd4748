"""Every request has a deadline, a client that hangs up cancels its request,
and store work in flight is bounded: past the bound, requests are shed."""

from __future__ import annotations

import dataclasses
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
import httpx2 as httpx
import orjson
import pytest
from pymongo.collection import Collection
from pymongo.cursor import Cursor

from api.app import create_app
from api.http.guard import GRACE_S
from api.http.media import GRAPHQL_RESPONSE
from api.operation.schema import Schema
from core.config import Settings
from core.store import Store
from tests.api.slow import (
    CHEAP,
    SLOW,
    SlowStore,
    access_log,
    codes,
    in_flight,
    post,
    request,
    serving,
)
from tests.waiting import eventually


def settings_for(api_settings: Settings, **changes: int) -> Settings:
    return dataclasses.replace(api_settings, **changes)


def test_a_slow_request_times_out_while_a_cheap_one_is_answered(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowStore(monkeypatch, seconds=30)
    app = create_app(settings_for(api_settings, request_timeout_ms=1500), loaded)
    with serving(app) as url, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, url, SLOW)
        assert slow.started.wait(5)
        cheap, cheap_s = post(url, CHEAP)
        assert cheap.json()["data"] == {"topics": {"totalCount": 10}}
        assert cheap_s < 1

        response, took = pending.result(10)
        assert response.status_code == 200  # GraphQL over HTTP: errors ride in a 200
        assert codes(response) == ["TIMEOUT"]
        message = response.json()["errors"][0]["message"]
        assert "1.5 s limit" in message
        # Embedded, the call was still waiting: the message names the store (a
        # hung store shows so first), not only the query. On the wire the
        # store's maxTimeMS and the deadline end together, either one first.
        if loaded.embedded:
            assert "the article store had not answered" in message
        assert "ask for less" in message
        assert 1.5 <= took < 1.5 + GRACE_S
        # The stalled call ended at its maxTimeMS, with the deadline: no slot is left held.
        eventually(lambda: in_flight(url) == 0, 1, "the slot to come back")
    if not loaded.embedded:
        assert slow.limits_ms and 1000 < slow.limits_ms[0] <= 1500


#: For what only the wire engine has: maxTimeMS, and worker threads (the
#: embedded engine answers inline).
ON_WIRE_ONLY = pytest.mark.parametrize(
    "engine", [pytest.param("wire", marks=pytest.mark.wire)], indirect=True
)


@ON_WIRE_ONLY
def test_each_store_call_gets_max_time_no_longer_than_the_time_left(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []  # maxTimeMS as handed to pymongo, by find and by count
    max_time_ms = Cursor.max_time_ms
    count_documents = Collection.count_documents

    def find_spy(cursor: Cursor, ms: int | None) -> Cursor:
        sent.append(ms)
        return max_time_ms(cursor, ms)

    def count_spy(collection: Collection, query: dict, **kwargs: int) -> int:
        sent.append(kwargs["maxTimeMS"])
        return count_documents(collection, query, **kwargs)

    monkeypatch.setattr(Cursor, "max_time_ms", find_spy)
    monkeypatch.setattr(Collection, "count_documents", count_spy)
    SlowStore(monkeypatch, seconds=0.6)  # each call waits 0.6 s first, well within its limit
    app = create_app(settings_for(api_settings, request_timeout_ms=3000), loaded)
    with serving(app) as url:
        response, _ = post(url, SLOW)
    assert "errors" not in response.json(), response.json()
    page, total = sent  # the page, then its totalCount
    assert 1500 < page <= 3000 - 600  # not the 10 s op timeout: the time left
    assert total <= page - 600  # the page's time was spent


def test_a_client_that_hangs_up_cancels_its_request(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowStore(monkeypatch, seconds=30)
    app = create_app(settings_for(api_settings, request_timeout_ms=3000), loaded)
    with serving(app) as url, access_log() as access_lines:
        host, port = urlsplit(url).hostname, urlsplit(url).port
        body = orjson.dumps(request(SLOW))
        with socket.create_connection((host, port), timeout=5) as client:
            client.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            assert slow.started.wait(5)
            hung_up = time.monotonic()
        eventually(lambda: access_lines.about("Slow"), 1, "the request to end")
        ended = time.monotonic()
        (line,) = access_lines.about("Slow")
        assert line["status"] == 499
        assert ended - hung_up < 1  # cancelled, long before its 3 s deadline
        assert line["store_calls"] == 1  # its totalCount was never asked for
        if loaded.embedded:
            assert slow.cancelled == 1
        else:
            # A pymongo call cannot be interrupted: the thread runs until the
            # maxTimeMS it was sent (the time the request had left), then frees its slot.
            assert in_flight(url) == 1
            eventually(lambda: in_flight(url) == 0, 3.5, "the abandoned call to end")
        assert slow.calls == 1
        assert post(url, CHEAP)[0].status_code == 200


@ON_WIRE_ONLY
def test_load_is_shed_with_503_and_retry_after_then_served_again(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    SlowStore(monkeypatch, seconds=30)
    settings = settings_for(
        api_settings, request_timeout_ms=2000, store_concurrency=2, store_queue_ms=200
    )
    with serving(create_app(settings, loaded)) as url, ThreadPoolExecutor(2) as pool:
        stalled = [pool.submit(post, url, SLOW) for _ in range(2)]
        eventually(lambda: in_flight(url) == 2, 3, "both slots taken")

        shed, took = post(url, CHEAP)
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert codes(shed) == ["OVERLOADED"]
        assert took < 0.2 + 0.5

        assert all(codes(f.result(5)[0]) == ["TIMEOUT"] for f in stalled)
        eventually(lambda: in_flight(url) == 0, 1, "no slot leaked")
        served, _ = post(url, CHEAP)
        assert served.status_code == 200 and "errors" not in served.json()


@pytest.mark.parametrize(
    ("accept", "status", "media_type", "has_data"),
    [
        # A legacy client gets every GraphQL response in a 200, `data` and all.
        (None, b"200", b"application/json", True),
        # The request never arrived whole, so it never ran: no GraphQL
        # response, no `data`, and a status that says why.
        (GRAPHQL_RESPONSE, b"408", GRAPHQL_RESPONSE.encode(), False),
    ],
)
def test_a_slow_upload_is_stopped_at_the_deadline(
    accept: str | None, status: bytes, media_type: bytes, has_data: bool
) -> None:
    app = create_app(Settings(request_timeout_ms=500))  # no store call: any engine does
    header = f"Accept: {accept}\r\n".encode() if accept else b""
    with (
        serving(app) as url,
        socket.create_connection((urlsplit(url).hostname, urlsplit(url).port), timeout=5) as client,
    ):
        started = time.monotonic()
        client.sendall(  # promises a body it never sends
            b"POST /graphql HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            + header
            + b"Content-Length: 100\r\n\r\n{"
        )
        answer = b""
        while b'"code":"TIMEOUT"' not in answer and (chunk := client.recv(65536)):
            answer += chunk
        took = time.monotonic() - started
        # The rest of the body may still be on its way, so the connection cannot
        # carry a next request: after a 408 it ends with the answer.
        closed = client.recv(65536) == b"" if status == b"408" else True
    assert closed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status)
    assert b"content-type: " + media_type in head.lower() and b"no-store" in head
    assert orjson.loads(body)["errors"][0]["extensions"]["code"] == "TIMEOUT"
    assert ("data" in orjson.loads(body)) is has_data
    assert 0.5 <= took < 0.5 + GRACE_S + 0.5


@pytest.mark.parametrize("accept", [None, GRAPHQL_RESPONSE])
def test_the_backstop_answers_a_query_that_ran_as_the_query_would_have(
    accept: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Execution started but does not hand back an answer in time (deaf to the
    # deadline until well past the grace): the backstop answers in its stead,
    # as an executed query with nothing fetched: a 200 with `data: null`,
    # under whichever media type the client asked for.
    async def stuck(*args: object, **kwargs: object) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.5 + GRACE_S + 0.3)
        await anyio.lowlevel.checkpoint()  # where the backstop's cancellation lands
        raise AssertionError("the backstop should have stopped the request")

    # What both of the view's lanes (its quick lane and strawberry's) call to run it.
    monkeypatch.setattr(Schema, "execute", stuck)
    app = create_app(Settings(request_timeout_ms=500))
    headers = {"accept": accept} if accept else {}
    with serving(app) as url:
        response = httpx.post(f"{url}/graphql", json=request(CHEAP), headers=headers, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == (accept or "application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["data"] is None
    assert codes(response) == ["TIMEOUT"]


def guarded_until_stopped(receive: Any) -> list[str]:
    """Behind the guard (a 60 s deadline), an app that reads one message from
    ``receive``, then waits: whether it was ``stopped`` or ``ran on``."""
    from api.http.guard import RequestGuard

    finished: list[str] = []

    async def app(scope: dict, receive: Any, send: object) -> None:
        await receive()
        try:
            await anyio.sleep(30)
            finished.append("ran on")
        except anyio.get_cancelled_exc_class():
            finished.append("stopped")
            raise

    async def send(message: dict) -> None:
        raise AssertionError("nothing is sent to a client that is gone")

    async def main() -> None:
        guard = RequestGuard(app, timeout_ms=60_000)
        with anyio.fail_after(5):
            await guard({"type": "http", "headers": []}, receive, send)

    anyio.run(main)
    return finished


def test_a_connection_the_server_cannot_read_stops_its_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disconnect watcher's own failure (the server's ``receive`` raising
    after the body) counts as the client gone: the work stops and it is logged."""
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop()  # the body: the watcher takes over from here
        raise OSError("the connection broke")

    assert guarded_until_stopped(receive) == ["stopped"]
    assert "watching for the client leaving failed" in caplog.text


def stalled_after_one_part(content_type: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """An app that starts an answer, sends one part, and never sends the rest;
    and the messages it got through."""
    sent: list[dict[str, Any]] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await anyio.sleep(30)

    return app, sent


def guarded_run(app: Any, sent: list[dict[str, Any]], wait_s: float) -> float:
    """``app`` behind the guard (0.5 s deadline), for at most ``wait_s``: how long it took."""
    from api.http.guard import RequestGuard

    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await anyio.sleep(60)  # the client stays
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> float:
        started = time.monotonic()
        with anyio.move_on_after(wait_s):
            await RequestGuard(app, timeout_ms=500)({"type": "http", "headers": []}, receive, send)
        return time.monotonic() - started

    return anyio.run(main)


def test_an_answer_in_parts_must_be_whole_by_the_deadline() -> None:
    # Its parts are work: a client that stops reading, or parts that never
    # come, must not hold it past the deadline. It is cut off where it is.
    app, sent = stalled_after_one_part(b'multipart/mixed; boundary="-"')
    took = guarded_run(app, sent, wait_s=5)
    assert 0.5 <= took < 0.5 + GRACE_S + 0.5
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_a_single_answer_may_take_its_time_once_it_has_started() -> None:
    # The transfer of one answer is not work: a slow reader is not cut off
    # (the server's send timeout drops one that reads nothing).
    app, sent = stalled_after_one_part(b"application/json")
    took = guarded_run(app, sent, wait_s=0.5 + GRACE_S + 1)
    assert took >= 0.5 + GRACE_S + 1  # still going when the test stopped waiting
    assert sent[-1]["more_body"] is True


def test_an_app_that_hears_its_client_leave_is_stopped_where_it_next_waits() -> None:
    # The client leaves before its body is whole: the app's own receive()
    # hears it, in the task the guard would stop; it stops at its next wait,
    # and nothing is answered to a client that is gone.
    async def receive() -> dict:
        return {"type": "http.disconnect"}

    assert guarded_until_stopped(receive) == ["stopped"]


def test_a_request_cancelled_by_the_server_is_not_answered_as_timed_out() -> None:
    # The server stopping cancels a request's task: that cancellation goes on
    # through the guard, even when the backstop's time comes in the same turn.
    import asyncio

    from api.http.guard import RequestGuard

    sent: list[dict] = []
    body = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def app(scope: dict, receive: Any, send: object) -> None:
        await receive()
        await asyncio.sleep(30)

    async def receive() -> dict:
        if body:
            return body.pop()
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> None:
        guard = RequestGuard(app, timeout_ms=100)
        task = asyncio.get_running_loop().create_task(
            guard({"type": "http", "headers": []}, receive, send)
        )
        # Cancelled by the server as the backstop cancels it too.
        await asyncio.sleep(0.1 + GRACE_S - 0.001)
        while not task.done() and not task.cancelling():
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert sent == []


def test_an_app_asking_for_more_after_its_body_is_stopped_when_its_client_leaves() -> None:
    # The watcher reads the connection once the body is read; an app that
    # asks for more waits for what it hears, and is stopped there when the
    # client leaves, as at any other wait.
    import asyncio

    from api.http.guard import RequestGuard

    heard: list[str] = []
    left = asyncio.Event()
    body = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict:
        if body:
            return body.pop()
        await left.wait()
        return {"type": "http.disconnect"}

    async def app(scope: dict, receive_: Any, send: object) -> None:
        await receive_()
        try:
            heard.append((await receive_())["type"])
        except asyncio.CancelledError:
            heard.append("stopped")
            raise

    async def send(message: dict) -> None:
        raise AssertionError("nothing is sent to a client that is gone")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, left.set)
        await asyncio.wait_for(
            RequestGuard(app, timeout_ms=60_000)({"type": "http", "headers": []}, receive, send), 5
        )

    asyncio.run(main())
    assert heard == ["stopped"]


def test_an_answer_all_sent_ends_the_watch_as_an_ordinary_exchange() -> None:
    # Once the answer is all sent, the server's receive says http.disconnect
    # (as ASGI has it): the watcher ends there, with nothing cancelled and
    # nothing counted as a client gone; no task is left behind.
    import asyncio

    from api.data.deadline import current_deadline
    from api.http.guard import RequestGuard
    from api.telemetry.stats import collecting

    sent: list[dict] = []
    answered = asyncio.Event()
    body = [{"type": "http.request", "body": b"{}", "more_body": False}]
    budgets: list[Any] = []
    reads = 0

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        if body:
            return body.pop()
        await answered.wait()
        return {"type": "http.disconnect"}

    async def app(scope: dict, receive_: Any, send_: Any) -> None:
        await receive_()
        budgets.append(current_deadline())
        await asyncio.sleep(0.01)  # the watcher waits in the server's receive meanwhile
        await send_({"type": "http.response.start", "status": 200, "headers": []})
        await send_({"type": "http.response.body", "body": b"{}"})

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    async def main() -> bool:
        with collecting() as stats:
            guard = RequestGuard(app, timeout_ms=60_000)
            await guard({"type": "http", "headers": []}, receive, send)
        for _ in range(5):
            await asyncio.sleep(0)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, others
        return stats.client_gone

    assert asyncio.run(main()) is False
    assert reads == 2  # the body, then the watcher's one read, which heard the end
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert budgets[0] is not None and not budgets[0].gone


def test_an_answer_made_without_giving_up_the_loop_starts_no_watcher() -> None:
    # The watcher starts at the loop's first turn after the body is read, if
    # the answer is not all sent by then: an app that answers at once (a
    # query whose store reads were answered on the loop) reads the server's
    # receive once, for its body; one that waits is watched (reads == 2 above).
    import asyncio

    from api.http.guard import RequestGuard

    reads = 0
    bodies = 0  # requests whose body is still to be read
    tasks: list[int] = []

    async def receive() -> dict:
        nonlocal reads, bodies
        reads += 1
        if bodies:
            bodies -= 1
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.sleep(3600)  # a watcher would wait here
        return {"type": "http.disconnect"}

    async def app(scope: dict, receive_: Any, send_: Any) -> None:
        await receive_()
        await send_({"type": "http.response.start", "status": 200, "headers": []})
        await send_({"type": "http.response.body", "body": b"{}"})

    async def send(message: dict) -> None:
        pass

    async def main() -> None:
        guard = RequestGuard(app, timeout_ms=60_000)
        nonlocal bodies
        for _ in range(3):
            bodies = 1
            await guard({"type": "http", "headers": []}, receive, send)
            for _ in range(3):
                await asyncio.sleep(0)
            tasks.append(len(asyncio.all_tasks() - {asyncio.current_task()}))

    asyncio.run(main())
    assert reads == 3 and tasks == [0, 0, 0]


def test_each_request_is_stopped_at_its_own_time_when_several_share_the_backstop_timer() -> None:
    # One timer serves the backstops of every request on a loop
    # (api.http.guard._Backstops): a request answered at once, one whose answer
    # started and one stopped earlier move no other request's time, and a
    # request that ends in time is never stopped.
    import asyncio

    from api.http.guard import RequestGuard

    limit_s = 0.1
    behaviours = {
        "first": "hangs",
        "answers": "answers",
        "starts": "starts",
        "later": "hangs",
        "in time": "in time",
    }
    started: dict[str, float] = {}
    stopped: dict[str, float] = {}
    finished: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        name = scope["path"]
        behaviour = behaviours[name]
        await receive()
        try:
            if behaviour == "answers":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"{}"})
                return
            if behaviour == "starts":  # a single answer may take its time
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await asyncio.sleep(limit_s + GRACE_S + 0.4)
                await send({"type": "http.response.body", "body": b"{}"})
            elif behaviour == "in time":
                await asyncio.sleep(limit_s + GRACE_S - 0.3)
            else:
                await asyncio.sleep(30)
            finished.append(name)
        except asyncio.CancelledError:
            stopped[name] = time.monotonic() - started[name]
            raise

    guard = RequestGuard(app, timeout_ms=int(limit_s * 1000))

    async def serve(name: str) -> None:
        messages = [{"type": "http.request", "body": b"{}", "more_body": False}]
        answered = asyncio.Event()

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered.set()

        started[name] = time.monotonic()
        await guard({"type": "http", "headers": [], "path": name}, receive, send)

    async def main() -> None:
        first = [asyncio.create_task(serve(name)) for name in ("first", "answers", "starts")]
        await asyncio.sleep(0.2)
        later = [asyncio.create_task(serve(name)) for name in ("later", "in time")]
        await asyncio.wait_for(asyncio.gather(*first, *later), 5)

    asyncio.run(main())
    assert sorted(stopped) == ["first", "later"]
    for took in stopped.values():
        assert limit_s + GRACE_S <= took < limit_s + GRACE_S + 0.3
    assert sorted(finished) == ["in time", "starts"]


def shared_timer_run() -> dict[str, float | str]:
    """Requests whose deadlines share their loop's timer (api.data.deadline._Timers),
    all made at once, each waiting in a scope from a time of its own: how long past
    its deadline each was stopped, or "in time" if it ended first."""
    import asyncio

    from api.data import deadline

    # name: (limit, first store call after, the call takes); the timer must be
    # set for "long", then earlier for "short", then go off again for the ones due later.
    requests = {
        "long": (0.5, 0.0, 30.0),
        "short, waits late": (0.2, 0.05, 30.0),
        "ends in time": (0.25, 0.0, 0.05),
        "waits last": (0.3, 0.15, 30.0),
        "ends before the long one": (0.4, 0.0, 0.1),
    }
    outcome: dict[str, float | str] = {}

    async def request(name: str) -> None:
        limit_s, waits_after, takes = requests[name]
        with deadline.within(limit_s) as budget:
            await asyncio.sleep(waits_after)
            with budget.scope() as scope:
                await asyncio.sleep(takes)
            outcome[name] = (
                time.monotonic() - budget.deadline if scope.cancelled_caught else "in time"
            )

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(request(name) for name in requests)), 5)

    asyncio.run(main())
    return outcome


def test_each_deadline_goes_off_at_its_own_time_when_several_share_their_loops_timer() -> None:
    # Two loops at once (each has its own timer), the same requests on each.
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(shared_timer_run)
        outcomes = [shared_timer_run(), other.result(10)]
    for outcome in outcomes:
        assert outcome.pop("ends in time") == outcome.pop("ends before the long one") == "in time"
        assert sorted(outcome) == ["long", "short, waits late", "waits last"]
        for late in outcome.values():
            assert isinstance(late, float) and -0.001 <= late < 0.15, outcome


def test_an_ended_requests_entry_holds_nothing_and_ended_entries_do_not_pile_up() -> None:
    # Behind a slow request waiting at the top of its loop's deadlines (the
    # first due), many quick ones come and end: their entries keep none of them alive, and
    # the heap is swept rather than holding one entry each.
    import asyncio
    import gc
    import weakref

    from api.data import deadline

    ended: list[weakref.ref[deadline.Deadline]] = []

    async def slow_request(budget_box: list[deadline.Deadline]) -> bool:
        with deadline.within(3) as budget:  # due before the others: at the top
            budget_box.append(budget)
            with budget.scope() as scope:
                await asyncio.sleep(30)
            return scope.cancelled_caught

    async def main() -> tuple[int, list[Any]]:
        box: list[deadline.Deadline] = []
        slow = asyncio.get_running_loop().create_task(slow_request(box))
        await asyncio.sleep(0.01)
        for _ in range(500):
            with deadline.within(30) as budget:
                with budget.scope():
                    await asyncio.sleep(0)
                ended.append(weakref.ref(budget))
            del budget
        heap = deadline._by_loop[asyncio.get_running_loop()]._heap
        held = [entry[deadline._DEADLINE] for entry in heap]
        box[0].cancel()  # its client leaves
        assert await asyncio.wait_for(slow, 5)
        return len(heap), held

    size, held = asyncio.run(main())
    gc.collect()
    assert not any(ref() is not None for ref in ended)
    assert size <= deadline._SWEEP_AT
    assert sum(entry is not None for entry in held) == 1  # the slow one's
