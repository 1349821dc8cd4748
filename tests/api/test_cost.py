"""Query cost: the worst case of a query, priced before it runs (api/operation/cost.py).

The first half tests the pure analysis on the schema; the second half the app,
on both engines: README queries pass at the cost the README states, hostile
shapes are refused without a store call, and the budget settings move the line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import time

import orjson
import pytest
from graphql import (
    GraphQLObjectType,
    execute_sync,
    get_introspection_query,
    get_nullable_type,
    is_list_type,
    parse,
)
from starlette.testclient import TestClient

from api.app import create_app
from api.operation.budget import Budget, CostCache
from api.operation.cost import (
    CAP,
    ENTRY_OBJECTS,
    PART_OBJECTS,
    STREAM_OBJECTS,
    Cost,
    PathCost,
    count_objects,
    query_cost,
)
from api.operation.schema import build_schema
from api.schema.facts import answered_by
from bench.hostile import ATTACKS
from core.config import DEFAULT_PAGE, MAX_PAGE, Settings
from core.document import ARTICLE, RELATED
from loaders.errors import Rejected
from loaders.normalize import Normalizer
from tests.test_readme import README, blocks

SCHEMA = build_schema()
GRAPHQL_SCHEMA = SCHEMA._schema

TOPICS = ARTICLE.fields["topics"].max_items
IMAGES = ARTICLE.fields["images"].max_items
RELATED_ITEMS = ARTICLE.fields["related"].max_items
RELATED_IMAGES = RELATED.fields["images"].max_items


def cost(query: str, variables: dict | None = None, operation: str | None = None) -> Cost:
    return query_cost(GRAPHQL_SCHEMA, parse(query), variables, operation)


def measured(query: str, variables: dict | None = None) -> tuple[int, int]:
    c = cost(query, variables)
    return c.objects, c.store_calls


# -- the rule ------------------------------------------------------------------


def test_first_multiplies_down_nested_connections():
    assert measured("{ articles(first: 3) { nodes { title } } }") == (1 + 3, 1)
    nested = (
        "{ articles(first: 3) { nodes { provider { articles(first: 2) { nodes { title } } } } } }"
    )
    # 1 connection, 3 articles, 3 providers, 3 connections of 2 articles each;
    # the inner connection is one store call per provider.
    assert measured(nested) == (1 + 3 + 3 + 3 + 3 * 2, 1 + 3)
    edges = "{ articles(first: 3) { pageInfo { endCursor } edges { cursor node { title } } } }"
    assert measured(edges) == (1 + 1 + 3 + 3, 1)


@pytest.mark.parametrize(
    ("first", "page"),
    [("", DEFAULT_PAGE), ("(first: null)", DEFAULT_PAGE), ("(first: 1000)", MAX_PAGE),
     ("(first: 0)", 0), ("(first: -5)", 0), ("(first: 7)", 7)],
)  # fmt: skip
def test_first_defaults_and_caps(first, page):
    assert measured(f"{{ topics{first} {{ nodes {{ name }} }} }}") == (1 + page, 1)


@pytest.mark.parametrize(
    ("declared", "variables", "page"),
    [("$n: Int", {"n": 7}, 7), ("$n: Int", {}, DEFAULT_PAGE), ("$n: Int = 5", {}, 5),
     ("$n: Int = 5", {"n": 9}, 9), ("$n: Int = 5", {"n": None}, DEFAULT_PAGE),
     ("$n: Int", {"n": 10_000}, MAX_PAGE), ("$n: Int", {"n": "many"}, MAX_PAGE),
     ("$n: Int", {"n": True}, MAX_PAGE), ("$n: Int", {"n": 4.0}, 4)],
)  # fmt: skip
def test_variables_give_first(declared, variables, page):
    query = f"query Q({declared}) {{ articles(first: $n) {{ nodes {{ title }} }} }}"
    assert measured(query, variables) == (1 + page, 1)


def test_plain_lists_count_their_declared_max_items():
    query = '{ article(id: "x") { topics { name } images { url } related { images { url } } } }'
    objects = 1 + TOPICS + IMAGES + RELATED_ITEMS + RELATED_ITEMS * RELATED_IMAGES
    assert measured(query) == (objects, 1)
    # Read from core/document.py, not written twice.
    assert declared_bounds() == {
        ("Article", "topics"): TOPICS,
        ("Article", "images"): IMAGES,
        ("Article", "related"): RELATED_ITEMS,
        ("RelatedStory", "images"): RELATED_IMAGES,
    }


STORY = {"title": "t", "webUrl": "https://a.example/x"}
IMAGE = {"url": "https://img.example/1.jpg"}


@pytest.mark.parametrize(
    ("field", "make", "limit"),
    [("topics", lambda n: [f"topic {i}" for i in range(n)], TOPICS),
     ("images", lambda n: [IMAGE] * n, IMAGES),
     ("related", lambda n: [STORY] * n, RELATED_ITEMS),
     ("related", lambda n: [{**STORY, "images": [IMAGE] * n}], RELATED_IMAGES)],
)  # fmt: skip
def test_the_loader_refuses_lists_over_their_bound(field, make, limit):
    """The bounds hold only if no stored list is longer: the loader's part."""
    assert Normalizer().object({**STORY, field: make(limit)}, ARTICLE, "")
    with pytest.raises(Rejected, match=f"over the limit of {limit:,}"):
        Normalizer().object({**STORY, field: make(limit + 1)}, ARTICLE, "")


