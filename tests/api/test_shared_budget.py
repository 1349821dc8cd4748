"""Each client's budget kept in the store (``NEWSGRAPH_BUDGETS=store``,
api.operation.throttle.StoreBuckets): the budget tests over HTTP hold there
too, and a client's spending is counted once whichever app answers."""

from __future__ import annotations

import dataclasses
import time

import pytest
from starlette.testclient import TestClient

from api.app import create_app
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
