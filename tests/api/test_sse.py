"""Subscription.articlePublished over Server-Sent Events (graphql-sse,
distinct connections mode), on both engines, through a real Uvicorn and
httpx's streaming client: the same pipeline, visibility, limits and budgets
as over WebSocket (tests/api/test_subscriptions.py)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from api.app import create_app
from api.http.connections import ConnectionLimits
from core import keys
from core.config import Settings
from core.store import Store
from testing.live import running_server
from tests.api.fixtures import ADMIN_TOKEN
from tests.api.slow import serving
from tests.api.test_live_memory import heavy
from tests.api.test_subscriptions import (
    ARRIVED,
    WAIT_S,
    Listener,
    load,
    run,
    server,
    subscription_settings,
)
from tests.api.wsclient import Raw, metric, subscribed
from tests.articles import web_url, write_article
from tests.clients.node import HERE as CLIENTS
from tests.clients.node import node_with
from tests.clients.readme import pointed_at, snippets
from tests.required import missing

EVENT_STREAM = {"accept": "text/event-stream"}


class Events:
    """An SSE subscription read with httpx's streaming client, in a task."""

    def __init__(
        self,
        url: str,
        query: str = ARRIVED,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        **variables: Any,
    ) -> None:
        self.url, self.query, self.token, self.variables = url, query, token, variables
        self.body = body or {"query": query, "variables": variables or None}
        #: (when received, event name, data) for each event; comments apart.
        self.events: list[tuple[float, str, Any]] = []
        self.comments = 0
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        headers = dict(EVENT_STREAM)
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        body = self.body
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
                client.stream("POST", f"{self.url}/graphql", json=body, headers=headers) as r,
            ):
                self.status, self.headers = r.status_code, r.headers
                event: str | None = None
                async for line in r.aiter_lines():
                    if line.startswith(":"):
                        self.comments += 1
                    elif line.startswith("event: "):
                        event = line[len("event: ") :]
                    elif line.startswith("data: ") and event is not None:
                        data = line[len("data: ") :]
                        self.events.append((time.monotonic(), event, orjson.loads(data or "null")))
                        event = None
        except Exception as exc:  # the test reads it
            self.error = exc

    def start(self) -> Events:
        self.task = asyncio.create_task(self._run())
        return self

    def articles(self) -> list[dict[str, Any]]:
        return [data["data"]["articlePublished"] for _, name, data in self.events if name == "next"]

    async def until(self, count: int, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.articles()) < count:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"{len(self.articles())} of {count} articles"
            await asyncio.sleep(0.02)
        return self.articles()

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def held(url: str, count: int, timeout: float = 10) -> None:
    """Wait until the server holds ``count`` subscriptions."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(metric, url, "newsgraph_subscriptions") != count:
        assert time.monotonic() < deadline, f"not {count} subscriptions within {timeout}s"
        await asyncio.sleep(0.02)


def post(url: str, query: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = dict(EVENT_STREAM)
    if token:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(
        f"{url}/graphql", json={"query": query}, headers=headers, timeout=10, **kwargs
    )


# -- what reaches whom ---------------------------------------------------------------


def test_a_subscriber_gets_the_articles_its_filter_selects_as_events(store, settings, tmp_path):
    with server(store, settings) as url:

        async def scenario() -> None:
            energy = Events(url, filter={"topic": "Energy"}).start()
            everything = Events(url).start()
            await subscribed(url, 2)
            assert everything.headers is not None
            assert everything.headers["content-type"].startswith("text/event-stream")
            assert everything.headers["cache-control"] == "no-cache, no-transform"
            assert everything.headers["ratelimit-policy"].startswith('"anonymous"')
            write_article(tmp_path, "a.md", webUrl=web_url("a"), title='"Trams"')
            write_article(
                tmp_path, "b.md", webUrl=web_url("b"), title='"Wind"', topics="\n  - Energy"
            )
            await load(store, settings, tmp_path)
            titles = {a["title"] for a in await everything.until(2)}
            assert titles == {"Trams", "Wind"}
            (wind,) = await energy.until(1)
            assert wind["title"] == "Wind" and wind["provider"]["name"] == "Tram Times"
            await asyncio.sleep(0.3)
            assert len(energy.articles()) == 1
            await energy.stop()
            await subscribed(url, 1)  # a client that hangs up leaves the feed
            await everything.stop()
            await held(url, 0)

        run(scenario())


def test_an_unpublished_article_reaches_the_admin_only(store, settings, tmp_path):
    with server(store, settings) as url:

        async def scenario() -> None:
            anyone, admin = Events(url).start(), Events(url, token=ADMIN_TOKEN).start()
            await subscribed(url, 2)
            write_article(tmp_path, "d.md", webUrl=web_url("draft"), published="false")
            await load(store, settings, tmp_path)
            (held,) = await admin.until(1)
            assert held["published"] is False
            await asyncio.sleep(0.5)  # several polls
            assert anyone.articles() == []
            await anyone.stop()
            await admin.stop()

        run(scenario())


def test_a_query_over_sse_is_one_event_then_complete(store, settings):
    with server(store, settings) as url:
        response = post(url, "{ articles { totalCount } }")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first, second, end = response.text.split("\r\n\r\n")
        assert first.startswith('event: next\r\ndata: {"data":{"articles":{"totalCount":0}}')
        assert orjson.loads(first.split("data: ")[1])["extensions"]["cost"]["actualQueryCost"]
        assert (second, end) == ("event: complete\r\ndata: ", "")
        # Over GET too: a GET runs queries only, over any transport.
        response = httpx.get(
            f"{url}/graphql",
            params={"query": "{ articles { totalCount } }"},
            headers=EVENT_STREAM,
            timeout=10,
        )
        assert response.status_code == 200 and response.text.startswith("event: next\r\n")
        assert metric(url, "newsgraph_subscriptions") == 0


# -- refused before it starts: an HTTP answer, as any refusal ------------------------------


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        (
            "subscription { articlePublished { provider { articles(first: 100) { nodes { "
            "topics { articles(first: 100) { nodes { id } } } } } } } }",
            400,
            "QUERY_TOO_COSTLY",
        ),
        (
            "subscription { articlePublished(filter: {topicsAny: ["
            + ", ".join(['"t"'] * 51)
            + "]}) { id } }",
            400,
            "BAD_REQUEST",
        ),
        ("subscription { articlePublished { nope } }", 400, ""),
        ("subscription {", 400, ""),
    ],
    ids=["cost", "filter", "invalid", "syntax"],
)
def test_a_refused_subscription_is_an_http_error_not_a_stream(store, settings, query, status, code):
    with server(store, settings) as url:
        response = post(url, query)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        errors = response.json()["errors"]
        assert errors[0].get("extensions", {}).get("code", "") == code, errors
        assert metric(url, "newsgraph_subscriptions") == 0


def test_a_subscription_over_get_is_refused(store, settings):
    with server(store, settings) as url:
        response = httpx.get(
            f"{url}/graphql",
            params={"query": "subscription { articlePublished { id } }"},
            headers=EVENT_STREAM,
            timeout=10,
        )
        assert response.status_code == 400, response.text
        (error,) = response.json()["errors"]
        assert error["message"] == "subscriptions are not allowed here", error
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert metric(url, "newsgraph_subscriptions") == 0


def test_a_spent_budget_refuses_the_stream_with_429(store, settings):
    # A bucket of 100 points filling at 1 a second, spent by queries.
    with server(store, settings, anonymous_burst=100, anonymous_points_per_s=1) as url:
        for _ in range(30):
            spent = httpx.post(
                f"{url}/graphql", json={"query": "{ articles { totalCount } }"}, timeout=10
            )
            if spent.status_code == 429:
                break
        assert spent.status_code == 429
        response = post(url, "subscription { articlePublished { id title } }")
        assert response.status_code == 429, response.text
        assert "retry-after" in response.headers
        assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_trusted_documents_hold_over_sse(store, settings, tmp_path):
    listed = "subscription Titles { articlePublished { title } }"
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(orjson.dumps({"titles-1": listed}))
    changes = {"trusted_documents": "enforce", "trusted_manifest": str(manifest)}
    with server(store, settings, **changes) as url:
        response = post(url, "subscription { articlePublished { id } }")
        assert response.status_code == 400, response.text
        assert metric(url, "newsgraph_subscriptions") == 0
        by_id = Events(url, body={"documentId": "titles-1"})
        admin = Events(url, query="subscription { articlePublished { id } }", token=ADMIN_TOKEN)

        async def scenario() -> None:
            by_id.start()
            admin.start()  # the admin's own documents need no manifest
            await subscribed(url, 2)
            write_article(tmp_path / "in", "t.md", webUrl=web_url("t"), title='"Listed"')
            await load(store, settings, tmp_path / "in")
            assert (await by_id.until(1)) == [{"title": "Listed"}]
            await by_id.stop()
            await admin.stop()

        run(scenario())


def test_an_sse_and_a_websocket_subscriber_share_each_answer(store, settings, tmp_path):
    """The same text over either transport is one group: each article is
    answered once, and each subscriber is sent it."""
    with server(store, settings) as url:

        async def scenario() -> None:
            ws = await Raw.connect(url)
            await ws.init()
            await ws.subscribe("1", ARRIVED)
            events = Events(url).start()
            await subscribed(url, 2)
            assert metric(url, "newsgraph_subscription_groups") == 1
            answered = metric(url, "newsgraph_subscription_answers_total")
            for slug in ("a", "b"):
                write_article(tmp_path, f"{slug}.md", webUrl=web_url(slug))
            await load(store, settings, tmp_path)
            over_sse = await events.until(2)
            over_ws = [(await ws.receive())["payload"]["data"]["articlePublished"] for _ in "ab"]
            assert over_sse == over_ws
            assert metric(url, "newsgraph_subscription_answers_total") - answered == 2
            await events.stop()
            await ws.close()

        run(scenario())


def test_each_payload_is_paid_for_before_it_is_made(store, settings, tmp_path):
    """A budget spent after the start: the article's event carries
    RATE_LIMITED instead, and the stream goes on."""
    with server(store, settings, anonymous_burst=100, anonymous_points_per_s=1) as url:

        async def scenario() -> None:
            events = Events(url, "subscription { articlePublished { id title } }").start()
            await subscribed(url, 1)
            for _ in range(200):  # the cheapest operation, until the budget is spent
                spent = await asyncio.to_thread(
                    httpx.post, f"{url}/graphql", json={"query": "{ __typename }"}
                )
                if spent.status_code == 429:
                    break
            assert spent.status_code == 429
            write_article(tmp_path, "a.md", webUrl=web_url("a"))
            await load(store, settings, tmp_path)
            deadline = time.monotonic() + WAIT_S
            while not events.events:
                assert events.error is None and time.monotonic() < deadline, events.error
                await asyncio.sleep(0.02)
            ((_, name, payload),) = events.events
            assert name == "next" and payload["data"] is None, payload
            assert payload["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            assert metric(url, "newsgraph_subscriptions") == 1  # it goes on
            await events.stop()

        run(scenario())


# -- limits -----------------------------------------------------------------------------


def test_streams_count_with_websocket_subscriptions_per_client(store, settings):
    with server(store, settings, subscriptions_per_client=3) as url:

        async def scenario() -> None:
            ws = await Raw.connect(url)
            await ws.init()
            await ws.subscribe("1", ARRIVED)
            first, second = Events(url).start(), Events(url).start()
            await subscribed(url, 3)
            response = await asyncio.to_thread(post, url, ARRIVED)
            assert response.status_code == 429, response.text
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            await ws.subscribe("2", ARRIVED)  # and the other way round
            refused = await ws.receive()
            assert refused["type"] == "error", refused
            await first.stop()
            await subscribed(url, 2)
            third = Events(url).start()  # room again
            await subscribed(url, 3)
            for events in (second, third):
                await events.stop()
            await ws.close()
            await held(url, 0)

        run(scenario())


def test_a_worker_holding_as_many_subscriptions_as_it_may_refuses_a_stream(store, settings):
    with server(store, settings, subscriptions_max=1) as url:

        async def scenario() -> None:
            first = Events(url).start()
            await subscribed(url, 1)
            response = await asyncio.to_thread(post, url, ARRIVED, ADMIN_TOKEN)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", error
            assert "as many subscriptions as it may (1)" in error["message"]
            await first.stop()

        run(scenario())


def test_streams_hold_memory_within_their_client_s_share_and_the_worker_s(store, settings):
    """Heavy distinct streams of one client: refused with 429 past its share
    of memory, while another client's start; past the worker's, 503 with
    Retry-After; a stream that ends gives its bytes back (tests/api/test_live_memory.py
    holds the WebSocket's to the same)."""
    share, most = 3_000_000, 4_000_000
    limits = {"subscriptions_per_client_bytes": share, "subscriptions_max_bytes": most}
    with server(store, settings, **limits) as url:

        def post_heavy(tag: str, token: str | None = None) -> httpx.Response:
            """A refused stream's answer (a refusal is JSON, at once)."""
            headers = {**EVENT_STREAM, **({"authorization": f"Bearer {token}"} if token else {})}
            return httpx.post(f"{url}/graphql", json=heavy(tag), headers=headers, timeout=10)

        async def until_refused(prefix: str, token: str | None = None) -> tuple[list[Events], Any]:
            """Heavy distinct streams until one is refused: those started, and the refusal."""
            started: list[Events] = []
            for n in range(10):
                events = Events(url, token=token, body=heavy(f"{prefix}{n}")).start()
                while events.status is None:
                    assert events.error is None, events.error
                    await asyncio.sleep(0.01)
                if events.status != 200:  # asked again, to read why
                    await events.stop()
                    return started, await asyncio.to_thread(post_heavy, f"{prefix}{n}", token)
                started.append(events)
            raise AssertionError("10 heavy streams started")

        async def scenario() -> None:
            streams, refused = await until_refused("m")
            assert refused.status_code == 429, refused
            error = refused.json()["errors"][0]
            assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            assert f"at most {share} bytes" in error["message"]
            assert 1 <= len(streams) < 5
            await held(url, len(streams))
            mine = await asyncio.to_thread(metric, url, "newsgraph_subscription_bytes")
            assert 0 < mine <= share

            theirs, full = await until_refused("t", ADMIN_TOKEN)  # another client's
            assert theirs and full.status_code == 503, full
            assert full.headers["retry-after"] == "1"
            assert full.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            assert await asyncio.to_thread(metric, url, "newsgraph_subscription_bytes") <= most

            await streams.pop().stop()  # one ends: its bytes come back, and room with them
            await held(url, len(streams) + len(theirs))
            left = await asyncio.to_thread(metric, url, "newsgraph_subscription_bytes")
            assert left < most
            again = Events(url, body=heavy("ag")).start()
            await held(url, len(streams) + len(theirs) + 1)
            for events in (*streams, *theirs, again):
                await events.stop()
            await held(url, 0)
            assert await asyncio.to_thread(metric, url, "newsgraph_subscription_bytes") == 0

        run(scenario())


def test_streams_count_per_identity_and_an_unknown_key_is_401(store, settings):
    """An API key is a client of its own, whatever its address; a key the
    store does not know is refused before anything runs."""
    token, _ = keys.create(store.keys, "app")
    with server(store, settings, subscriptions_per_client=1) as url:

        async def scenario() -> None:
            keyed, anonymous = Events(url, token=token).start(), Events(url).start()
            await subscribed(url, 2)  # one each: the key's and the address's
            response = await asyncio.to_thread(post, url, ARRIVED, token)
            assert response.status_code == 429, response.text
            assert response.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            unknown = await asyncio.to_thread(post, url, ARRIVED, keys.PREFIX + "x" * 43)
            assert unknown.status_code == 401, unknown.text
            assert unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"'
            for events in (keyed, anonymous):
                await events.stop()

        run(scenario())


def never_reads(url: str) -> socket.socket:
    """A client that POSTs a subscription over SSE and reads nothing."""
    host, port = url.removeprefix("http://").split(":")
    request = orjson.dumps({"query": "subscription { articlePublished { id body } }"})
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        b"POST /graphql HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n"
        b"content-type: application/json\r\ncontent-length: "
        + str(len(request)).encode()
        + b"\r\n\r\n"
        + request
    )
    return sock


