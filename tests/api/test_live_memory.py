"""What live subscriptions hold, bounded in bytes per client and per worker
(``api.live.allowance``), on both engines, in-process over WebSocket: one
client's heavy subscriptions are refused past its share while another's
still start, identical ones hold one document, what the allowance counts is
what tracemalloc sees (from above), and every way a subscription ends gives
its bytes back. Over Server-Sent Events: tests/api/test_sse.py.

The hostile document is session 13's (f39f0d3): a subscription whose
variable's default lists 1,400 topics, 0.65 MB parsed; 40 of them held 25.8 MB.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from graphql import parse
from starlette.testclient import TestClient
from starlette.testclient import WebSocketTestSession as Socket

from api.app import create_app
from api.bounded import document_size
from api.data.gateway import Gateway
from api.errors import TooManySubscriptionsError
from api.http.identity import client_key, network_key
from api.http.view import GraphQLApp
from api.live.allowance import Allowance
from api.live.feed import SUBSCRIPTION_BYTES, Events, Feed
from bench.hostile import ARTICLE_LEAVES
from core.config import Settings
from core.store import Store
from tests.api.fixtures import ADMIN_TOKEN
from tests.api.test_pipeline_caches import view
from tests.waiting import eventually

MB = 1_000_000
#: A subscribe message's payload.
Payload = dict[str, Any]


def heavy(tag: object) -> Payload:
    """Session 13's document: 1,400 string tokens in a variable's default
    (sent null: a default is checked only when it is used). ``tag`` makes
    it distinct: three characters at most, or it is past the token limit."""
    default = " ".join(f'"t{tag}_{k}"' for k in range(1400))
    query = (
        "subscription S($f: ArticleFilter = {topicsAny: [" + default + "]}) "
        "{ articlePublished(filter: $f) { id title } }"
    )
    return {"query": query, "variables": {"f": None}}


def parsed_size(payload: Payload) -> int:
    return document_size(payload["query"], parse(payload["query"]))


def wide(tag: object) -> Payload:
    """Many fields within the alias and selection limits: every leaf of an
    article, 30 aliases more, and what it reaches: a larger plan than text."""
    leaves = " ".join(ARTICLE_LEAVES)
    aliases = " ".join(f"a{n}: {ARTICLE_LEAVES[n % len(ARTICLE_LEAVES)]}" for n in range(30))
    nested = "provider { name domain } topics { name } related { title webUrl article { title } }"
    query = f"subscription W{tag} {{ articlePublished {{ {leaves} {aliases} {nested} }} }}"
    return {"query": query}


SMALL = {"query": 'subscription { articlePublished(filter: {topic: "Energy"}) { id title } }'}


@pytest.fixture
def app_settings(loaded: Store, api_settings: Settings) -> Settings:
    return dataclasses.replace(
        api_settings,
        subscriptions_per_client_bytes=3 * MB,
        subscriptions_max_bytes=4 * MB,
    )


@pytest.fixture
def served(loaded: Store, app_settings: Settings) -> Iterator[tuple[TestClient, GraphQLApp]]:
    app = create_app(app_settings, loaded)
    with TestClient(app) as client:
        yield client, view(app)


class Connection:
    """A graphql-transport-ws connection over the test client."""

    def __init__(self, stack: ExitStack, client: TestClient, token: str | None = None) -> None:
        self.ws: Socket = stack.enter_context(
            client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"])
        )
        payload = {"authorization": f"Bearer {token}"} if token else {}
        self.ws.send_json({"type": "connection_init", "payload": payload})
        assert self.ws.receive_json()["type"] == "connection_ack"

    def subscribe(self, op_id: str, payload: Payload) -> dict[str, Any] | None:
        """Subscribe; the refusal if there is one (None: it started)."""
        self.ws.send_json({"id": op_id, "type": "subscribe", "payload": payload})
        self.ws.send_json({"type": "ping"})
        message = self.ws.receive_json()
        if message["type"] == "pong":
            return None
        assert self.ws.receive_json()["type"] == "pong"
        assert message["type"] == "error" and message["id"] == op_id, message
        return message

    def complete(self, op_id: str) -> None:
        self.ws.send_json({"id": op_id, "type": "complete"})
        self.ws.send_json({"type": "ping"})
        assert self.ws.receive_json()["type"] == "pong"


def code_and_message(refusal: dict[str, Any]) -> tuple[str, str]:
    error = refusal["payload"][0]
    return error["extensions"]["code"], error["message"]


def until_refused(connection: Connection, query: Any, most: int = 40) -> tuple[int, dict]:
    """Subscribe to distinct documents until one is refused: how many started, and the refusal."""
    for n in range(most):
        refusal = connection.subscribe(str(n), query(n))
        if refusal is not None:
            return n, refusal
    raise AssertionError(f"{most} subscriptions started")


def test_one_client_s_heavy_subscriptions_stop_at_its_share_while_another_subscribes(served):
    client, graphql = served
    feed = graphql.feed
    share = graphql.settings.subscriptions_per_client_bytes
    with ExitStack() as stack:
        hostile = Connection(stack, client)
        started, refusal = until_refused(hostile, heavy)
        assert 1 <= started < 5, (started, refusal)  # 40 by count alone
        code, message = code_and_message(refusal)
        assert code == "TOO_MANY_SUBSCRIPTIONS" and f"at most {share} bytes" in message
        assert feed.count == started and feed.groups == started
        assert share - feed.bytes < parsed_size(heavy(0))  # nearly full
        assert feed.bytes <= share

        other = Connection(stack, client, ADMIN_TOKEN)  # another client
        assert other.subscribe("1", heavy("ad")) is None
        assert other.subscribe("2", SMALL) is None

        hostile.complete("0")  # a client that stops one may start another
        assert hostile.subscribe("again", heavy("ag")) is None
        assert hostile.subscribe("more", heavy("mo")) is not None


def test_identical_subscriptions_hold_one_document(served):
    """40 identical heavy subscriptions: one document, within one client's share."""
    client, graphql = served
    feed = graphql.feed
    with ExitStack() as stack:
        connections = [Connection(stack, client), Connection(stack, client)]
        for n in range(40):
            assert connections[n % 2].subscribe(str(n), heavy("s")) is None, n
        assert feed.count == 40 and feed.groups == 1
        each = SUBSCRIPTION_BYTES + 2 * len(heavy("s")["query"])
        assert feed.bytes < 2 * parsed_size(heavy("s")) + 40 * each