def test_each_alias_counts_and_a_repeated_key_counts_once():
    one = measured("{ articles(first: 2) { nodes { topics { name } } } }")
    two = measured(
        "{ a: articles(first: 2) { nodes { topics { name } } } "
        "b: articles(first: 2) { nodes { topics { name } } } }"
    )
    assert two == (2 * one[0], 2 * one[1])
    merged = measured(
        "{ articles(first: 2) { nodes { topics { name } } } articles(first: 2) { nodes { id } } }"
    )
    assert merged == one
    assert set(cost("{ a: articles { totalCount } b: articles { totalCount } }").paths) == {
        "a", "a.totalCount", "b", "b.totalCount",
    }  # fmt: skip


def test_named_and_inline_fragments_count_where_they_apply():
    plain = measured("{ articles(first: 2) { nodes { topics { name } related { title } } } }")
    named = measured(
        "query { ...Root } fragment Root on Query { articles(first: 2) { nodes { ...Story } } } "
        "fragment Story on Article { topics { name } ...Story2 ...Story2 } "
        "fragment Story2 on Article { related { title } }"
    )
    inline = measured(
        "{ articles(first: 2) { nodes { ... on Article { topics { name } } "
        "... { related { title } } } } }"
    )
    assert named == inline == plain


def test_a_fragment_cycle_ends():
    # Validation refuses cycles before any request is priced; the function alone
    # still terminates on one.
    cycle = (
        "query { ...A } fragment A on Query { ...B topics(first: 1) { totalCount } } "
        "fragment B on Query { ...A }"
    )
    assert measured(cycle) == (1, 2)


@pytest.mark.parametrize(
    ("directive", "variables", "counted"),
    [("@skip(if: true)", {}, False), ("@skip(if: false)", {}, True),
     ("@include(if: false)", {}, False), ("@include(if: true)", {}, True),
     ("@include(if: $on)", {"on": False}, False), ("@include(if: $on)", {"on": True}, True),
     ("@skip(if: $on)", {"on": True}, False), ("@skip(if: $on)", {}, True),
     ("@include(if: $on)", {}, True), ("@include(if: $on)", {"on": "yes"}, True)],
)  # fmt: skip
def test_skip_and_include_count_as_they_will_run_or_the_worst_case(directive, variables, counted):
    related = RELATED_ITEMS * 2
    for where in ("related {d} {{ title }}", "... {d} {{ related {{ title }} }}", "...R {d}"):
        selection = where.format(d=directive)
        query = (
            f"query Q($on: Boolean) {{ articles(first: 2) {{ nodes {{ title {selection} }} }} }}"
            " fragment R on Article { related { title } }"
        )
        assert cost(query, variables).objects == 1 + 2 + (related if counted else 0), where