async def publish_until(
    url: str, store: Store, settings: Settings, folder: Path, count: int
) -> int:
    """Large articles, three at a time, until the server holds ``count``
    subscriptions: how many were published."""
    body = "Long story. " * 30_000  # ~360 kB an article: the socket's buffers fill fast
    sent = 0
    deadline = time.monotonic() + 40
    while metric(url, "newsgraph_subscriptions") > count:
        assert time.monotonic() < deadline and sent < 60, f"not dropped after {sent}"
        for _ in range(3):
            write_article(folder, f"{sent:03}.md", body, webUrl=web_url(f"s{sent}"))
            sent += 1
        await load(store, settings, folder)
        await asyncio.sleep(0.2)
    return sent


def test_a_client_that_falls_a_queue_behind_is_dropped(store, settings, tmp_path):
    """It reads nothing: once its queue is full its subscription is dropped."""
    with server(store, settings, subscription_queue=4) as url:
        sock = never_reads(url)

        async def scenario() -> None:
            await subscribed(url, 1)
            await publish_until(url, store, settings, tmp_path, 0)
            assert metric(url, "newsgraph_subscriptions_dropped_total") == 1

        try:
            run(scenario(), timeout=90)
        finally:
            sock.close()


def test_the_send_timeout_cuts_a_client_that_never_reads_not_one_that_does(
    store, settings, tmp_path
):
    """On the server `newsgraph serve` runs (its idle, header and send
    timeouts of 1 s), with a queue too long to fill: the client that reads
    nothing is reset by the send timeout; the one that reads keeps its
    stream, well past every timeout and the request's deadline."""
    limits = ConnectionLimits(idle_s=1, header_s=1, send_s=1, max_connections=100, accept_batch=16)
    changes = {"subscription_queue": 1000, "request_timeout_ms": 300, "sse_heartbeat_s": 1}
    app = create_app(subscription_settings(settings, **changes), store)
    with serving(app, limits) as url:
        sock = never_reads(url)

        async def scenario() -> None:
            reader = Events(url, "subscription { articlePublished { id body } }").start()
            await subscribed(url, 2)
            sent = await publish_until(url, store, settings, tmp_path, 1)
            assert metric(url, "newsgraph_subscriptions_dropped_total") == 0  # not the queue
            await reader.until(sent, timeout=30)
            await asyncio.sleep(2.5)  # past every timeout again
            assert metric(url, "newsgraph_subscriptions") == 1 and reader.error is None
            assert reader.comments >= 2  # heartbeats while nothing else came
            await reader.stop()

        try:
            run(scenario(), timeout=120)
        finally:
            sock.close()