def test_the_worker_s_subscriptions_are_bounded_whoever_holds_them(served):
    client, graphql = served
    feed = graphql.feed
    with ExitStack() as stack:
        # An anonymous client and the admin: two shares of 3 MB, in a worker's 4 MB.
        first, second = Connection(stack, client), Connection(stack, client, ADMIN_TOKEN)
        until_refused(first, heavy)
        _, refusal = until_refused(second, lambda n: heavy(f"a{n}"))
        code, message = code_and_message(refusal)
        assert code == "TOO_MANY_SUBSCRIPTIONS"
        assert "this server's subscriptions hold as much memory as they may" in message
        assert feed.bytes <= graphql.settings.subscriptions_max_bytes


def held_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.parametrize("document", [heavy, wide], ids=["long-default", "wide-selection"])
def test_what_subscriptions_hold_is_within_what_they_are_charged(loaded, api_settings, document):
    """Measured with tracemalloc: what the worker holds once subscriptions
    have started (their documents, plans, queues, operations) is no more
    than the allowance counts for them. Every share large enough for all."""
    settings = dataclasses.replace(
        api_settings,
        subscriptions_per_client=100,
        subscriptions_per_client_bytes=10**9,
        subscriptions_max_bytes=10**9,
    )
    app = create_app(settings, loaded)
    feed = view(app).feed
    with TestClient(app) as client, ExitStack() as stack:
        warm = Connection(stack, client)
        assert warm.subscribe("warm", SMALL) is None  # the poll's task, the first of everything
        charged = feed.bytes
        tracemalloc.start()
        try:
            before = held_now()
            connections = [Connection(stack, client), Connection(stack, client)]
            for n in range(20):
                assert connections[n % 2].subscribe(str(n), document(n)) is None
                assert connections[n % 2].subscribe(f"same{n}", document("same")) is None
            held = held_now() - before
        finally:
            tracemalloc.stop()
        charged = feed.bytes - charged
        assert feed.groups == 1 + 21
        # Documents, plans, operations: from above, never below (with a
        # megabyte for what the connections and the libraries keep once).
        assert held <= charged + MB, f"{held / MB:.1f} MB held, {charged / MB:.1f} MB charged"
        # And not far above: an allowance of bytes, not a guess.
        assert charged <= 2.5 * held, f"{held / MB:.1f} MB held, {charged / MB:.1f} MB charged"


