"""Subscriptions shared, priced and held per client, on both engines through a
real Uvicorn: identical subscriptions are answered once per article (by plan,
and by ordinary execution with compiled plans off), subscriptions that see
differently never share an answer, each subscriber's payload is drawn, and
one client's sockets and subscriptions leave room for everyone else.

Two clients on one machine: loopback's 127.0.0.1 and 127.0.0.2 are two
addresses, so two clients (their identities, ``api.http.identity``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.data.gateway import Gateway
from api.execution.plan.nodes import Answer
from api.execution.subscription import share_key
from api.http.view import GraphQLApp
from api.http.websocket import Connections
from api.live.feed import Events, Feed
from api.operation.request import Operation, Request
from api.operation.run import Payload, _delivered
from api.schema.context import Context, Identity
from core.config import Settings
from core.indexes import ARTICLES
from core.store import Store
from tests.api.fixtures import ADMIN_TOKEN
from tests.api.slow import serving
from tests.api.test_pipeline_caches import view
from tests.api.test_subscriptions import error_codes, load, run, subscription_settings
from tests.api.wsclient import Raw, metric, subscribed
from tests.articles import web_url, write_article

ME = "127.0.0.1"
OTHER = "127.0.0.2"
#: A client of another network (``api.http.identity.network_key``: a /24).
ELSEWHERE = "127.0.1.1"
CITING = """subscription { articlePublished { title
  related { title article { title published } } } }"""


@contextlib.contextmanager
def served(store: Store, settings: Settings, **changes: Any) -> Iterator[tuple[str, GraphQLApp]]:
    """The API on a real Uvicorn in a thread: its URL, and its GraphQL view."""
    app = create_app(subscription_settings(settings, **changes), store)
    with serving(app) as url:
        yield url, view(app)


async def connect(url: str, address: str = ME, **kwargs: Any) -> Raw:
    """A raw client connecting from ``address`` (a client of its own)."""
    return await Raw.connect(url, local_addr=(address, 0), max_size=None, **kwargs)


async def refusal(client: Raw, operation_id: str) -> str:
    """Why a subscription ``client`` asks for now is refused, as the
    refusal's ``error`` says (TOO_MANY_SUBSCRIPTIONS)."""
    await client.subscribe(operation_id, CITING)
    answer = await client.receive()
    assert answer["id"] == operation_id, answer
    assert error_codes(answer) == ["TOO_MANY_SUBSCRIPTIONS"], answer
    message: str = answer["payload"][0]["message"]
    return message