# -- a live server: `newsgraph serve`, httpx reading its stream ----------------------------


def streams_beside_websocket(env: dict[str, str], folder: Path) -> tuple[list[float], list[float]]:
    """``newsgraph serve --load FOLDER --watch``: an httpx event stream and a
    WebSocket subscriber, then files saved one by one; each one's delay from
    saved to received, over SSE and over WebSocket."""
    write_article(folder, "first.md", webUrl=web_url("first"))
    env = {**env, "NEWSGRAPH_SUBSCRIPTION_POLL_MS": "200"}
    with running_server(env, "--load", str(folder), "--watch") as (url, _):

        async def scenario() -> tuple[list[float], list[float]]:
            events, listener = Events(url).start(), Listener(url).start()
            await subscribed(url, 2)
            sse, ws = [], []
            for i in range(5):
                saved = time.monotonic()
                write_article(folder, f"{i}.md", webUrl=web_url(f"live-{i}"), title=f'"Live {i}"')
                (*_, article) = await events.until(i + 1, timeout=30)
                assert article["title"] == f"Live {i}"
                await listener.until(i + 1, timeout=30)
                sse.append(events.events[-1][0] - saved)
                ws.append(listener.received[-1][0] - saved)
                await asyncio.sleep(0.1 * (i % 3))  # land at various points of the poll
            await events.stop()
            await listener.stop()
            return sse, ws

        return run(scenario(), timeout=120)