def test_every_end_gives_the_bytes_back(served):
    """Completed by the client, its connection closed: nothing charged
    stays behind (dropped, and the server stopping: below)."""
    client, graphql = served
    feed = graphql.feed
    with ExitStack() as stack:
        connection = Connection(stack, client)
        assert connection.subscribe("1", heavy(1)) is None
        assert connection.subscribe("2", heavy(2)) is None
        connection.complete("1")
        connection.complete("2")
        assert feed.bytes == 0 and feed.count == 0
    with ExitStack() as stack:
        assert Connection(stack, client).subscribe("1", heavy(1)) is None
        assert feed.bytes > 0
    eventually_zero(feed)  # the socket closed


def eventually_zero(feed: Feed) -> None:
    eventually(lambda: feed.bytes == 0 and feed.count == 0, 10, "the bytes given back")


# -- the allowance and the feed, without a transport ---------------------------


def test_a_group_is_charged_once_to_the_worker_and_once_to_each_client_in_it():
    allowance = Allowance(max_bytes=1000, per_client=600)
    allowance.admit("a", "g", 400, True, 10)
    allowance.admit("a", "g", 400, False, 10)  # its client holds the group already
    allowance.admit("b", "g", 400, False, 10)  # another client: charged the group too
    assert (allowance.held, allowance.held_by("a"), allowance.held_by("b")) == (430, 420, 410)
    with pytest.raises(TooManySubscriptionsError) as refused:
        allowance.admit("a", "h", 400, True, 10)  # over a's share
    assert not refused.value.worker
    allowance.admit("c", "h", 500, True, 10)
    with pytest.raises(TooManySubscriptionsError) as full:
        allowance.admit("b", "i", 100, True, 10)  # within b's share, over the worker's
    assert full.value.worker
    assert (allowance.held, allowance.held_by("b")) == (940, 410)  # refusals charge nothing
    allowance.release("a", "g", 400, False, 10)
    allowance.release("a", "g", 400, False, 10)
    assert allowance.held_by("a") == 0 and allowance.held == 920
    allowance.release("b", "g", 400, True, 10)
    allowance.release("c", "h", 500, True, 10)
    assert allowance.held == 0 and allowance.held_by("b") == allowance.held_by("c") == 0


def measuring(measured: list[str]) -> Callable[[str], Callable[[], int]]:
    """A group's size of 100 bytes, whose measuring is noted in ``measured``."""

    def size(name: str) -> Callable[[], int]:
        return lambda: measured.append(name) or 100

    return size


def test_the_counts_are_checked_with_the_bytes_and_before_a_group_is_measured():
    """Every subscription limit is the allowance's: a client's count (over
    all its transports: the allowance knows none) and the worker's, refused
    before the new group's bytes are measured (its plan made), and given
    back as the bytes are."""
    measured: list[str] = []
    size = measuring(measured)
    allowance = Allowance(10**6, 10**6, most=3, per_client_count=2)
    allowance.admit("a", "g", size("g"), True, 10)
    allowance.admit("a", "h", size("h"), True, 10)
    with pytest.raises(TooManySubscriptionsError) as mine:
        allowance.admit("a", "i", size("i"), True, 10)
    assert not mine.value.worker and "at most 2 subscriptions" in str(mine.value)
    allowance.admit("b", "j", size("j"), True, 10)
    with pytest.raises(TooManySubscriptionsError) as full:
        allowance.admit("c", "k", size("k"), True, 10)
    assert full.value.worker and "(3)" in str(full.value)
    assert measured == ["g", "h", "j"]  # the refused were never measured
    assert allowance.subscriptions == 3 and allowance.held == 3 * 110
    allowance.release("a", "g", 100, True, 10)
    allowance.admit("a", "i", size("i"), True, 10)  # room again, for a and the worker
    assert allowance.subscriptions == 3 and measured[-1] == "i"


#: A client's network as the app has it.
NETWORK = network_key


def _addr(peer: str) -> str:
    return client_key(peer, [], [])


def test_a_network_s_clients_share_its_count():
    """Past its network's count a client is refused, however little it
    holds itself, before the group is measured; one from another network
    is not; a subscription that ends gives its network the room back."""
    measured: list[str] = []
    size = measuring(measured)
    allowance = Allowance(10**6, 10**6, per_client_count=3, per_network_count=4, network=NETWORK)
    a, b = _addr("2001:db8:1:1::1"), _addr("2001:db8:1:2::1")
    for n in range(3):
        allowance.admit(a, f"a{n}", size(f"a{n}"), True, 10)
    allowance.admit(b, "b0", size("b0"), True, 10)
    with pytest.raises(TooManySubscriptionsError) as refused:
        allowance.admit(b, "b1", size("b1"), True, 10)  # b holds 1 of its 3
    assert not refused.value.worker
    assert "your network (net:2001:db8:1::/48) may hold at most 4" in str(refused.value)
    allowance.admit(_addr("2001:db8:2:1::1"), "c", size("c"), True, 10)  # another /48
    assert "b1" not in measured and allowance.subscriptions == 5
    allowance.release(a, "a0", 100, True, 10)
    allowance.admit(b, "b1", size("b1"), True, 10)  # room again in the network


