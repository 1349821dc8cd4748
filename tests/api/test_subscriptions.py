"""Subscription.articlePublished over WebSocket, on both engines, through a
real Uvicorn: what a loader writes reaches subscribers (and only those who
may see it and want it), within bounds a hostile or broken client cannot
push past."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pymongo.errors
import pytest
from gql import Client
from gql import gql as document
from gql.transport.exceptions import TransportQueryError
from graphql import parse

from api.app import create_app
from api.data.gateway import Gateway
from api.execution.compiled import Plans
from api.execution.plan import Unplannable
from api.operation.schema import build_schema
from api.schema.context import Context
from core.config import Settings
from core.indexes import ARTICLES, LOADER
from core.store import Store
from loaders import load_paths
from loaders.watch import watch_paths
from testing.live import running_server
from tests.api.fixtures import ADMIN_TOKEN
from tests.api.slow import serving
from tests.api.test_indexes import backing_index
from tests.api.wsclient import Raw, metric, subscribed, transport, ws_url
from tests.articles import article_text, web_url, write_article
from tests.clients.readme import snippets
from tests.loaders.test_watch import watching
from tests.waiting import eventually

ARRIVED = """subscription($filter: ArticleFilter) {
  articlePublished(filter: $filter) {
    id title published
    provider { name domain }
    topics { name }
    images { url }
    related { title webUrl }
  }
}"""
#: How long a test waits for an article it expects (a poll is 100 ms here).
WAIT_S = 15


def subscription_settings(settings: Settings, **changes: Any) -> Settings:
    changes.setdefault("subscription_poll_ms", 100)
    return dataclasses.replace(settings, admin_token=ADMIN_TOKEN, **changes)


@contextlib.contextmanager
def server(store: Store, settings: Settings, **changes: Any) -> Iterator[str]:
    """The API on a real Uvicorn in a thread, over the test's store: its URL."""
    with serving(create_app(subscription_settings(settings, **changes), store)) as url:
        yield url