def report(engine: str, sse: list[float], ws: list[float]) -> None:
    later = statistics.median(a - b for a, b in zip(sse, ws, strict=True))
    print(
        f"\n{engine}: saved -> received, median over {len(sse)} files: "
        f"SSE {statistics.median(sse):.3f} s, WebSocket {statistics.median(ws):.3f} s; "
        f"SSE after WebSocket by {later * 1000:.1f} ms"
    )
    # The same articles from the same poll: SSE adds nothing to speak of.
    # (The README's numbers come from here: run with -s to print them.)
    assert abs(statistics.median(sse) - statistics.median(ws)) < 0.5, (sse, ws)


def test_a_live_server_streams_to_httpx_on_the_embedded_engine(tmp_path):
    sse, ws = streams_beside_websocket({"MONGODB_URI": ""}, tmp_path)
    report("embedded", sse, ws)


@pytest.mark.wire
def test_a_live_server_streams_to_httpx_on_the_wire_engine(wire_server, tmp_path):
    env = {"MONGODB_URI": wire_server.uri, "NEWSGRAPH_DB": f"t_{uuid.uuid4().hex[:12]}"}
    sse, ws = streams_beside_websocket(env, tmp_path)
    report("wire", sse, ws)


# -- the README's snippets: curl -N, and graphql-sse's client from Node -------------------