@pytest.mark.parametrize(
    ("defer", "variables", "parts"),
    [("@defer", {}, 1), ('@defer(label: "x")', {}, 1), ("@defer(if: false)", {}, 0),
     ("@defer(if: true)", {}, 1), ("@defer(if: $d)", {"d": False}, 0),
     ("@defer(if: $d)", {"d": True}, 1), ("@defer(if: $d)", {}, 1)],
)  # fmt: skip
def test_a_deferred_fragment_counts_its_part_on_each_parent(defer, variables, parts):
    head = "query($d: Boolean) { articles(first: 7) { nodes { id "
    inline = cost(head + f"... {defer} {{ title }} }} }} }}", variables)
    spread = cost(head + f"...F {defer} }} }} }} fragment F on Article {{ title }}", variables)
    undeferred = cost(head + "title } } }")
    for priced in (inline, spread):
        assert priced.objects == undeferred.objects + parts * 7 * PART_OBJECTS
        assert priced.store_calls == undeferred.store_calls
        assert priced.paths.get("articles.nodes.@defer", PathCost()).objects == parts * 28
        assert ("d" in priced.variables) == ("$d" in defer)


def test_deferred_parts_multiply_down_the_query():
    # Two parts on each of 7 articles, and one on each of their 100 related stories.
    query = (
        "{ articles(first: 7) { nodes { ... @defer { title } ... @defer { heat "
        "related { ... @defer { title } } } } } }"
    )
    undeferred = cost(query.replace("@defer", ""))
    assert cost(query).objects == undeferred.objects + (2 * 7 + 7 * 100) * PART_OBJECTS
    flood = cost(ATTACKS["defer_flood"](random.Random(1))["query"])
    assert flood.objects == 101 + 238 * 100 * PART_OBJECTS > Settings().max_query_objects
    assert flood.heaviest("objects") == ("articles.nodes.@defer", 238 * 100 * PART_OBJECTS)


@pytest.mark.parametrize(
    ("query", "groups"),
    [  # the fields each set of parts selects under an object already selected
        ("provider { id } ... @defer { provider { name } }", 1),
        ("provider { id } ... @defer { provider { name } } ... @defer { provider { domain } }", 2),
        # a field selected outside goes in the first part, whatever else selects it
        ("provider { id } ... @defer { provider { name id } } "
         "... @defer { provider { id domain } }", 2),
        # graphql-core groups the others by the parts selecting each: {D1, D2} and {D2}
        ("provider { name } ... @defer { provider { id name } } "
         "... @defer { provider { id domain } }", 2),
        # {D1, D2}, {D1}, {D2}: one of them goes in the parent's entry (a bound, not exact)
        ("... @defer { provider { id name } } ... @defer { provider { id domain } }", 3),
        ("... @defer { provider { name } ... @defer { provider { domain } } }", 2),
        # selected in one part only: sent inside that part's data
        ("... @defer { provider { name } } provider { name }", 0),
        ("... @defer { provider { name domain } }", 0),
    ],
)  # fmt: skip
def test_deferred_fields_under_an_object_other_parts_select_count_an_entry_each(query, groups):
    head = "{ articles(first: 7) { nodes { id "
    deferred = query.count("@defer")
    undeferred = cost(head + query.replace("@defer", "") + " } } }")
    priced = cost(head + query + " } } }")
    made = deferred * 7 * PART_OBJECTS + groups * 7 * ENTRY_OBJECTS
    assert priced.objects == undeferred.objects + made
    assert priced.paths["articles.nodes.@defer"].objects == deferred * 7 * PART_OBJECTS