class Listener:
    """A gql client's subscription, read in a task into a list."""

    def __init__(self, url: str, query: str = ARRIVED, token: str | None = None, **variables: Any):
        self.url, self.query, self.token, self.variables = url, query, token, variables
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            async with Client(transport=transport(self.url, self.token)) as session:
                request = document(self.query)
                request.variable_values = self.variables or None
                async for result in session.subscribe(request):
                    self.received.append((time.monotonic(), result["articlePublished"]))
        except Exception as exc:  # the test reads it
            self.error = exc

    def start(self) -> Listener:
        self.task = asyncio.create_task(self._run())
        return self

    async def until(self, count: int, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} articles"
            await asyncio.sleep(0.02)
        return [article for _, article in self.received]

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def run(coroutine: Any, timeout: float = 60) -> Any:
    """Every test's async part, bounded in time."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def load(store: Store, settings: Settings, folder: Path) -> None:
    report = await asyncio.to_thread(load_paths, store, [folder], settings)
    assert report.ok, report.failures


# -- what reaches whom -----------------------------------------------------------


def test_a_file_written_under_watch_reaches_a_subscriber(store, settings, tmp_path):
    write_article(tmp_path, "first.md", webUrl=web_url("first"))
    with watching(store, settings, tmp_path), server(store, settings) as url:

        async def scenario() -> None:
            listener = Listener(url).start()
            await subscribed(url, 1)
            written = time.monotonic()
            write_article(tmp_path, "second.md", webUrl=web_url("second"), title='"Arrived"')
            (article,) = await listener.until(1)
            delay = listener.received[0][0] - written
            await listener.stop()
            assert article["title"] == "Arrived" and article["published"] is True
            assert article["provider"] == {"name": "Tram Times", "domain": "tramtimes.example"}
            assert [t["name"] for t in article["topics"]] == ["Urban Transit", "Health"]
            assert article["related"][0]["title"] == "Hospital Welcomes Tram Stop"
            assert delay < 5, delay  # watch debounce + load + at most one poll (100 ms)

        run(scenario())


def test_an_unpublished_article_reaches_the_admin_and_later_everyone(store, settings, tmp_path):
    with server(store, settings) as url:

        async def scenario() -> None:
            anyone, admin = Listener(url).start(), Listener(url, token=ADMIN_TOKEN).start()
            await subscribed(url, 2)
            draft = write_article(tmp_path, "d.md", webUrl=web_url("draft"), published="false")
            await load(store, settings, tmp_path)
            (held,) = await admin.until(1)
            assert held["published"] is False
            await asyncio.sleep(0.5)  # several polls
            assert anyone.received == []

            draft.write_text(article_text(webUrl=web_url("draft"), published="true"))
            await load(store, settings, tmp_path)
            (public,) = await anyone.until(1)
            assert public["id"] == held["id"] and public["published"] is True
            assert [a["id"] for a in await admin.until(2)] == [held["id"]] * 2

            draft.write_text(article_text(webUrl=web_url("draft"), title='"An edit"'))
            await load(store, settings, tmp_path)  # an edit is not news
            await asyncio.sleep(0.5)
            assert (len(anyone.received), len(admin.received)) == (1, 2)
            await anyone.stop()
            await admin.stop()

        run(scenario())


def test_a_wrong_token_is_anyone(store, settings, tmp_path):
    with server(store, settings) as url:

        async def scenario() -> None:
            listener = Listener(url, token="not-the-token").start()
            await subscribed(url, 1)
            write_article(tmp_path, "d.md", webUrl=web_url("d"), published="false")
            write_article(tmp_path, "p.md", webUrl=web_url("p"))
            await load(store, settings, tmp_path)
            (article,) = await listener.until(1)
            assert article["published"] is True
            await asyncio.sleep(0.3)
            assert len(listener.received) == 1
            await listener.stop()

        run(scenario())


def test_each_subscriber_gets_what_its_filter_selects(store, settings, tmp_path):
    with server(store, settings) as url:

        async def scenario() -> None:
            energy = Listener(url, filter={"topic": "Energy", "minQuality": 50}).start()
            search = Listener(url, filter={"search": "CAFÉ"}).start()
            everything = Listener(url).start()
            await subscribed(url, 3)
            write_article(tmp_path, "a.md", webUrl=web_url("a"), topics="[Energy]", quality="70")
            write_article(tmp_path, "b.md", webUrl=web_url("b"), topics="[Energy]", quality="20")
            write_article(tmp_path, "c.md", webUrl=web_url("c"), title='"A new cafe opens"')
            await load(store, settings, tmp_path)
            assert len(await everything.until(3)) == 3
            await asyncio.sleep(0.3)
            assert [a["title"] for _, a in search.received] == ["A new cafe opens"]
            (mine,) = [a for _, a in energy.received]
            assert mine["id"] == next(a["id"] for _, a in everything.received if "Energy" in str(a))
            for listener in (energy, search, everything):
                await listener.stop()

        run(scenario())


def test_a_burst_arrives_whole_and_in_order(store, settings, tmp_path):
    """A folder loaded at once is more than one poll's page: it arrives over
    several, nothing lost, oldest write first."""
    small = dataclasses.replace(settings, batch_size=5)
    with server(store, settings, subscription_queue=8) as url:

        async def scenario() -> None:
            listener = Listener(url, query="subscription { articlePublished { webUrl } }").start()
            await subscribed(url, 1)
            for i in range(23):
                write_article(tmp_path, f"{i:02}.md", webUrl=web_url(f"n{i:02}"))
            await load(store, small, tmp_path)
            got = [a["webUrl"] for a in await listener.until(23)]
            assert sorted(got) == sorted(
                f"https://www.tramtimes.example/news/n{i:02}" for i in range(23)
            )
            assert len(set(got)) == 23
            await listener.stop()

        run(scenario())


# -- what it costs the store ---------------------------------------------------------


@pytest.fixture
def finds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every find the API sends: (collection, query)."""
    sent: list[tuple[str, dict[str, Any]]] = []
    original = Gateway.find

    async def spy(self: Gateway, collection: str, query: dict[str, Any], *args: Any) -> Any:
        sent.append((collection, query))
        return await original(self, collection, query, *args)

    monkeypatch.setattr(Gateway, "find", spy)
    return sent


