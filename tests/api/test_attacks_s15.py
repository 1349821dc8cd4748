"""Session 15's probes: each test is a way one hostile client got more than
it paid for, or held the server, reproduced; it fails while the gap is open."""

from __future__ import annotations

import time

import pytest
from graphql import execute_sync, get_introspection_query, parse, print_ast
from starlette.testclient import TestClient

from api.errors import TooManySubscriptionsError
from api.http.identity import client_key
from api.operation.cost import count_objects, query_cost
from api.operation.documents import over_token_limit
from api.operation.schema import build_schema
from api.operation.throttle import OPERATION_POINTS
from tests.api.test_pipeline_caches import view

GRAPHQL_SCHEMA = build_schema()._schema

# -- 1. Introspection answered for nothing ------------------------------------

#: 30 aliases (the alias limit) of one introspection selection within the
#: introspection depth rule: 13,200 objects and 275 kB, 280 ms of the
#: worker's CPU each, once priced 0 objects (10 points). One address sending
#: eight at a time held another address's three-article query 2.3 s (4 ms alone).
ONE = "__schema { types { fields { name type { fields { name type { name } } } } } }"
WIDE_INTROSPECTION = "{ " + " ".join(f"a{i}: {ONE}" for i in range(30)) + " }"


def post(client: TestClient, query: str) -> dict:
    response = client.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    return response.json()


def test_wide_introspection_is_refused_unexecuted(client: TestClient) -> None:
    body = post(client, WIDE_INTROSPECTION)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["QUERY_TOO_COSTLY"]
    cost = body["extensions"]["cost"]
    assert cost["actualQueryCost"] == OPERATION_POINTS


@pytest.mark.parametrize("aliases", [1, 2])
def test_introspection_pays_for_the_objects_it_answers(client: TestClient, aliases: int) -> None:
    # Each alias the whole of what GraphiQL asks: priced as it answers, exactly.
    standard = parse(get_introspection_query(descriptions=True))
    operation, *fragments = standard.definitions
    selections = print_ast(operation.selection_set.selections[0].selection_set)  # type: ignore[attr-defined]
    query = (
        "{ " + " ".join(f"a{i}: __schema {{ ...S }}" for i in range(aliases)) + " } "
        f"fragment S on __Schema {selections} " + " ".join(print_ast(f) for f in fragments)
    )
    body = post(client, query)
    assert "errors" not in body, body["errors"]
    objects = count_objects(body["data"])
    assert objects > 500 * aliases
    cost = body["extensions"]["cost"]
    assert cost["requested"]["objects"] == cost["actual"]["objects"] == objects
    assert cost["actualQueryCost"] == OPERATION_POINTS + objects


def test_pricing_introspection_is_bounded() -> None:
    # The price counts the answer from the schema without executing it, in
    # a bounded number of steps: a query past them is over any budget. The
    # bound is generous (measured: 6-10 ms to refuse, 60-110 ms to execute).
    document = parse(WIDE_INTROSPECTION)
    started = time.process_time()
    price = query_cost(GRAPHQL_SCHEMA, document)
    took = time.process_time() - started
    assert price.objects > 50_000
    assert took < 2.0
    # Within the bound, the price is the answer's objects.
    one = "{ " + ONE + " }"
    answer = execute_sync(GRAPHQL_SCHEMA, parse(one))
    assert answer.errors is None
    assert query_cost(GRAPHQL_SCHEMA, parse(one)).objects == count_objects(answer.data)


# -- 2. Trailing spaces counted in quadratic time -----------------------------


@pytest.mark.parametrize("ignored", [" ", ",", "\n", "\ufeff"])
def test_trailing_ignored_characters_are_counted_in_linear_time(ignored: str) -> None:
    # The token count ran its pattern from each trailing ignored character
    # to the end: 60,000 spaces after a valid query (within the token limit
    # at one token per 32 characters, and the body limit) held the event
    # loop 2.0 s on first sight, 2.3 s with U+FEFF. Now about 0.2 ms; the
    # bound is generous.
    text = "{ __typename }" + ignored * 60_000
    started = time.process_time()
    over = over_token_limit(text, 2000)
    took = time.process_time() - started
    assert not over
    assert took < 0.5
    # Still counted: the characters count, at one token per 32.
    assert over_token_limit(text + " " * 4_000, 2000)


def test_a_query_with_trailing_spaces_is_answered(client: TestClient) -> None:
    body = post(client, "{ __typename }" + " " * 60_000)
    assert body["data"] == {"__typename": "Query"}


# -- 3. The worker's subscription memory filled from one network -----------------


def test_one_network_cannot_fill_the_worker_s_subscription_memory(client: TestClient) -> None:
    # A client's share of the worker's subscription memory, as the app has it
    # (4 MB of 64 MB), each /64 of one /48 a client of its own
    # (api.http.identity), each subscription a distinct document of 1 MB: the
    # /48 is a network, whose clients together may hold a quarter of it.
    graphql = view(client.app)  # type: ignore[arg-type]
    settings, allowance = graphql.settings, graphql.feed.allowance
    assert (allowance.held, allowance.subscriptions) == (0, 0)
    clients = [client_key(f"2001:db8:0:{n:x}::1", [], []) for n in range(1, 1000)]

    def fill(document: int) -> None:
        """Distinct subscriptions of ``document`` bytes from one /64 after
        another, until each is refused: never for the worker's bound."""
        for n, key in enumerate(clients):
            try:
                while True:
                    allowance.admit(key, (n, allowance.held), document, True, 20_000)
            except TooManySubscriptionsError as refused:
                assert not refused.worker, refused

    fill(1_000_000)
    fill(1_000)  # and what is left, with small ones
    share = settings.subscriptions_per_network_bytes
    assert share <= settings.subscriptions_max_bytes // 4
    assert share - 30_000 < allowance.held <= share  # the /48 holds its share, all but a crumb
    assert allowance.held_by_network(clients[0]) == allowance.held
    elsewhere = client_key("198.51.100.7", [], [])
    allowance.admit(elsewhere, "small", 1_000, True, 20_000)  # a client from elsewhere: let in
