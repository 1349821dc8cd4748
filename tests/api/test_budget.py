"""Each client's budget (api/operation/throttle.py) and who a client is
(api/http/identity.py), as an attacker would try them: one client over its
budget is refused, by every way in, while others are not; it cannot run more
at once than its tier allows; a heavy query cannot make cheap ones wait; a
client cannot become another by what it writes in X-Forwarded-For."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from graphql import GraphQLError
from starlette.testclient import TestClient
from strawberry.types.graphql import OperationType

from api.app import create_app
from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from api.errors import OverloadedError, RateLimitedError
from api.http.identity import client_key, network_key, trusted_networks
from api.operation.cost import PART_OBJECTS, Cost
from api.operation.request import Operation, Refused, Request
from api.operation.throttle import (
    OPERATION_POINTS,
    Admit,
    Limits,
    MemoryBuckets,
    Policy,
    Throttle,
    points,
    policies,
)
from api.schema.context import Context, Identity
from core.config import ConfigError, Settings
from core.store import Store
from tests.api.slow import SLOW, SlowStore, request, serving
from tests.api.test_cost import readme_queries
from tests.api.test_subscriptions import load
from tests.api.wsclient import Raw, subscribed
from tests.articles import web_url, write_article
from tests.test_readme import README
from tests.waiting import eventually

FRONT = "{ articles(first: 5) { totalCount nodes { id title } } }"
DEFERRED = "{ articles(first: 2) { nodes { id ... @defer { title } } } }"
SUBSCRIPTION = "subscription { articlePublished { id title } }"
#: Enough for a few front pages, refilled slowly: a budget a test can spend.
SMALL = {"anonymous_burst": 400, "anonymous_points_per_s": 1}


def small_budget(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **{**SMALL, **changes})


def app_for(store: Store, settings: Settings) -> Any:
    return create_app(settings, store)


def post(client: TestClient, query: str, headers: dict[str, str] | None = None) -> Any:
    return client.post("/graphql", json={"query": query}, headers=headers or {})


def code(response: Any) -> str | None:
    errors = response.json().get("errors") or [{}]
    return (errors[0].get("extensions") or {}).get("code")


def spend(client: TestClient, headers: dict[str, str] | None = None, most: int = 200) -> Any:
    """Front pages until one is refused: that refusal."""
    for _ in range(most):
        response = post(client, FRONT, headers)
        if response.status_code != 200:
            return response
    raise AssertionError(f"{most} front pages and no refusal")


# -- the bucket ---------------------------------------------------------------


POLICY = Policy(rate=10, burst=100, concurrency=2)


def bucket() -> MemoryBuckets:
    return MemoryBuckets({"anonymous": POLICY, "key": POLICY, "admin": POLICY})


def test_a_bucket_gives_all_the_points_asked_or_none_and_refills_over_time():
    buckets, a, b = bucket(), Identity("addr:a"), Identity("addr:b")
    assert buckets.take(a, 60, now=0).available == 40
    refused = buckets.take(a, 60, now=0)
    assert not refused.allowed and refused.available == 40  # nothing taken
    assert refused.retry_after_s == pytest.approx(2.0)  # 20 missing at 10 a second
    assert buckets.take(b, 100, now=0).allowed  # another client's bucket is its own
    assert buckets.take(a, 60, now=2).allowed  # refilled meanwhile
    assert buckets.take(a, 0, now=1000).available == 100  # never past a full bucket
    assert buckets.take(a, -500, now=1000).available == 100  # nor given back past it
    assert buckets.take(a, 30, now=1000).available == 70
    assert buckets.take(a, -20, now=1000).available == 90


def test_a_bucket_store_keeps_a_bounded_number_of_buckets():
    buckets = MemoryBuckets({"anonymous": POLICY}, max_buckets=100)
    for n in range(1000):
        buckets.take(Identity(f"addr:{n}"), 50, now=0)
    assert len(buckets) == 100
    # One forgotten is a full one: the least recently used, so a client being
    # throttled now keeps its state.
    assert buckets.take(Identity("addr:999"), 60, now=0).allowed is False


def test_points_count_objects_store_calls_and_the_operation_itself():
    assert points(0, 0) == OPERATION_POINTS
    assert points(7, 1) == OPERATION_POINTS + 7 + 10


# -- the defaults ----------------------------------------------------------------


def test_the_readmes_tiers_are_the_defaults_and_the_costliest_query_fits_a_full_bucket():
    rows = re.findall(
        r"^  \| `(\w+)` \(`NEWSGRAPH_\w+_\*`\) \| `(\d+)` a second \| `(\d+)` \| `(\d+)` \|$",
        README,
        re.M,
    )
    defaults = policies(Settings())
    assert {tier: (float(r), int(b), int(c)) for tier, r, b, c in rows} == {
        tier: (p.rate, p.burst, p.concurrency) for tier, p in defaults.items()
    }
    settings = Settings()
    costliest = points(settings.max_query_objects, settings.max_query_store_calls)
    assert all(policy.burst >= costliest for policy in defaults.values())


def test_every_readme_query_is_well_inside_an_anonymous_clients_budget(client: TestClient):
    settings, paid = Settings(), 0
    for label, query, _, _ in readme_queries():
        body = client.post("/graphql", json={"query": query}).json()
        assert "errors" not in body, (label, body["errors"])
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] * 3 <= settings.anonymous_burst, label
        paid += cost["actualQueryCost"]
    assert paid <= settings.anonymous_points_per_s  # all of them: under a second's refill


# -- steps, on operations held open -------------------------------------------


def operation(
    identity: Identity, cost: Cost | None = None, kind: OperationType = OperationType.QUERY
) -> Operation:
    op = Operation(Request("{ x }", context=Context(None, identity=identity)))  # type: ignore[arg-type]
    op.cost, op.kind = cost, kind
    return op


def limits(**policy: Any) -> Limits:
    tier = Policy(**{"rate": 1000.0, "burst": 100_000, "concurrency": 2, **policy})
    tiers = {"anonymous": tier, "key": tier, "admin": tier}
    return Limits(bucket_of(tier), tiers, 25_000, 1, clock=lambda: 0.0)  # time stands still


def bucket_of(tier: Policy) -> MemoryBuckets:
    return MemoryBuckets({"anonymous": tier, "key": tier, "admin": tier})


def refusal(step: Any, op: Operation) -> Exception:
    with pytest.raises(Refused) as refused:
        step(op)
    error: GraphQLError = refused.value.errors[0]
    assert error.original_error is not None
    return error.original_error


def test_a_client_runs_at_most_its_concurrency_at_once_and_others_are_not_held():
    shared = limits(concurrency=2)
    admit, a, b = Admit(shared), Identity("addr:a"), Identity("addr:b")
    held = [operation(a), operation(a)]
    for op in held:
        admit(op)
    third = operation(a)
    assert isinstance(refusal(admit, third), RateLimitedError)
    third.close()
    admit(operation(b))  # someone else is not held behind them
    held[0].close()
    admit(operation(a))  # a slot let go is free again
    assert shared.running.running(a) == 2


def test_heavy_operations_share_a_small_pool_and_cheap_ones_never_wait_for_it():
    shared = limits()
    throttle = Throttle(shared)
    heavy = Cost(objects=30_000, store_calls=2)
    first = operation(Identity("addr:a"), heavy)
    throttle(first)
    second = operation(Identity("addr:b"), heavy)
    assert isinstance(refusal(throttle, second), OverloadedError)  # shed, not queued
    throttle(operation(Identity("addr:b"), Cost(objects=20, store_calls=1)))
    first.close()
    throttle(operation(Identity("addr:b"), heavy))


def test_a_price_over_the_tiers_whole_bucket_is_too_costly_not_rate_limited():
    throttle = Throttle(limits(burst=1000))
    error = refusal(throttle, operation(Identity("addr:a"), Cost(objects=5000, store_calls=1)))
    assert "may spend at once (1,000)" in str(error)
    assert type(error).__name__ == "QueryTooCostlyError"


def test_a_subscription_starts_for_its_admission_and_pays_per_answer():
    shared = limits()
    op = operation(Identity("addr:a"), Cost(objects=500, store_calls=0), OperationType.SUBSCRIPTION)
    Admit(shared)(op)
    Throttle(shared)(op)
    assert shared.take(Identity("addr:a"), 0).available == 100_000 - OPERATION_POINTS


# -- who the client is ---------------------------------------------------------


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy():
    proxies = trusted_networks("10.0.0.0/8, 192.0.2.7")
    # From a client directly: the header is the client's own writing.
    assert client_key("203.0.113.5", ["198.51.100.1"], proxies) == "addr:203.0.113.5"
    # From a proxy: the address it saw, the rightmost that is not a proxy.
    assert client_key("10.1.2.3", ["198.51.100.1"], proxies) == "addr:198.51.100.1"
    assert (
        client_key("192.0.2.7", ["6.6.6.6, 198.51.100.1, 10.9.9.9"], proxies) == "addr:198.51.100.1"
    )  # 6.6.6.6 is what the client claimed: never believed
    assert client_key("10.1.2.3", ["198.51.100.1", "10.2.2.2"], proxies) == "addr:198.51.100.1"
    assert client_key("10.1.2.3", ["garbage, 10.2.2.2"], proxies) == "addr:10.2.2.2"
    assert client_key("10.1.2.3", [], proxies) == "addr:10.1.2.3"
    assert client_key("10.1.2.3", ["[2001:db8::1]:443"], proxies) == "addr:2001:db8::/64"


def test_an_ipv6_client_is_its_64_network_and_a_mapped_ipv4_its_address():
    assert client_key("2001:db8:1:2::5", [], []) == client_key("2001:db8:1:2:ffff::9", [], [])
    assert client_key("2001:db8:1:2::5", [], []) != client_key("2001:db8:1:3::5", [], [])
    assert client_key("::ffff:192.0.2.1", [], []) == "addr:192.0.2.1"
    assert client_key("testclient", [], []) == "addr:testclient"


def test_an_address_s_network_is_its_ipv6_48_or_ipv4_24_and_anyone_else_is_their_own():
    def network(peer: str) -> str:
        return network_key(client_key(peer, [], []))

    assert network("2001:db8:1:2::5") == network("2001:db8:1:ffff::9") == "net:2001:db8:1::/48"
    assert network("2001:db8:1:2::5") != network("2001:db8:2:2::5")
    assert network("198.51.100.7") == network("::ffff:198.51.100.200") == "net:198.51.100.0/24"
    assert network("198.51.100.7") != network("198.51.101.7")
    odd = [
        "admin",
        "local",
        "key:k1",
        "addr:testclient",
        "addr:unknown",
        "addr:",
        "addr:10.0.0.0/8",
    ]
    for key in [*odd, "addr:" + "9" * 10_000, "addr:1.2.3.4/33", "net:198.51.100.0/24"]:
        assert network_key(key) == key  # never raises: a key not an address's is its own


def test_a_trusted_proxy_that_is_not_an_address_stops_the_server_at_start():
    with pytest.raises(ConfigError, match=r"NEWSGRAPH_TRUSTED_PROXIES.*'proxy\.local'"):
        trusted_networks("10.0.0.1, proxy.local")


# -- over HTTP -------------------------------------------------------------------


def test_a_client_over_its_budget_is_refused_with_429_while_others_are_not(
    loaded: Store, api_settings: Settings
) -> None:
    app = app_for(loaded, small_budget(api_settings))
    with TestClient(app, client=("198.51.100.1", 1)) as greedy:
        ok = post(greedy, FRONT)
        assert ok.status_code == 200
        status = ok.json()["extensions"]["cost"]["throttleStatus"]
        assert status["maximumAvailable"] == 400 and status["restoreRate"] == 1
        assert ok.headers["ratelimit-policy"] == '"anonymous";q=400;w=400;qu="points"'
        assert ok.headers["ratelimit"].startswith('"anonymous";r=')
        refused = spend(greedy)
        assert refused.status_code == 429 and code(refused) == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["cache-control"] == "no-store"
        assert refused.json()["data"] is None
        left = int(refused.headers["ratelimit"].split("r=")[1].split(";")[0])
        assert left < ok.json()["extensions"]["cost"]["requestedQueryCost"]
    with TestClient(app, client=("198.51.100.2", 1)) as other:
        assert post(other, FRONT).status_code == 200


def test_an_over_budget_client_is_refused_by_every_way_in(
    loaded: Store, api_settings: Settings
) -> None:
    app = app_for(loaded, small_budget(api_settings))
    with TestClient(app, client=("198.51.100.3", 1)) as client:
        query = "{ topics { totalCount } }"
        digest = hashlib.sha256(query.encode()).hexdigest()
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        assert client.post("/graphql", json={"query": query, "extensions": extensions}).is_success
        spend(client)
        by_get = client.get("/graphql", params={"query": FRONT})
        by_hash = client.get("/graphql", params={"extensions": json.dumps(extensions)})
        deferred = client.post(
            "/graphql", json={"query": DEFERRED}, headers={"accept": "multipart/mixed"}
        )
        invalid = post(client, "{ nope }")
        for response in (by_get, by_hash, deferred, invalid):
            assert response.status_code == 429, response.text
            assert code(response) == "RATE_LIMITED"


def test_an_honest_query_pays_what_its_answer_took(loaded: Store, api_settings: Settings) -> None:
    # Refilled by nothing, so every point is accounted for.
    settings = small_budget(api_settings, anonymous_points_per_s=10**-9)
    page = "{ articles(first: 50) { nodes { id } } }"  # more asked than there are
    with TestClient(app_for(loaded, settings), client=("198.51.100.4", 1)) as client:
        first = post(client, page).json()["extensions"]["cost"]
        again = post(client, page).json()["extensions"]["cost"]
        assert first["requestedQueryCost"] == points(51, 1)
        assert first["actualQueryCost"] == points(first["actual"]["objects"], 1) < points(51, 1)
        spent = first["throttleStatus"]["currentlyAvailable"]
        assert spent == settings.anonymous_burst - first["actualQueryCost"]
        assert again["throttleStatus"]["currentlyAvailable"] == spent - again["actualQueryCost"]
        # A refused document pays for being read.
        before = again["throttleStatus"]["currentlyAvailable"]
        invalid = post(client, "{ nope }").json()["extensions"]["cost"]
        assert invalid["throttleStatus"]["currentlyAvailable"] == before - OPERATION_POINTS


def test_forwarded_for_from_an_untrusted_address_cannot_make_a_client_new(
    loaded: Store, api_settings: Settings
) -> None:
    untrusted = app_for(loaded, small_budget(api_settings))
    with TestClient(untrusted, client=("198.51.100.5", 1)) as client:
        spend(client, {"x-forwarded-for": "203.0.113.1"})
        again = post(client, FRONT, {"x-forwarded-for": "203.0.113.2"})
        assert again.status_code == 429, "a new X-Forwarded-For made a new client"
    trusting = app_for(loaded, small_budget(api_settings, trusted_proxies="198.51.100.5"))
    with TestClient(trusting, client=("198.51.100.5", 1)) as proxy:
        spend(proxy, {"x-forwarded-for": "203.0.113.1"})
        assert post(proxy, FRONT, {"x-forwarded-for": "203.0.113.2"}).status_code == 200
        # What a client writes to the left of what the proxy saw changes nothing.
        spoofed = post(proxy, FRONT, {"x-forwarded-for": "203.0.113.9, 203.0.113.1"})
        assert spoofed.status_code == 429


def test_cheap_requests_on_many_connections_from_one_client_are_held_to_its_concurrency(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowStore(monkeypatch, seconds=1.5)
    settings = dataclasses.replace(
        api_settings, anonymous_concurrency=3, trusted_proxies="127.0.0.1", store_queue_ms=5000
    )

    def as_client(url: str, address: str) -> httpx.Response:
        return httpx.post(
            f"{url}/graphql",
            json=request(SLOW),
            headers={"x-forwarded-for": address},
            timeout=10,
        )

    with serving(create_app(settings, loaded)) as url, ThreadPoolExecutor(4) as pool:
        held = [pool.submit(as_client, url, "203.0.113.7") for _ in range(3)]
        eventually(lambda: slow.calls >= 3, 5, "three slow requests")
        refused = as_client(url, "203.0.113.7")
        assert refused.status_code == 429 and code(refused) == "RATE_LIMITED"
        assert refused.elapsed.total_seconds() < 1  # refused at once, not queued
        other = pool.submit(as_client, url, "203.0.113.8")
        assert all(f.result().status_code == 200 for f in held)
        assert other.result().status_code == 200
        # Every slot was let go with its answer.
        assert as_client(url, "203.0.113.7").status_code == 200


# -- over WebSocket ------------------------------------------------------------------


def test_a_subscription_is_refused_when_its_clients_budget_is_spent(
    loaded: Store, api_settings: Settings
) -> None:
    settings = small_budget(api_settings, subscription_poll_ms=100)

    async def scenario(url: str) -> None:
        for _ in range(200):
            response = await asyncio.to_thread(
                httpx.post, f"{url}/graphql", json={"query": FRONT}, timeout=10
            )
            if response.status_code == 429:
                break
        else:
            raise AssertionError("the budget was never spent")
        ws = await Raw.connect(url)
        try:
            await ws.init()
            await ws.subscribe("1", SUBSCRIPTION)
            message = await ws.receive()
            assert message["type"] == "error", message
            assert message["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        finally:
            await ws.close()

    with serving(create_app(settings, loaded)) as url:
        asyncio.run(scenario(url))


def test_each_article_a_subscription_sends_draws_from_its_clients_budget(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    settings = small_budget(settings, anonymous_burst=2000, subscription_poll_ms=100)
    arrived = "subscription { articlePublished { id title related { title } } }"

    async def scenario(url: str) -> None:
        ws = await Raw.connect(url)
        try:
            await ws.init()
            await ws.subscribe("1", arrived)
            await subscribed(url, 1)
            write_article(tmp_path, "a.md", webUrl=web_url("a"))
            await load(store, settings, tmp_path)
            first = await ws.receive()
            assert first["type"] == "next" and first["payload"]["data"]["articlePublished"]
            cost = first["payload"]["extensions"]["cost"]
            assert cost["requestedQueryCost"] > cost["actualQueryCost"]
            left = cost["throttleStatus"]["currentlyAvailable"]
            assert left < 2000 - OPERATION_POINTS - cost["actualQueryCost"] + 5  # paid for
            # The same client (its address) spends the rest over HTTP.
            while (await asyncio.to_thread(post_to, url, FRONT)).status_code != 429:
                pass
            write_article(tmp_path, "b.md", webUrl=web_url("b"))
            await load(store, settings, tmp_path)
            refused = await ws.receive()
            assert refused["type"] == "next", refused  # in the article's place
            assert refused["payload"]["data"] is None
            assert refused["payload"]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        finally:
            await ws.close()

    with serving(create_app(settings, store)) as url:
        asyncio.run(asyncio.wait_for(scenario(url), 60))


def post_to(url: str, query: str) -> httpx.Response:
    return httpx.post(f"{url}/graphql", json={"query": query}, timeout=10)


def test_multipart_answers_carry_the_budget_headers_and_let_the_slot_go(
    loaded: Store, api_settings: Settings
) -> None:
    app = app_for(loaded, dataclasses.replace(api_settings, anonymous_concurrency=1))
    with TestClient(app, client=("198.51.100.6", 1)) as client:
        for _ in range(3):  # one at a time, so each one's slot was given back
            response = client.post(
                "/graphql", json={"query": DEFERRED}, headers={"accept": "multipart/mixed"}
            )
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("multipart/mixed")
            assert response.headers["ratelimit-policy"].startswith('"anonymous"')
        assert post(client, FRONT).status_code == 200


def test_an_answer_in_parts_pays_for_the_parts_it_made(
    loaded: Store, api_settings: Settings
) -> None:
    settings = small_budget(
        api_settings, anonymous_burst=60_000, anonymous_points_per_s=10**-9
    )  # nothing refills: every point is accounted for
    whole = "{ articles(first: 50) { nodes { id title provider { name } } } }"
    deferred = "{ articles(first: 50) { nodes { id ... @defer { title provider { name } } } } }"
    with TestClient(app_for(loaded, settings), client=("198.51.100.7", 1)) as client:
        parts = client.post(
            "/graphql", json={"query": deferred}, headers={"accept": "multipart/mixed"}
        )
        assert parts.status_code == 200 and parts.text.count("incremental") >= 1
        left = int(parts.headers["ratelimit"].split("r=")[1].split(";")[0])
        # The worst case, drawn before it ran: the answer, and each deferred
        # part (one fragment on each of the 50 articles).
        drawn = points(101 + PART_OBJECTS * 50, 1)
        assert left == 60_000 - drawn
        response = post(client, whole).json()
        answer = response["extensions"]["cost"]
        articles = len(response["data"]["articles"]["nodes"])
        after_parts = answer["throttleStatus"]["currentlyAvailable"] + answer["actualQueryCost"]
        # Once its last part was made, it had paid what the same query does
        # whole and, on top, each part it made as the price counts parts
        # (PART_OBJECTS an article: pending, incremental, its data, completed).
        # Paying the data alone let 119 one-field fragments on 100 articles,
        # priced 47,701 objects and made as 23,900 part entries, pay 121
        # points (tests/api/test_attacks_s13.py). Never more than was drawn.
        paid = 60_000 - after_parts
        assert paid == answer["actualQueryCost"] + PART_OBJECTS * articles
        assert answer["actualQueryCost"] < paid <= drawn


def test_a_shared_answer_carries_no_clients_budget_and_the_budget_still_holds(
    loaded: Store, api_settings: Settings
) -> None:
    """An anonymous GET answer a CDN may keep and hand to anyone: two clients
    behind the proxy get the same bytes, with neither's budget in them (no
    ``RateLimit`` headers, no ``throttleStatus``); each still pays, and the
    one over budget is refused with a 429 no cache keeps."""
    settings = small_budget(api_settings, trusted_proxies="127.0.0.1")
    with TestClient(app_for(loaded, settings), client=("127.0.0.1", 1)) as proxy:
        one, two = ({"x-forwarded-for": f"203.0.113.{n}"} for n in (31, 32))
        first = proxy.get("/graphql", params={"query": FRONT}, headers=one)
        # The other client asks twice: its bucket is lower than the first's.
        proxy.get("/graphql", params={"query": FRONT}, headers=two)
        second = proxy.get("/graphql", params={"query": FRONT}, headers=two)
        for answer in (first, second):
            assert answer.status_code == 200
            assert answer.headers["cache-control"].startswith("public")
            assert "ratelimit" not in answer.headers
            assert "ratelimit-policy" not in answer.headers
            cost = answer.json()["extensions"]["cost"]
            assert "throttleStatus" not in cost and cost["requestedQueryCost"] > 0
        assert first.content == second.content
        assert first.headers["etag"] == second.headers["etag"]
        etag = {"if-none-match": first.headers["etag"]}
        again = proxy.get("/graphql", params={"query": FRONT}, headers={**one, **etag})
        assert again.status_code == 304
        # The same client's POST, for itself alone, reports what it spent.
        own = proxy.post("/graphql", json={"query": FRONT}, headers=two)
        assert "private" in own.headers.get("cache-control", "private")
        assert own.headers["ratelimit"].startswith('"anonymous";r=')
        assert own.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 400
        # Shared answers still pay: the client that spends its budget by GET is refused.
        for _ in range(200):
            refused = proxy.get("/graphql", params={"query": FRONT}, headers=two)
            if refused.status_code != 200:
                break
        assert refused.status_code == 429 and code(refused) == "RATE_LIMITED"
        assert refused.headers["cache-control"] == "no-store"
        assert "public" not in refused.headers["cache-control"]
        assert refused.headers["ratelimit"].startswith('"anonymous";r=')
        # ...while the other is not, and its answer is still the shared one.
        after = proxy.get("/graphql", params={"query": FRONT}, headers=one)
        assert after.status_code == 200 and after.headers["etag"] == first.headers["etag"]


class CountingSlots(StoreSlots):
    """Store slots that count the calls of cheap and heavy operations, and
    the most of them that ran at once."""

    def __init__(self) -> None:
        super().__init__(16, 1000)
        self.lock = threading.Lock()
        self.now = 0
        self.calls = {False: 0, True: 0}
        self.most = {False: 0, True: 0}

    async def run(self, call: Any, heavy: bool = False) -> Any:
        def counted() -> Any:
            with self.lock:
                self.now += 1
                self.most[heavy] = max(self.most[heavy], self.now)
                self.calls[heavy] += 1
            try:
                time.sleep(0.005)  # long enough for calls started together to overlap
                return call()
            finally:
                with self.lock:
                    self.now -= 1

        return await super().run(counted, heavy)


class ThreadedGateway(Gateway):
    """Every call through the slots: an embedded store's cheap reads would
    otherwise be answered on the event loop, one by one, without them (the
    heavy ones never are: tests/api/test_on_loop.py)."""

    reads_on_loop = False


def test_a_heavy_querys_store_calls_run_one_at_a_time_and_cheap_ones_not(
    loaded: Store, api_settings: Settings
) -> None:
    """A query priced at NEWSGRAPH_HEAVY_QUERY_POINTS or more asks the store
    one call at a time (the heavy lane, api.data.slots), its answer the same;
    a cheap one is not held to it. Ordinary execution, which asks for each
    topic's page at once (a plan asks for them in turn anyway)."""
    many = "{ topics(first: 20) { nodes { name articles(first: 3) { nodes { id } } } } }"
    answers = {}
    for heavy_points in (50_000, 100):  # the same query, cheap then heavy
        slots = CountingSlots()
        settings = dataclasses.replace(
            api_settings, heavy_query_points=heavy_points, compiled=False
        )
        gateway = ThreadedGateway(loaded, settings.store_op_timeout_ms, slots)
        with TestClient(create_app(settings, gateway=gateway)) as client:
            answer = post(client, many)
            assert answer.status_code == 200, answer.text
            answers[heavy_points] = answer.json()["data"]
        heavy = heavy_points == 100
        assert slots.calls[heavy] > 1 and slots.calls[not heavy] == 0, slots.calls
        # Cheap, its pages are asked for at once; heavy, one after another.
        assert (slots.most[heavy] == 1) if heavy else (slots.most[heavy] > 1), slots.most
    assert answers[100] == answers[50_000]