@pytest.mark.parametrize("subscribers", [1, 12])
def test_one_store_query_per_poll_however_many_subscribers(
    store, settings, tmp_path, finds, round_trips, subscribers
):
    """Idle, a poll reads the marker (by _id); when it moved, one indexed query
    more for the articles; subscribers share both."""
    query = "subscription { articlePublished { id title provider { name } topics { name } } }"
    with server(store, settings) as url:

        async def scenario() -> None:
            listeners = [Listener(url, query=query).start() for _ in range(subscribers)]
            await subscribed(url, subscribers)
            started = time.monotonic()
            before = metric(url, "newsgraph_subscription_polls_total")
            finds.clear()
            round_trips.clear()
            await asyncio.sleep(1)
            polls = metric(url, "newsgraph_subscription_polls_total") - before
            # Every 100 ms: bounded by the time between the two reads of the
            # count, which a loaded machine stretches past the second slept.
            assert 5 <= polls <= (time.monotonic() - started) / 0.1 + 1
            assert all(c == LOADER and q == {"_id": "news"} for c, q in finds), finds
            assert abs(len(round_trips) - polls) <= 1  # one each (the last may be in flight)

            finds.clear()
            write_article(tmp_path, "a.md", webUrl=web_url("a"))
            write_article(tmp_path, "b.md", webUrl=web_url("b"))
            await load(store, settings, tmp_path)
            for listener in listeners:
                await listener.until(2)
            articles = [q for c, q in finds if c == ARTICLES]
            assert len(articles) == 1, finds  # however many subscribers
            assert backing_index(ARTICLES, articles[0], [("_source.newsSeq", 1)]) == "news_seq"
            for listener in listeners:
                await listener.stop()

        run(scenario())


def test_no_subscriber_no_poll(store, settings, round_trips):
    with server(store, settings) as url:

        async def scenario() -> None:
            await asyncio.sleep(0.5)
            assert round_trips == [] and metric(url, "newsgraph_subscription_polls_total") == 0
            listener = Listener(url).start()
            await subscribed(url, 1)
            await listener.stop()
            await asyncio.sleep(0.3)  # the poll stops with the last subscriber
            polls = metric(url, "newsgraph_subscription_polls_total")
            await asyncio.sleep(0.5)
            assert metric(url, "newsgraph_subscription_polls_total") == polls
            assert metric(url, "newsgraph_subscriptions") == 0

        run(scenario())


# -- bounds ------------------------------------------------------------------------------


def error_codes(message: dict[str, Any]) -> list[str]:
    assert message["type"] == "error", message
    return [e.get("extensions", {}).get("code", "") for e in message["payload"]]


def test_too_many_subscriptions_per_connection_and_per_worker(store, settings):
    with server(store, settings, subscriptions_per_connection=2, subscriptions_max=3) as url:

        async def scenario() -> None:
            first, second = await Raw.connect(url), await Raw.connect(url)
            await first.init()
            await second.init()
            for op in ("1", "2"):
                await first.subscribe(op, ARRIVED)
            await first.subscribe("3", ARRIVED)
            refused = await first.receive()
            assert refused["id"] == "3" and error_codes(refused) == ["TOO_MANY_SUBSCRIPTIONS"]
            await second.subscribe("1", ARRIVED)
            await subscribed(url, 3)
            await second.subscribe("2", ARRIVED)
            refused = await second.receive()
            assert error_codes(refused) == ["TOO_MANY_SUBSCRIPTIONS"]
            assert "as many subscriptions as it may (3)" in refused["payload"][0]["message"]
            await first.send({"id": "1", "type": "complete"})
            await subscribed(url, 2)
            await second.subscribe("3", ARRIVED)  # room again
            await subscribed(url, 3)
            await first.close()
            await subscribed(url, 2)  # a closed connection's subscriptions end with it
            await second.close()

        run(scenario())