@pytest.mark.parametrize(
    ("stream", "later"),
    [("@stream", RELATED_ITEMS), ("@stream(initialCount: 10)", RELATED_ITEMS - 10),
     ("@stream(initialCount: 1000)", 0), ("@stream(if: false)", None)],
)  # fmt: skip
def test_a_streamed_list_counts_an_entry_per_later_item(stream, later):
    query = f"{{ articles(first: 3) {{ nodes {{ related {stream} {{ title }} }} }} }}"
    plain = cost(query.replace(stream, ""))
    extra = 0 if later is None else 3 * (STREAM_OBJECTS + later)
    assert cost(query).objects == plain.objects + extra


def test_total_count_is_one_count_call_per_connection():
    assert measured("{ articles(first: 0) { totalCount } }") == (1, 2)
    query = "{ topics(first: 10) { nodes { articles(first: 1) { totalCount } } } }"
    # topics, then per topic its articles and their count
    assert measured(query) == (1 + 10 + 10, 1 + 10 + 10)


def test_connections_under_a_list_cost_a_store_call_per_parent():
    query = "{ articles(first: 10) { nodes { topics { articles(first: 1) { nodes { id } } } } } }"
    c = cost(query)
    assert c.store_calls == 1 + 10 * TOPICS
    assert c.heaviest("store_calls") == ("articles.nodes.topics.articles", 10 * TOPICS)


def test_relevance_order_is_two_finds():
    search = 'articles(filter: {search: "x"}, orderBy: RELEVANCE) { totalCount }'
    assert measured(f"{{ {search} }}")[1] == 2 + 1
    by_variable = "query($o: ArticleOrder!) { articles(orderBy: $o) { totalCount } }"
    assert measured(by_variable, {"o": "RELEVANCE"})[1] == 3
    assert measured(by_variable, {"o": "HEAT_DESC"})[1] == 2


def test_batched_lookups_cost_one_call_per_level_or_per_call_above():
    mobile = blocks("graphql")[0]
    assert measured(mobile) == (
        1 + 1 + IMAGES + RELATED_ITEMS * (1 + 1 + RELATED_IMAGES + 1 + RELATED_ITEMS),
        2,  # the article, then all its related stories' articles in one batch
    )
    c = cost(
        "{ articles(first: 100) { nodes { related { article { related { article { id } } } } } } }"
    )
    assert c.store_calls == 3
    assert c.objects == 1 + 100 + 100 * RELATED_ITEMS * 2 + 100 * RELATED_ITEMS**2 * 2
    # Parents from 10 separate connection calls arrive in up to 10 batches.
    split = "{ topics(first: 10) { nodes { articles { nodes { related { article { id } } } } } } }"
    assert cost(split).paths["topics.nodes.articles.nodes.related.article"].store_calls == 10


def test_operation_is_chosen_by_name():
    document = (
        "query Small { topics(first: 1) { nodes { name } } } "
        "query Big { articles { nodes { id } } }"
    )
    assert measured_named(document, "Small") == (2, 1)
    assert measured_named(document, "Big") == (1 + DEFAULT_PAGE, 1)
    with pytest.raises(ValueError, match="Nope"):
        measured_named(document, "Nope")


def measured_named(document: str, name: str) -> tuple[int, int]:
    c = cost(document, operation=name)
    return c.objects, c.store_calls


def test_introspection_is_priced_as_the_objects_it_answers():
    # The schema is fixed, so the price is exact.
    query = get_introspection_query(descriptions=True)
    answer = execute_sync(GRAPHQL_SCHEMA, parse(query))
    assert answer.errors is None
    assert cost(query).objects == count_objects(answer.data) > 500
    mixed = cost(
        "{ s: __schema { queryType { name } } __typename topics(first: 1) { nodes { name } } }"
    )
    assert mixed.objects == 4
    data = {"s": {"queryType": {"name": "Query"}}, "__typename": "Query",
            "topics": {"nodes": [{"name": "a"}]}}  # fmt: skip
    assert count_objects(data) == 4