async def nexts(client: Raw, count: int) -> dict[str, list[dict[str, Any]]]:
    """``count`` ``next`` messages, by operation id."""
    got: dict[str, list[dict[str, Any]]] = {}
    for _ in range(count):
        message = await client.receive(15)
        assert message["type"] == "next", message
        got.setdefault(message["id"], []).append(message["payload"])
    return got


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every lookup of articles by id the API sends (answers' store calls;
    the poll's queries are by newsSeq)."""
    sent: list[dict[str, Any]] = []
    original = Gateway.find

    async def spy(self: Gateway, collection: str, query: dict[str, Any], *args: Any) -> Any:
        if collection == ARTICLES and "_id" in query:
            sent.append(query)
        return await original(self, collection, query, *args)

    monkeypatch.setattr(Gateway, "find", spy)
    return sent


# -- shared ----------------------------------------------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "ordinary"])
def test_identical_subscriptions_are_answered_once_per_article(
    store, settings, tmp_path, lookups, compiled, monkeypatch
):
    """Eight identical subscriptions on two sockets: each article is answered
    once (one answer, one lookup of its related article), every subscriber is
    sent it, and each subscriber's price is drawn from its client's budget."""
    write_article(tmp_path, "cited.md", webUrl=web_url("cited"), title='"Cited"')
    with served(store, settings, compiled=compiled) as (url, app):
        limits = app.schema.limits  # type: ignore[attr-defined]
        drawn: list[tuple[str, int]] = []
        take = limits.take

        def recorded(identity: Identity, points: int) -> Any:
            if points > 0:  # what is given back is taken as a negative draw
                drawn.append((identity.key, points))
            return take(identity, points)

        monkeypatch.setattr(limits, "take", recorded)

        async def scenario() -> None:
            await load(store, settings, tmp_path)
            sockets = [await connect(url), await connect(url)]
            for client in sockets:
                await client.init()
            for n in range(8):
                await sockets[n % 2].subscribe(str(n), CITING)
            await subscribed(url, 8)
            assert metric(url, "newsgraph_subscription_groups") == 1
            answered = metric(url, "newsgraph_subscription_answers_total")
            lookups.clear()
            drawn.clear()
            related = f'\n  - title: "Cited"\n    webUrl: {web_url("cited")}'
            for slug in ("a", "b"):
                write_article(tmp_path, f"{slug}.md", webUrl=web_url(slug), related=related)
            await load(store, settings, tmp_path)
            received = [await nexts(client, 8) for client in sockets]
            for got in received:
                assert len(got) == 4 and all(len(payloads) == 2 for payloads in got.values())
                for payloads in got.values():
                    for payload in payloads:
                        (story,) = payload["data"]["articlePublished"]["related"]
                        assert story["article"] == {"title": "Cited", "published": True}
            assert metric(url, "newsgraph_subscription_answers_total") - answered == 2
            assert len(lookups) == 2, lookups  # one per article, however many subscribers
            price = received[0]["0"][0]["extensions"]["cost"]["requestedQueryCost"]
            assert drawn == [(f"addr:{ME}", price)] * 16  # each subscriber's copy
            for client in sockets:
                await client.close()

        run(scenario())


def test_subscriptions_that_see_differently_never_share(store, settings, tmp_path):
    """The admin's and anyone's identical text are two groups: a held-back
    article reaches the admin alone, and a story citing it reads it only in
    the admin's answer; other variables are another group too."""
    with served(store, settings) as (url, _):

        async def scenario() -> None:
            admin, anyone = await connect(url), await connect(url, OTHER)
            await admin.init(ADMIN_TOKEN)
            await anyone.init()
            await admin.subscribe("1", CITING)
            await anyone.subscribe("1", CITING)
            await subscribed(url, 2)
            assert metric(url, "newsgraph_subscription_groups") == 2
            answered = metric(url, "newsgraph_subscription_answers_total")
            write_article(tmp_path, "held.md", webUrl=web_url("held"), published="false")
            await load(store, settings, tmp_path)
            (held,) = (await nexts(admin, 1))["1"]
            assert held["data"]["articlePublished"]["related"][0]["article"] is None
            related = f'\n  - title: "Held"\n    webUrl: {web_url("held")}'
            write_article(tmp_path, "out.md", webUrl=web_url("out"), related=related)
            await load(store, settings, tmp_path)
            (seen,) = (await nexts(admin, 1))["1"]
            (unseen,) = (await nexts(anyone, 1))["1"]  # the held article never came
            assert seen["data"]["articlePublished"]["related"][0]["article"]["published"] is False
            assert unseen["data"]["articlePublished"]["related"][0]["article"] is None
            assert metric(url, "newsgraph_subscription_answers_total") - answered == 3
            for client in (admin, anyone):
                await client.close()

        run(scenario())


def test_what_makes_subscriptions_identical():
    query = "subscription($f: ArticleFilter) { articlePublished(filter: $f) { id } }"
    same = share_key(query, None, {"f": {"topic": "x", "minQuality": 1}}, False)
    assert same == share_key(query, None, {"f": {"minQuality": 1, "topic": "x"}}, False)
    assert same != share_key(query, None, {"f": {"minQuality": 1.0, "topic": "x"}}, False)
    assert same != share_key(query, None, {"f": {"topic": "x", "minQuality": 1}}, True)
    assert same != share_key(query, "Named", {"f": {"topic": "x", "minQuality": 1}}, False)
    assert share_key(query, None, None, False) == share_key(query, None, {}, False)
    assert share_key("", None, None, False) != share_key("", None, None, False)
    assert share_key(query, None, {"f": object()}, False) != share_key(
        query, None, {"f": object()}, False
    )


def test_a_connection_answers_and_writes_one_payload_at_a_time():
    """Two distinct subscriptions of one connection: while the transport
    writes the first one's payload (it has not asked for the next), the
    second's answer is not even built: a slow reader holds one answer."""

    class Connection:
        def __init__(self) -> None:
            self.writing = asyncio.Lock()

        def overflowed(self) -> None:
            raise AssertionError("not here")

    built: list[str] = []

    class Distinct:
        def __init__(self, name: str) -> None:
            self.key = self.name = name

        async def answer(self, event: Any) -> Any:
            built.append(self.name)
            return Answer({"articlePublished": {"id": event["_id"]}}, None)

    async def scenario() -> None:
        feed = Feed(Gateway(None, 5000), 100, 4, 10, 5000)  # type: ignore[arg-type]
        connection = Connection()
        streams = []
        for name in ("first", "second"):
            subscriber = feed._admit(lambda doc: True, connection, Distinct(name))
            op = Operation(Request("subscription { … }", context=Context(None, owner=connection)))  # type: ignore[arg-type]
            streams.append(_delivered(op, Events(subscriber)))

        async def made(stream: AsyncGenerator[Payload, None]) -> Answer:
            """The next payload, made as the pipeline makes it once it is paid for."""
            return await (await anext(stream)).make()

        feed._fan_out([{"_id": "a"}])
        written = await made(streams[0])  # the transport writes it...
        waiting = asyncio.create_task(made(streams[1]))
        await asyncio.sleep(0.05)
        assert written.data == {"articlePublished": {"id": "a"}}
        assert built == ["first"] and not waiting.done()
        following = asyncio.create_task(anext(streams[0]))  # ... and asks for the next
        assert (await waiting).data == {"articlePublished": {"id": "a"}}
        assert built == ["first", "second"]
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        for stream in streams:
            await stream.aclose()

    run(scenario())


# -- limits per client -----------------------------------------------------------


def test_one_client_s_connections_and_subscriptions_leave_room_for_others(store, settings):
    """A client opening sockets as fast as it can, initialising them and
    subscribing all it may, holds only its share: another is let in."""
    limits = {
        "ws_connections_per_client": 2,
        "subscriptions_per_client": 3,
        "ws_connections_max": 4,
        "subscriptions_max": 6,
    }
    with served(store, settings, **limits) as (url, _):

        async def scenario() -> None:
            flood = await asyncio.gather(*(connect(url) for _ in range(12)))
            held, refused = [], []
            for client in flood:  # every one of them asks to count
                with contextlib.suppress(ConnectionClosed):
                    await client.send({"type": "connection_init"})
                    if (await client.receive(5))["type"] == "connection_ack":
                        held.append(client)
                        continue
                refused.append(client.ws.close_code)
            assert len(held) == 2 and set(refused) == {1013}, refused
            for n in range(3):
                await held[n % 2].subscribe(str(n), CITING)
            await subscribed(url, 3)
            # A connection with room, but not its client:
            assert "a client may hold at most 3" in await refusal(held[1], "3")

            other = [await connect(url, OTHER), await connect(url, OTHER)]
            for client in other:
                await client.init()
            for n in range(3):
                await other[n % 2].subscribe(str(n), CITING)
            await subscribed(url, 6)
            for client in [*held, *other]:
                await client.close()

        run(scenario())


def test_a_network_s_clients_share_its_connections_and_subscriptions(store, settings):
    """127.0.0.1 and 127.0.0.2 are two clients of one network (a /24): past
    the network's bounds either is refused, within its own; a client of
    127.0.1.0/24 is let in."""
    connections = {"ws_connections_per_client": 2, "ws_connections_per_network": 3}
    subscriptions = {"subscriptions_per_client": 3, "subscriptions_per_network": 4}
    with served(store, settings, **connections, **subscriptions) as (url, app):

        async def scenario() -> None:
            mine = [await connect(url), await connect(url)]
            ours = await connect(url, OTHER)
            for client in (*mine, ours):
                await client.init()
            late = await connect(url, OTHER)  # its client's second, the network's fourth
            await late.send({"type": "connection_init"})
            code, reason = await late.closed()
            assert code == 1013 and "network (at most 3)" in reason, reason
            for n in range(3):
                await mine[n % 2].subscribe(str(n), CITING)
            await ours.subscribe("3", CITING)
            await subscribed(url, 4)
            # Its client's second, the network's fifth:
            assert "your network (net:127.0.0.0/24)" in await refusal(ours, "4")
            elsewhere = await connect(url, ELSEWHERE)
            await elsewhere.init()
            await elsewhere.subscribe("1", CITING)
            await subscribed(url, 5)
            assert app.connections.open == 4
            for client in (*mine, ours, elsewhere):
                await client.close()

        run(scenario())


def test_a_network_may_have_as_many_sockets_waiting_as_it_may_hold():
    connections = Connections(most=10, per_client=2, per_network=3)
    me, other, third = (f"addr:127.0.0.{n}" for n in (1, 2, 3))
    assert [connections.wait(me) for _ in range(3)] == [True, True, False]
    assert connections.wait(other) and not connections.wait(third)  # the /24's three
    assert connections.wait(f"addr:{ELSEWHERE}") and connections.wait("admin")
    connections.stop_waiting(me)
    assert connections.wait(third)


def test_a_client_s_silent_sockets_hold_nothing_of_anyone_else_s(store, settings):
    """Sockets that never send connection_init count toward no limit: a
    worker that holds one connection still takes another client's; one
    client may have only as many waiting as it may hold (the rest are closed
    at once), while another's wait as usual."""
    changes = {"ws_connections_max": 1, "ws_connections_per_client": 3}
    with served(store, settings, ws_anonymous_init_timeout_s=5, **changes) as (url, _):

        async def scenario() -> None:
            silent = await asyncio.gather(*(connect(url) for _ in range(8)))
            closed = [client for client in silent if await _closed_soon(client)]
            assert len(closed) == 5 and {c.ws.close_code for c in closed} == {1013}
            assert "waiting for connection_init" in (closed[0].ws.close_reason or "")
            other = await connect(url, OTHER)
            await other.init()  # the worker's one connection: the silent ones hold none
            await other.subscribe("1", CITING)
            await subscribed(url, 1)
            late = await connect(url, OTHER)
            await late.send({"type": "connection_init"})
            assert (await late.closed())[0] == 1013  # the worker is full now
            for client in (*silent, other):
                await client.close()

        run(scenario())


async def _closed_soon(client: Raw) -> bool:
    try:
        await client.closed(0.5)
    except (AssertionError, TimeoutError):  # still open
        return False
    return True


def test_silent_sockets_are_dropped_at_their_init_deadline(store, settings):
    """Without the admin token in its handshake, a socket must init within
    the short deadline; with it, within the long one."""
    deadlines = {"ws_anonymous_init_timeout_s": 1, "ws_init_timeout_s": 4}
    with served(store, settings, **deadlines) as (url, _):

        async def scenario() -> None:
            started = time.monotonic()
            anyone = await connect(url)
            trusted = await connect(
                url, additional_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            assert await anyone.closed(5) == (4408, "Connection initialisation timeout")
            assert time.monotonic() - started < 3
            assert not await _closed_soon(trusted)  # at about 1.5 s: still open
            assert (await trusted.closed(6))[0] == 4408
            assert 3.5 < time.monotonic() - started < 8

        run(scenario())


def test_the_admin_is_one_client_whatever_its_address(store, settings):
    with served(store, settings, ws_connections_per_client=1) as (url, app):

        async def scenario() -> None:
            first, second = await connect(url), await connect(url, OTHER)
            await first.init(ADMIN_TOKEN)
            await second.send(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {ADMIN_TOKEN}"}}
            )
            assert (await second.closed())[0] == 1013
            assert app.connections.open == 1
            await first.close()

        run(scenario())