@pytest.mark.parametrize(
    ("query", "code"),
    [
        # Nested lists priced per article as for a query: 100 x 100 articles.
        (
            "subscription { articlePublished { provider { articles(first: 100) { nodes { "
            "topics { articles(first: 100) { nodes { id } } } } } } } }",
            "QUERY_TOO_COSTLY",
        ),
        (
            "subscription { articlePublished { "
            + "related { article { " * 7
            + "id"
            + " } }" * 7
            + " } }",
            "",
        ),
        (
            "subscription { "
            + " ".join(f"a{i}: articlePublished {{ id }}" for i in range(40))
            + " }",
            "",
        ),
        (
            "subscription { articlePublished(filter: {topicsAny: ["
            + ", ".join(['"t"'] * 51)
            + "]}) { id } }",
            "BAD_REQUEST",
        ),
        ("{ articles { totalCount } }", "BAD_REQUEST"),  # queries go over HTTP
        ("subscription { articlePublished { nope } }", ""),
        ("subscription {", ""),
    ],
    ids=["cost", "depth", "aliases", "filter", "query", "invalid", "syntax"],
)
def test_a_subscription_is_refused_as_a_query_would_be(store, settings, query, code):
    with server(store, settings) as url:

        async def scenario() -> None:
            client = await Raw.connect(url)
            await client.init()
            await client.subscribe("1", query)
            refused = await client.receive()
            assert refused["id"] == "1" and error_codes(refused)[0] == code, refused
            assert metric(url, "newsgraph_subscriptions") == 0
            await client.subscribe("2", "subscription { articlePublished { id } }")
            await subscribed(url, 1)  # the connection goes on
            await client.close()

        run(scenario())


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("x" * 200_000, 1009),
        (b"\x00binary", 4400),
        ("[1, 2]", 4400),
        ("not json", 4400),
        ({"type": "subscribe", "id": ["1"], "payload": {"query": "{ x }"}}, 4400),
        ({"type": "subscribe", "id": "1", "payload": "subscription { x }"}, 4400),
        ({"type": "connection_init", "payload": "x"}, 4400),
    ],
    ids=["too-big", "binary", "array", "not-json", "id", "payload", "init-payload"],
)
def test_a_malformed_message_closes_the_connection(store, settings, message, code):
    with server(store, settings) as url:

        async def scenario() -> None:
            client = await Raw.connect(url)
            if not (isinstance(message, dict) and message["type"] == "connection_init"):
                await client.init()
            await client.send(message)
            assert (await client.closed())[0] == code

        run(scenario())


def test_a_subscription_before_connection_init_is_refused(store, settings):
    with server(store, settings) as url:

        async def scenario() -> None:
            client = await Raw.connect(url)
            await client.subscribe("1", ARRIVED)
            assert (await client.closed())[0] == 4401

        run(scenario())


def test_silent_clients_are_closed(store, settings):
    """No connection_init in time; no answer to pings (gql's client answers)."""
    with server(store, settings, ws_anonymous_init_timeout_s=1, ws_keepalive_s=1) as url:

        async def scenario() -> None:
            started = time.monotonic()
            mute = await Raw.connect(url)
            assert (await mute.closed(5))[0] == 4408
            assert time.monotonic() - started < 3

            deaf = await Raw.connect(url)
            await deaf.init()  # then answers no ping
            code, reason = await deaf.closed(6)
            assert (code, reason) == (4408, "no answer to pings")

            listener = Listener(url).start()
            await asyncio.sleep(3.5)
            assert listener.error is None and not listener.task.done()  # type: ignore[union-attr]
            await listener.stop()

        run(scenario())


def test_too_many_connections(store, settings):
    """Counted once initialised, per worker: the third is closed at its
    connection_init, and room is made when one leaves."""
    with server(store, settings, ws_connections_max=2) as url:

        async def scenario() -> None:
            held = [await Raw.connect(url), await Raw.connect(url)]
            for client in held:
                await client.init()
            extra = await Raw.connect(url)
            await extra.send({"type": "connection_init"})
            assert (await extra.closed()) == (1013, "too many connections; try again later")
            await held[0].close()
            await asyncio.sleep(0.2)
            again = await Raw.connect(url)
            await again.init()
            for client in (held[1], again):
                await client.close()

        run(scenario())