def test_the_cache_keys_on_the_variables_the_cost_depends_on():
    costs = CostCache()
    query = (
        "query($n: Int, $id: ID!, $on: Boolean!) { article(id: $id) { title } "
        "articles(first: $n) @include(if: $on) { nodes { related { title } } } }"
    )
    document = parse(query)

    def priced(variables: dict) -> Cost:
        return costs.cost(GRAPHQL_SCHEMA, query, document, variables, None)

    three = priced({"n": 3, "id": "a", "on": True})
    assert three.variables == {"n", "on"}  # not id: it changes nothing
    assert priced({"n": 3, "id": "b", "on": True}) is three
    for variables in (
        {"n": 4, "id": "a", "on": True},
        {"n": 3, "id": "a", "on": False},
        {"id": "a", "on": True},
        {"n": True, "id": "a", "on": True},
        {"n": [1], "id": "a", "on": True},
        {"n": 1, "id": "a", "on": True},
    ):
        assert priced(variables) == cost(query, variables), variables
    assert priced({"n": 1, "id": "a", "on": True}).objects == 1 + 1 + 1 + RELATED_ITEMS


def test_costs_saturate_as_exact_json_numbers():
    deep = "{ articles(first: 100) { nodes { " + "related { article { " * 8 + "id" + " } }" * 8
    c = cost(deep + " } } }")
    assert c.objects == CAP
    assert orjson.loads(orjson.dumps(c.objects)) == CAP
    assert "over 9,007,199,254,740,991 objects" in Budget(10, 10).refusal(c)


def declared_bounds() -> dict[tuple[str, str], int]:
    """The plain lists' bounds the schema's fields declare (api.schema.facts)."""
    return {
        (name, field_name): declared.max_items
        for name, type_ in GRAPHQL_SCHEMA.type_map.items()
        if isinstance(type_, GraphQLObjectType)
        for field_name, field in type_.fields.items()
        if (declared := answered_by(field)) is not None
        and declared.max_items is not None
        and declared.items_argument is None
    }


def test_every_list_field_is_bounded_and_every_store_field_priced():
    """Guards fields added later: a list without a bound, or a resolver that
    awaits (asks the store) without a price, would make every cost a lie."""
    for name, type_ in GRAPHQL_SCHEMA.type_map.items():
        if name.startswith("__") or not isinstance(type_, GraphQLObjectType):
            continue
        if "pageInfo" in type_.fields:
            continue  # connections: their lists hold a page, totalCount is priced by rule
        for field in SCHEMA.get_type_by_name(name).fields:
            graphql_name = SCHEMA.config.name_converter.get_graphql_name(field)
            if field.is_async:
                declared = answered_by(field)
                priced = declared is not None and declared.calls is not None
                assert priced, f"{name}.{graphql_name} is not priced"
        for field_name, field in type_.fields.items():
            if is_list_type(get_nullable_type(field.type)):
                declared = answered_by(field)
                bounded = declared is not None and declared.max_items is not None
                assert bounded, f"{name}.{field_name} has no bound"


def test_budget_refusal_names_cost_budget_and_the_heaviest_field():
    c = cost("{ articles(first: 10) { nodes { topics { articles(first: 3) { totalCount } } } } }")
    assert (c.objects, c.store_calls) == (1 + 10 + 10 * TOPICS * 2, 1 + 2 * 10 * TOPICS)
    assert Budget(c.objects, c.store_calls).refusal(c) is None
    objects = Budget(c.objects - 1, c.store_calls).refusal(c)
    assert objects is not None
    assert f"{c.objects:,} objects, over the budget of {c.objects - 1:,}" in objects
    assert "`articles.nodes.topics`" in objects  # 1,000 topics; as many connections
    calls = Budget(c.objects, c.store_calls - 1).refusal(c)
    assert calls is not None
    assert f"{c.store_calls:,} store calls, over the budget of {c.store_calls - 1:,}" in calls
    assert "`articles.nodes.topics.articles`" in calls