class Printed:
    """A process's output lines, read in a thread as they come."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.decode().rstrip("\r\n"))

    async def until(self, wanted: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not any(wanted in line for line in self.lines):
            assert self.process.poll() is None, (self.process.returncode, self.lines)
            assert time.monotonic() < deadline, self.lines
            await asyncio.sleep(0.05)


def test_the_readme_s_sse_snippets_receive_what_they_subscribe_to(store, settings, tmp_path):
    if shutil.which("curl") is None:
        missing("CURL", "curl is not installed (apt-get install curl)")
    node = node_with("graphql-sse")
    with server(store, settings) as url:
        curl = subprocess.Popen(
            ["bash", "-c", pointed_at(snippets()["curl-sse"].code, f"{url}/graphql")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        js = subprocess.Popen(
            [node, "--input-type=module", "-"],
            cwd=CLIENTS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert js.stdin is not None
        js.stdin.write(pointed_at(snippets()["graphql-sse"].code, f"{url}/graphql").encode())
        js.stdin.close()
        printed = {"curl": Printed(curl), "graphql-sse": Printed(js)}
        try:

            async def scenario() -> None:
                await subscribed(url, 2)
                write_article(tmp_path, "a.md", webUrl=web_url("a"), title='"Tram News"')
                write_article(
                    tmp_path, "b.md", webUrl=web_url("b"), title='"Wind Farm"',
                    topics="\n  - Energy",
                )  # fmt: skip
                await load(store, settings, tmp_path)
                await printed["graphql-sse"].until("Wind Farm")
                await printed["graphql-sse"].until("Tram News")  # no filter there
                await printed["curl"].until('"title":"Wind Farm"')

            run(scenario())
            # curl's filter selects the article about energy alone.
            events = [line for line in printed["curl"].lines if line.startswith("data: ")]
            assert len(events) == 1 and printed["curl"].lines[0] == "event: next", events
        finally:
            for process in (curl, js):
                process.kill()
                process.wait()