def test_a_client_that_stops_reading_is_dropped_with_4008(store, settings, tmp_path):
    """Its queue fills while it reads nothing; the server then drops it (and
    holds nothing more for it) and closes with 4008 once it reads again."""
    body = "Long story. " * 30_000  # ~360 kB an article: the socket's buffers fill fast
    with server(store, settings, subscription_queue=4, ws_keepalive_s=30) as url:

        async def scenario() -> None:
            # max_queue=1: the client's library stops reading the socket at
            # once; no compression, which would shrink the repetitive body.
            client = await Raw.connect(url, max_queue=1, max_size=None, compression=None)
            await client.init()
            await client.subscribe("1", "subscription { articlePublished { id body } }")
            await subscribed(url, 1)
            sent = 0
            deadline = time.monotonic() + 40
            while metric(url, "newsgraph_subscriptions_dropped_total") < 1:
                assert time.monotonic() < deadline and sent < 60, f"not dropped after {sent}"
                for _ in range(3):
                    write_article(tmp_path, f"{sent:03}.md", body, webUrl=web_url(f"s{sent}"))
                    sent += 1
                await load(store, settings, tmp_path)
                await asyncio.sleep(0.2)
            assert metric(url, "newsgraph_subscriptions") == 0
            received = 0
            code = None
            with contextlib.suppress(Exception):
                while True:
                    message = await client.receive(15)
                    received += message["type"] == "next"
            code = client.ws.close_code
            assert code == 4008, (code, client.ws.close_reason)
            assert "too slow" in (client.ws.close_reason or "")
            assert received < sent  # the rest was never queued for it

        run(scenario(), timeout=90)


# -- outages ---------------------------------------------------------------------------


def test_a_store_outage_is_reported_once_and_the_polls_recover(
    store, settings, tmp_path, monkeypatch
):
    original = Gateway._dispatch
    down = {"now": False}

    async def dispatch(self: Gateway, call: Any) -> Any:
        if down["now"]:
            raise pymongo.errors.ServerSelectionTimeoutError("the store is down (test)")
        return await original(self, call)

    monkeypatch.setattr(Gateway, "_dispatch", dispatch)
    with server(store, settings) as url:

        async def scenario() -> None:
            received: list[dict[str, Any]] = []
            client = await Raw.connect(url)
            await client.init()
            await client.subscribe("1", "subscription { articlePublished { title } }")
            await subscribed(url, 1)
            down["now"] = True
            polls = metric(url, "newsgraph_subscription_polls_total")
            outage = await client.receive()
            assert outage["type"] == "next" and outage["payload"]["data"] is None
            (error,) = outage["payload"]["errors"]
            assert error["extensions"]["code"] == "STORE_UNAVAILABLE"
            assert "not answering" in error["message"]
            write_article(tmp_path, "a.md", webUrl=web_url("a"), title='"Written meanwhile"')
            down["now"] = False
            await load(store, settings, tmp_path)
            down["now"] = True
            await asyncio.sleep(3)
            # Backing off, not spinning: 100 ms, then 200, 400, 800 ms...
            assert metric(url, "newsgraph_subscription_polls_total") - polls <= 8
            down["now"] = False
            with contextlib.suppress(asyncio.TimeoutError):
                while True:
                    received.append(await client.receive(8))
                    if received[-1]["payload"].get("data"):
                        break
            assert [m["payload"]["data"] for m in received] == [
                {"articlePublished": {"title": "Written meanwhile"}}
            ]  # reported once; the article written meanwhile arrives
            await client.close()

        run(scenario())