def test_budget_settings_come_from_the_environment():
    settings = Settings.from_env(
        {"NEWSGRAPH_MAX_QUERY_OBJECTS": "5", "NEWSGRAPH_MAX_QUERY_STORE_CALLS": "3"}
    )
    assert (settings.max_query_objects, settings.max_query_store_calls) == (5, 3)


# -- through the app, on both engines ------------------------------------------------


def readme_queries() -> list[tuple[str, str, int, int]]:
    """(label, query, objects, store calls) from the README's cost table, whose
    rows follow the README's queries in order: the two curl ones, then each
    GraphQL block."""
    curl_post = re.search(r'"query": "(\{.*?\})"', README)
    curl_get = re.search(r"--data-urlencode 'query=(\{.*?\})'", README)
    assert curl_post and curl_get
    queries = [curl_post.group(1), curl_get.group(1), *blocks("graphql")]
    rows = re.findall(r"^  \| (.+?) \| ([\d,]+) \| ([\d,]+) \|$", README, flags=re.M)
    assert len(rows) == len(queries), rows
    return [
        (label, query, int(objects.replace(",", "")), int(calls.replace(",", "")))
        for (label, objects, calls), query in zip(rows, queries, strict=True)
    ]


def post(client: TestClient, query: str, variables: dict | None = None) -> dict:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.json()


def test_readme_queries_pass_at_the_cost_the_readme_states(client, round_trips):
    budget = Settings()
    for label, query, objects, calls in readme_queries():
        round_trips.clear()
        body = post(client, query)
        assert "errors" not in body, (label, body["errors"])
        reported = body["extensions"]["cost"]
        assert reported["requested"] == {"objects": objects, "storeCalls": calls}, label
        assert reported["budget"] == {
            "objects": budget.max_query_objects,
            "storeCalls": budget.max_query_store_calls,
        }
        actual = reported["actual"]
        assert actual["storeCalls"] == len(round_trips) > 0, label  # the request's own counter
        assert 0 < actual["objects"] <= objects and actual["storeCalls"] <= calls, label
        assert actual["objects"] == count_objects(body["data"])


def test_readme_claims_about_other_queries_hold():
    assert "88,044,021 objects, 4,002,001 store calls" in README
    assert measured(HOSTILE["articles' topics' articles, twice"]) == (88_044_021, 4_002_001)
    assert "(202,020,101" in README
    assert cost(HOSTILE["related chains 3 deep"]).objects == 202_020_101
    assert "201 store calls and passes" in README
    passing = "{ topics(first: 100) { nodes { articles { totalCount nodes { id } } } } }"
    assert cost(passing).store_calls == 201 <= Settings().max_query_store_calls


