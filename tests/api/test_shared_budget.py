"""Each client's budget kept in the store (``NEWSGRAPH_BUDGETS=store``,
api.operation.throttle.StoreBuckets): the budget tests over HTTP hold there
too, and a client's spending is counted once whichever app answers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.data.gateway import Gateway
from api.operation.throttle import OVERFLOW_S, Policy, StoreBuckets
from api.schema.context import Identity
from core.config import Settings
from core.store import Store
from tests.api.test_budget import (  # noqa: F401  (run again here, on the store's buckets)
    FRONT,
    code,
    post,
    small_budget,
    spend,
    test_a_client_over_its_budget_is_refused_with_429_while_others_are_not,
    test_a_subscription_is_refused_when_its_clients_budget_is_spent,
    test_an_honest_query_pays_what_its_answer_took,
    test_an_over_budget_client_is_refused_by_every_way_in,
    test_each_article_a_subscription_sends_draws_from_its_clients_budget,
)

# Not run again here: test_budget_status_never_changes_an_answers_etag, whose
# two answers must differ in budget, which the default tier refills in 32 ms,
# less than two store round trips on the wire server take.


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    return dataclasses.replace(api_settings, budgets="store")


@pytest.mark.parametrize("budgets", ["store", "worker"])
def test_a_budget_spent_through_one_app_is_spent_for_another_over_the_same_store(
    loaded: Store, api_settings: Settings, budgets: str
) -> None:
    settings = small_budget(dataclasses.replace(api_settings, budgets=budgets))
    one, two = create_app(settings, loaded), create_app(settings, loaded)
    address = ("198.51.100.7", 1)
    with TestClient(one, client=address) as first, TestClient(two, client=address) as second:
        refused = spend(first)
        assert refused.status_code == 429 and code(refused) == "RATE_LIMITED"
        other = post(second, FRONT)
        if budgets == "store":  # one budget: spent
            assert other.status_code == 429 and code(other) == "RATE_LIMITED"
            assert int(other.headers["retry-after"]) >= 1
        else:  # a budget per worker: a second one, whole
            assert other.status_code == 200


def test_a_store_that_does_not_answer_refuses_at_once_and_clearly() -> None:
    settings = Settings(
        budgets="store",
        mongodb_uri="mongodb://127.0.0.1:9/",  # discard: nothing listens
        store_timeout_ms=300,
        store_op_timeout_ms=1000,
    )
    with TestClient(create_app(settings), client=("198.51.100.8", 1)) as client:
        started = time.monotonic()
        response = post(client, FRONT)
        took = time.monotonic() - started
    # Refused by the first draw (Admit), as a query would have been: the
    # gateway gives up after store_timeout_ms, so it never hangs.
    assert code(response) == "STORE_UNAVAILABLE", response.text
    assert response.json()["data"] is None
    print(f"refused in {took:.2f} s")


class Counting(Gateway):
    """A gateway that counts the calls it sends to the store."""

    calls = 0

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await super().call(*args, **kwargs)


def test_store_buckets_are_one_per_client_for_every_worker_and_refusals_cost_no_call(
    store: Store,
) -> None:
    tiers = {"anonymous": Policy(rate=10, burst=100, concurrency=1)}
    now = [1_000_000.0]
    gateway = Counting(store, 3000)
    one, two = (StoreBuckets(tiers, clock=lambda: now[0]) for _ in range(2))  # two workers
    one._pruned = two._pruned = now[0]  # not due: counted calls are draws only
    client = Identity("addr:192.0.2.9")
    store.ensure_indexes()  # as the app does when it starts

    async def scenario() -> None:
        assert (await one.take(gateway, client, 60)).allowed
        second = await two.take(gateway, client, 60)  # the other worker: 40 left
        assert not second.allowed and second.available == pytest.approx(40)
        assert second.retry_after_s == pytest.approx(2.0)
        calls = gateway.calls
        assert not (await two.take(gateway, client, 60)).allowed
        assert gateway.calls == calls  # refused again from memory, no store call
        now[0] += 2.0  # refilled by 20 points: 60 fit
        drawn = await two.take(gateway, client, 60)
        assert drawn.allowed and drawn.available == pytest.approx(0)
        assert gateway.calls == calls + 1
        given = await one.take(gateway, client, -30)  # an answer gives back 30
        assert given.available == pytest.approx(30)
        now[0] += 1000.0  # full again long since: the next prune (due now) deletes it
        assert (await two.take(gateway, client, 0)).available == 100
        await asyncio.gather(*two._behind)
        assert store.budgets.find_one({"_id": client.key}) is None

    asyncio.run(scenario())


def available(response: Any) -> int:
    status: int = response.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    return status


def test_a_flood_of_new_identities_stays_within_the_bound_and_spends_only_its_own_budget(
    loaded: Store, api_settings: Settings
) -> None:
    """An attacker with an IPv6 /64 per request (through a trusted proxy) adds no
    bucket past NEWSGRAPH_BUDGETS_STORED_MAX: the identities beyond it share the
    tier's overflow bucket, which the flood spends alone; a client that had a
    bucket keeps it, neither spent by the flood nor handed back full."""
    bound = 12
    settings = small_budget(
        api_settings, budgets_stored_max=bound, trusted_proxies="127.0.0.1"
    )  # 400 points, refilled by 1 a second: no flood bucket is full again meanwhile
    normal = {"x-forwarded-for": "198.51.100.20"}
    with TestClient(create_app(settings, loaded), client=("127.0.0.1", 1)) as client:
        for _ in range(4):  # the normal client spends some of its budget
            answer = post(client, FRONT, normal)
            assert answer.status_code == 200
        before, then = available(answer), time.time()
        flood = [
            post(client, FRONT, {"x-forwarded-for": f"2001:db8:0:{n:x}::1"}) for n in range(60)
        ]
        statuses = [r.status_code for r in flood]
        assert set(statuses) <= {200, 429}, statuses
        # The first identities got buckets of their own, full ones each; the rest
        # share one, spent after a dozen front pages, then refused.
        assert statuses[: bound - 2].count(200) == bound - 2
        refused = [r for r in flood if r.status_code == 429]
        assert refused and all(code(r) == "RATE_LIMITED" for r in refused)
        assert loaded.budgets.count_documents({}) <= bound + 1  # and the overflow bucket
        assert loaded.budgets.find_one({"_id": "overflow:anonymous"}) is not None
        ids = [doc["_id"] for doc in loaded.budgets.find({})]
        assert sum(i.startswith("addr:2001:db8:") for i in ids) < bound
        # The normal client: its own bucket, as it left it (give or take the refill).
        again = post(client, FRONT, normal)
        assert again.status_code == 200
        price = again.json()["extensions"]["cost"]["actualQueryCost"]
        refill = time.time() - then + 1
        assert before - price - 1 <= available(again) <= before - price + refill
        assert loaded.budgets.find_one({"_id": "addr:198.51.100.20"}) is not None


def test_at_the_bound_full_buckets_make_room_and_refilling_ones_stay(store: Store) -> None:
    tiers = {"anonymous": Policy(rate=10, burst=100, concurrency=1)}
    now = [1_000_000.0]
    gateway = Gateway(store, 3000)
    buckets = StoreBuckets(tiers, clock=lambda: now[0], stored_max=3)
    buckets._pruned = now[0]  # the minutely prune is not due: only the bound deletes
    store.ensure_indexes()
    quick, slow, other, late, new = (Identity(f"addr:192.0.2.{n}") for n in range(1, 6))

    async def scenario() -> None:
        assert (await buckets.take(gateway, quick, 10)).allowed  # full again in 1 s
        assert (await buckets.take(gateway, slow, 90)).allowed  # in 9 s
        assert (await buckets.take(gateway, other, 10)).allowed
        # The store holds its most, none full: a new client draws on the
        # tier's overflow bucket (and keeps to it for a while).
        assert (await buckets.take(gateway, late, 10)).allowed
        assert buckets.bucket_of(late) == "overflow:anonymous"
        assert store.budgets.find_one({"_id": late.key}) is None
        now[0] += 2.0  # all full again but the slow one's
        assert (await buckets.take(gateway, new, 10)).allowed
        assert buckets.bucket_of(new) == new.key  # room was made: a bucket of its own
        assert {doc["_id"] for doc in store.budgets.find({})} == {slow.key, new.key}
        assert buckets.bucket_of(late) == "overflow:anonymous"
        now[0] += OVERFLOW_S  # looked at again: room for it now
        assert buckets.bucket_of(late) == late.key

    asyncio.run(scenario())