# -- execution ---------------------------------------------------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "ordinary"])
def test_subscriptions_run_beside_compiled_queries(store, settings, tmp_path, compiled):
    """Compiled plans answer queries only; a subscription runs ordinarily, with
    its nested lookups (batched per article), whichever answers the queries."""
    query = """subscription { articlePublished { webUrl
        related { title article { webUrl provider { name articleCount } } } } }"""
    with server(store, dataclasses.replace(settings, compiled=compiled)) as url:

        async def scenario() -> None:
            listener = Listener(url, query=query).start()
            await subscribed(url, 1)
            write_article(tmp_path, "x.md", webUrl=web_url("x"))
            await load(store, settings, tmp_path)
            await listener.until(1)
            related = f'\n  - title: "Linked"\n    webUrl: {web_url("x")}'
            write_article(tmp_path, "y.md", webUrl=web_url("y"), related=related)
            await load(store, settings, tmp_path)
            linking = (await listener.until(2))[1]
            await listener.stop()
            (story,) = linking["related"]
            assert story["article"] == {
                "webUrl": "https://www.tramtimes.example/news/x",
                "provider": {"name": "Tram Times", "articleCount": 2},
            }

        run(scenario())


def test_compiled_plans_decline_a_subscription_before_reading_its_variables(store):
    query = "subscription($f: ArticleFilter) { articlePublished(filter: $f) { id } }"
    plans = Plans()
    with pytest.raises(Unplannable, match="subscription operations are not planned"):
        run(
            plans.execute(
                build_schema(),
                query,
                parse(query),
                {"f": "not an object"},  # coercing would have made an error result
                None,
                Context(Gateway(store, 5000)),
            )
        )


def test_a_subscription_over_http_is_told_where_to_go(client):
    response = client.post("/graphql", json={"query": "subscription { articlePublished { id } }"})
    body = response.json()
    assert body["data"] is None
    assert "over WebSocket" in body["errors"][0]["message"]


# -- delivery delay --------------------------------------------------------------------


@contextlib.contextmanager
def default_watch(store: Store, settings: Settings, root: Path) -> Iterator[None]:
    """``watch_paths`` as ``newsgraph load --watch`` runs it (its debounce), in a thread."""
    stop, reports = threading.Event(), []
    thread = threading.Thread(
        target=watch_paths,
        args=(store, [root], settings),
        kwargs={"stop": stop, "on_report": reports.append},
        daemon=True,
    )
    thread.start()
    try:
        eventually(lambda: reports, WAIT_S, "the first load", alive=thread.is_alive)
        time.sleep(0.3)  # let the watch start before the test changes files
        yield
    finally:
        stop.set()
        thread.join(10)


def test_delivery_delay_with_the_default_poll(store, settings, tmp_path):
    """File written -> message received, under `load --watch` (300 ms
    debounce) and the default 1 s poll: the README's numbers come from here
    (run with -s to print them)."""
    write_article(tmp_path, "first.md", webUrl=web_url("first"))
    with (
        default_watch(store, settings, tmp_path),
        server(store, settings, subscription_poll_ms=1000) as url,
    ):

        async def scenario() -> list[float]:
            listener = Listener(url).start()
            await subscribed(url, 1)
            delays = []
            for i in range(10):
                written = time.monotonic()
                write_article(tmp_path, f"{i}.md", webUrl=web_url(f"delay-{i}"))
                await listener.until(i + 1, timeout=20)
                delays.append(listener.received[i][0] - written)
                await asyncio.sleep(0.37 * (i % 3))  # land at various points of the poll
            await listener.stop()
            return delays

        delays = run(scenario(), timeout=120)
    engine = "embedded" if store.embedded else "wire"
    print(
        f"\n{engine}: delivery delay median {statistics.median(delays):.2f} s, "
        f"max {max(delays):.2f} s over {len(delays)} files"
    )
    assert statistics.median(delays) < 3, delays


def test_a_subscription_outlives_its_transport_errors(store, settings):
    """gql raises what the server reports, as an application sees it."""
    with server(store, settings) as url:

        async def scenario() -> None:
            async with Client(transport=transport(url)) as session:
                request = document(
                    'subscription { articlePublished(filter: {search: "!"}) { id } }'
                )
                with pytest.raises(TransportQueryError, match="no words to look for"):
                    async for _ in session.subscribe(request):
                        pass

        run(scenario())