HOSTILE = {
    "articles' topics' articles, twice": "{ articles { nodes { topics { articles { nodes "
    "{ topics { articles { nodes { title } } } } } } } } }",
    "3 levels under first: 100": "{ articles(first: 100) { nodes { topics { articles(first: 100)"
    " { nodes { topics { articles(first: 100) { nodes { title } } } } } } } } }",
    "related chains 3 deep": "{ articles(first: 100) { nodes { related { article { related "
    "{ article { related { article { title } } } } } } } } }",
    "2 levels, default first": "{ articles { nodes { topics { articles { nodes { id } } } } } }",
    "related chains 2 deep, default first": "{ articles { nodes { related { article { related "
    "{ article { title } } } } } } }",
    "aliased front pages": "{ "
    + " ".join(f"a{i}: articles(first: 100) {{ nodes {{ topics {{ name }} }} }}" for i in range(20))
    + " }",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_shapes_are_refused_quickly_without_a_store_call(client, round_trips, name):
    query = HOSTILE[name]
    c = cost(query)
    settings = Settings()
    over_objects = c.objects > settings.max_query_objects
    assert over_objects or c.store_calls > settings.max_query_store_calls
    started = time.monotonic()
    body = post(client, query)
    assert time.monotonic() - started < 1.0
    assert round_trips == []
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    measure, budget = (
        ("objects", settings.max_query_objects)
        if over_objects
        else ("store_calls", settings.max_query_store_calls)
    )
    total = c.objects if over_objects else c.store_calls
    path, part = c.heaviest(measure)
    assert f"{total:,}" in error["message"] and f"budget of {budget:,}" in error["message"]
    assert f"`{path}` ({part:,})" in error["message"]
    assert body["extensions"]["cost"]["actual"] == {"objects": 0, "storeCalls": 0}


def with_budget(loaded, api_settings, **budget: int) -> TestClient:
    return TestClient(create_app(dataclasses.replace(api_settings, **budget), loaded))


FRONT = "{ articles(first: 5) { totalCount nodes { title topics { name } } } }"


def test_budget_settings_move_the_line(loaded, api_settings):
    objects, calls = measured(FRONT)
    assert (objects, calls) == (1 + 5 + 5 * TOPICS, 2)
    exact = {"max_query_objects": objects, "max_query_store_calls": calls}
    with with_budget(loaded, api_settings, **exact) as client:
        assert "errors" not in post(client, FRONT)
    for name, value in exact.items():
        with with_budget(loaded, api_settings, **{**exact, name: value - 1}) as client:
            body = post(client, FRONT)
            assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY", name
            assert f"budget of {value - 1:,}" in body["errors"][0]["message"]


def test_refused_through_get_and_persisted_queries(client, round_trips):
    query = (
        "query($n: Int) { articles(first: $n) { nodes { topics { articles { totalCount } } } } }"
    )
    small = client.get("/graphql", params={"query": query, "variables": '{"n": 1}'}).json()
    assert "errors" not in small and small["extensions"]["cost"]["requested"]["storeCalls"] == 201
    big = client.get("/graphql", params={"query": query, "variables": '{"n": 2}'}).json()
    assert big["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    chain = HOSTILE["related chains 3 deep"]
    digest = hashlib.sha256(chain.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    registered = client.post("/graphql", json={"query": chain, "extensions": extensions}).json()
    assert registered["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    round_trips.clear()
    by_hash = client.get("/graphql", params={"extensions": orjson.dumps(extensions).decode()})
    assert by_hash.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert round_trips == []


def test_invalid_queries_get_validation_errors_not_a_price(client):
    costly_and_invalid = HOSTILE["related chains 3 deep"].replace("title", "nope")
    body = post(client, costly_and_invalid)
    assert "Cannot query field 'nope'" in body["errors"][0]["message"]
    # Unpriced: only the client's budget is reported.
    assert set(body["extensions"]["cost"]) == {"throttleStatus"}


def test_introspection_passes_at_its_objects(client):
    body = post(client, get_introspection_query(descriptions=True))
    assert "errors" not in body and body["data"]["__schema"]["types"]
    objects = count_objects(body["data"])
    assert body["extensions"]["cost"]["requested"] == {"objects": objects, "storeCalls": 0}
    assert body["extensions"]["cost"]["actual"] == {"objects": objects, "storeCalls": 0}


def test_actual_never_exceeds_requested(client):
    queries = [
        ("{ topics(first: 3) { nodes { name articleCount articles(first: 2) { totalCount edges "
         "{ cursor node { title related { article { provider { articleCount } } } } } } } } }",
         None),
        ("query($q: String!) { articles(filter: {search: $q}, orderBy: RELEVANCE, first: 2) "
         "{ totalCount nodes { title topics { name articles(first: 1) { nodes { id } } } } } }",
         {"q": "the"}),
        ("{ providers { nodes { domain articles { nodes { images { url } } } } } }", None),
    ]  # fmt: skip
    for query, variables in queries:
        body = post(client, query, variables)
        assert "errors" not in body, body["errors"]
        reported = body["extensions"]["cost"]
        for measure in ("objects", "storeCalls"):
            assert 0 < reported["actual"][measure] <= reported["requested"][measure], query