def test_a_network_s_clients_share_its_bytes_each_group_once():
    allowance = Allowance(10**6, 700, per_network=1000, network=NETWORK)
    a, b, c = (_addr(f"198.51.100.{n}") for n in (1, 2, 3))
    allowance.admit(a, "g", 400, True, 10)
    allowance.admit(b, "g", 400, False, 10)  # the network holds g already: charged 10
    assert (allowance.held_by(b), allowance.held_by_network(a)) == (410, 420)
    with pytest.raises(TooManySubscriptionsError) as refused:
        allowance.admit(c, "h", 600, True, 10)  # within c's 700, past the network's 1000
    assert not refused.value.worker and "your network (net:198.51.100.0/24)" in str(refused.value)
    assert (allowance.held_by(c), allowance.held_by_network(c), allowance.held) == (0, 420, 420)
    allowance.admit(_addr("198.51.101.3"), "h", 600, True, 10)  # the next /24: its own share
    allowance.release(a, "g", 400, False, 10)
    assert allowance.held_by_network(b) == 410  # b still holds g
    allowance.release(b, "g", 400, False, 10)
    assert allowance.held_by_network(b) == 0
    allowance.admit(c, "h", 600, False, 10)  # room again


def test_keys_the_admin_and_non_ip_clients_are_their_own_network():
    allowance = Allowance(10**6, 10**6, per_client_count=2, per_network_count=1, network=NETWORK)
    for client in ("admin", "key:k1", "key:k2", "local", "addr:testclient"):
        for n in range(2):  # their own count, not a network's of 1
            allowance.admit(client, (client, n), 100, True, 10)
        assert allowance.held_by_network(client) == allowance.held_by(client) == 220
    mapped, plain = _addr("::ffff:192.0.2.1"), _addr("192.0.2.200")
    allowance.admit(mapped, "m", 100, True, 10)
    with pytest.raises(TooManySubscriptionsError):  # an IPv6-mapped IPv4 is its /24's
        allowance.admit(plain, "p", 100, True, 10)
    for client in ("admin", "key:k1", "key:k2", "local", "addr:testclient"):
        for n in range(2):
            allowance.release(client, (client, n), 100, True, 10)
    allowance.release(mapped, "m", 100, True, 10)
    assert (allowance.held, allowance.subscriptions) == (0, 0)
    assert allowance.held_by_network(mapped) == 0


class Owner:
    def __init__(self) -> None:
        self.writing = asyncio.Lock()
        self.dropped = False

    def overflowed(self) -> None:
        self.dropped = True


class Sized:
    def __init__(self, key: str, size: int) -> None:
        self.key, self.bytes, self.own = key, size, 100

    def size(self) -> int:
        return self.bytes

    async def answer(self, event: Any) -> Any:
        return event


def test_dropped_left_unclosed_or_stopped_with_the_server_a_subscription_gives_its_bytes_back():
    async def scenario() -> None:
        feed = Feed(Gateway(None, 5000), 100, 2, 10, 5000, 10**6, 10**6)  # type: ignore[arg-type]
        slow, gone = Owner(), Owner()
        feed.join(lambda doc: True, slow, Sized("k", 5000), "slow")
        feed.join(lambda doc: True, gone, Sized("j", 5000), "gone")
        events = Events(feed.join(lambda doc: True, gone, Sized("j", 5000), "gone"))
        assert feed.bytes == 2 * 5000 + 3 * (SUBSCRIPTION_BYTES + 100)
        feed._fan_out([{"_id": str(n)} for n in range(3)])  # past a queue of 2
        assert slow.dropped and gone.dropped  # none of them read
        assert feed.bytes == 0 and feed.count == 0
        await events.aclose()  # closed after it was dropped: nothing twice
        assert feed.bytes == 0
        # An operation cancelled before it began reading: dropped unclosed.
        events = Events(feed.join(lambda doc: True, gone, Sized("j", 5000), "gone"))
        del events
        gc.collect()
        assert feed.bytes == 0 and feed.allowance.held_by("gone") == 0
        feed.join(lambda doc: True, gone, Sized("j", 5000), "gone")
        assert feed.bytes > 0
        await feed.close()  # the server stops
        assert feed.bytes == 0 and feed.allowance.held_by("gone") == 0

    asyncio.run(scenario())