# -- a loader in another process --------------------------------------------------------


@pytest.mark.wire
def test_a_loader_in_another_process_is_heard_by_a_server_in_another(wire_server, tmp_path):
    """`newsgraph load --watch` and `newsgraph serve` as separate processes,
    sharing nothing but the database, as on separate hosts."""
    env = {
        "MONGODB_URI": wire_server.uri,
        "NEWSGRAPH_DB": f"t_{uuid.uuid4().hex[:12]}",
        "NEWSGRAPH_SUBSCRIPTION_POLL_MS": "200",
    }
    write_article(tmp_path, "first.md", webUrl=web_url("first"))
    loader = subprocess.Popen(
        [sys.executable, "-m", "newsgraph", "load", "--json", "--watch", str(tmp_path)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert loader.stdout is not None
        first = orjson.loads(loader.stdout.readline())  # the first load's report
        assert first["inserted"] == 1
        with running_server(env) as (url, _):

            async def scenario() -> None:
                listener = Listener(url).start()
                await subscribed(url, 1)
                write_article(tmp_path, "second.md", webUrl=web_url("second"), title='"Far"')
                (article,) = await listener.until(1, timeout=30)
                assert article["title"] == "Far"
                await listener.stop()

            run(scenario())
    finally:
        loader.send_signal(signal.SIGINT)
        try:
            loader.wait(10)
        except subprocess.TimeoutExpired:
            loader.kill()
            loader.wait()


def test_serve_watch_feeds_subscribers_on_the_embedded_engine(tmp_path):
    """The embedded engine lives in the server's process: `serve --load DIR
    --watch` loads the folder's changes there."""
    write_article(tmp_path, "first.md", webUrl=web_url("first"))
    env = {"MONGODB_URI": "", "NEWSGRAPH_SUBSCRIPTION_POLL_MS": "200"}
    with running_server(env, "--memory", "--load", str(tmp_path), "--watch") as (url, _):

        async def scenario() -> None:
            listener = Listener(url).start()
            await subscribed(url, 1)
            write_article(tmp_path, "second.md", webUrl=web_url("second"), title='"Near"')
            (article,) = await listener.until(1, timeout=30)
            assert article["title"] == "Near"
            await listener.stop()

        run(scenario())


def test_the_readme_s_gql_snippet_runs_as_a_script_and_receives_what_its_filter_selects(
    store, settings, tmp_path
):
    # The README's subscription snippet, run as the script it says it is
    # (its address and token replaced): an admin's session that prints each
    # matching article's title.
    code = snippets()["gql-subscribe"].code
    assert "ws://127.0.0.1:8000/graphql" in code and "<token>" in code
    with server(store, settings) as url:
        code = code.replace("ws://127.0.0.1:8000/graphql", ws_url(url))
        script = tmp_path / "subscribe.py"
        script.write_text(code.replace("<token>", ADMIN_TOKEN))
        articles = tmp_path / "articles"
        articles.mkdir()
        log = tmp_path / "subscribe.log"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=stderr
            )
        try:

            async def scenario() -> None:
                await subscribed(url, 1, timeout=WAIT_S)
                write_article(
                    articles, "a.md", webUrl=web_url("a"), topics="[Energy]", quality="20"
                )
                write_article(
                    articles, "b.md", webUrl=web_url("b"), topics="[Energy]", quality="70",
                    title='"Grid Storage Doubles"', published="false",
                )  # fmt: skip
                await load(store, settings, articles)

            try:
                run(scenario())
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the script's stderr: {log.read_text()}") from None
            # Unpublished, but the snippet's session is the admin's; the other
            # is filtered out.
            assert proc.stdout is not None
            lines: list[bytes] = []
            reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
            reader.start()
            deadline = time.monotonic() + WAIT_S
            while not lines:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the snippet printed nothing"
                time.sleep(0.02)
            time.sleep(0.3)  # anything else it would print
            assert lines == [b"Grid Storage Doubles\n"]
            assert proc.poll() is None  # still listening
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C ends it
            proc.wait(timeout=15)
