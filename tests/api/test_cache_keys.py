"""Cache hints and cache keys on GET answers (``api.schema.caching``,
``api.http.caching``): an answer's keys name exactly what it holds, whichever
way it was made, its ``Cache-Control`` follows the schema's hints, and only an
anonymous answer is shared."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.data.filters import ORDERINGS
from api.http.caching import CachePolicy
from api.schema.facts import PRIVATE, TYPE_HINT
from api.schema.nodes import FACETS_BY_TYPE, facet_id
from api.schema.types import Article
from bench.gen import generate
from core import keys
from core.cachekeys import (
    ALL,
    ARTICLE,
    FACET_TYPES,
    LISTED_FIELDS,
    PROVIDER,
    TOPIC,
    TYPES,
    object_key,
    unnamed_key,
)
from core.config import ConfigError, Settings
from core.document import article_id
from core.store import Store, connect
from loaders import load_paths
from tests.api.fixtures import ADMIN_TOKEN

#: The field each keyed type is named by in the queries below.
ID_FIELD = {ARTICLE: "id", PROVIDER: "domain", TOPIC: "name"}


@pytest.fixture
def clients(loaded: Store, api_settings: Settings) -> Iterator[dict[str, TestClient]]:
    """The same store served by compiled plans and by ordinary execution."""
    with (
        TestClient(create_app(dataclasses.replace(api_settings, compiled=True), loaded)) as plans,
        TestClient(create_app(dataclasses.replace(api_settings, compiled=False), loaded)) as plain,
    ):
        yield {"compiled": plans, "ordinary": plain}


def get(client: TestClient, query: str, variables: dict | None = None, **headers: str) -> Any:
    params = {"query": query}
    if variables:
        params["variables"] = json.dumps(variables)
    response = client.get("/graphql", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


def keys_of(response: Any) -> set[str]:
    """The keys an answer carries, the same in both headers."""
    spaced = response.headers["surrogate-key"].split(" ")
    assert response.headers["cache-tag"].split(",") == spaced
    assert len(spaced) == len(set(spaced))
    return set(spaced)


def objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``, at any depth."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from objects(child)
    elif isinstance(value, list):
        for child in value:
            yield from objects(child)


def held(data: Any) -> set[str]:
    """The keys of the keyed objects in an answer's data (each query below
    selects ``__typename`` and the naming field of every such object)."""
    return {
        object_key(o["__typename"], o[ID_FIELD[o["__typename"]]])
        for o in objects(data)
        if o.get("__typename") in TYPES
    }


def story_lookups(data: Any) -> set[str]:
    """The articles looked up for the related stories in ``data`` (by the
    ``webUrl`` each query selects beside them), found or not."""
    return {
        object_key(ARTICLE, article_id(o["webUrl"]))
        for o in objects(data)
        if "webUrl" in o and "__typename" not in o
    }


ARTICLE_QUERY = """query ($id: ID!) {
  article(id: $id) {
    __typename id title
    provider { __typename domain articleCount }
    topics { __typename name }
    related { webUrl provider { __typename domain } article { __typename id title } }
  }
}"""
STORED_ONLY = """query ($id: ID!) {
  article(id: $id) {
    __typename id
    every: related { webUrl }
    related(filter: {stored: true}) { title }
  }
}"""


def shapes(ids: list[str], provider: str, topic: str) -> list[tuple[str, dict, set[str]]]:
    """``(query, variables, keys it carries beyond the objects in its data)``."""
    node_ids = [
        *ids[:3],
        facet_id(PROVIDER, provider),
        facet_id(TOPIC, topic),
        facet_id(PROVIDER, "gone.example"),
        "0" * 24,
        "not an id",
    ]
    found: list[tuple[str, dict, set[str]]] = [
        (
            "{ articles(first: 5) { nodes { __typename id title "
            "provider { __typename domain } topics { __typename name } } } }",
            {},
            {ARTICLE},
        ),
        (
            "{ providers(first: 3) { nodes { __typename domain articleCount "
            "articles(first: 2) { totalCount nodes { __typename id } } } } }",
            {},
            {PROVIDER, ARTICLE},
        ),
        ("{ topics(first: 4) { edges { node { __typename name } } totalCount } }", {}, {TOPIC}),
        (
            "query ($ids: [ID!]!) { nodes(ids: $ids) { __typename "
            "... on Article { id } ... on Provider { domain } ... on Topic { name } } }",
            {"ids": node_ids},
            {
                object_key(ARTICLE, "0" * 24),
                object_key(PROVIDER, "gone.example"),
                *(object_key(ARTICLE, i) for i in ids[:3]),
            },
        ),
        (
            '{ article(webUrl: "https://nowhere.example/gone") { __typename id } '
            'provider(domain: "Nowhere.Example") { __typename domain } '
            'topic(name: "No Such Topic") { __typename name } }',
            {},
            {
                object_key(ARTICLE, article_id("https://nowhere.example/gone")),
                object_key(PROVIDER, "nowhere.example"),
                object_key(TOPIC, "No Such Topic"),
            },
        ),
        ("{ __typename }", {}, set()),
    ]
    for i in ids:  # every article, the unpublished one too (looked up: null)
        for query in (ARTICLE_QUERY, STORED_ONLY):
            found.append((query, {"id": i}, {object_key(ARTICLE, i)}))
    return found


def test_an_answers_keys_name_exactly_what_it_holds(clients, loaded):
    ids = sorted(doc["_id"] for doc in loaded.articles.find({}, {"_id": 1}))
    provider = loaded.db["providers"].find_one({"count": {"$gt": 0}})["_id"]
    topic = loaded.db["topics"].find_one({"count": {"$gt": 0}})["_id"]
    assert any(not d["published"] for d in loaded.articles.find({}, {"published": 1}))
    for query, variables, extra in shapes(ids, provider, topic):
        carried = {}
        for mode, client in clients.items():
            response = get(client, query, variables)
            data = response.json()["data"]
            expected = {ALL} | held(data) | story_lookups(data) | extra
            assert keys_of(response) == expected, (mode, query, variables)
            carried[mode] = keys_of(response)
        assert carried["compiled"] == carried["ordinary"]


def test_cache_control_takes_the_shortest_hint_in_the_answer(clients, loaded):
    an_id = loaded.articles.find_one({"published": True})["_id"]
    for client in clients.values():
        # Articles are long-lived; browsers, which nothing purges, get the shorter bound.
        lookup = get(client, "query ($id: ID!) { article(id: $id) { title } }", {"id": an_id})
        assert lookup.headers["cache-control"] == "public, max-age=60, s-maxage=3600"
        # A count is short-lived, wherever it is.
        counted = get(
            client,
            "query ($id: ID!) { article(id: $id) { title provider { articleCount } } }",
            {"id": an_id},
        )
        assert counted.headers["cache-control"] == "public, max-age=60"
        listed = get(client, "{ articles(first: 2) { nodes { title } } }")
        assert listed.headers["cache-control"] == "public, max-age=60"
        # Skipped or not, a selected field's hint counts: an answer is never kept too long.
        skipped = get(
            client,
            "query ($id: ID!) { article(id: $id) { title "
            "provider @skip(if: true) { articleCount } } }",
            {"id": an_id},
        )
        assert skipped.headers["cache-control"] == "public, max-age=60"


def test_the_settings_bound_every_cache_and_shared_ones(loaded, api_settings):
    an_id = loaded.articles.find_one({"published": True})["_id"]
    tuned = dataclasses.replace(api_settings, cache_max_age=30, cache_shared_max_age=600)
    with TestClient(create_app(tuned, loaded)) as client:
        lookup = get(client, "query ($id: ID!) { article(id: $id) { title } }", {"id": an_id})
        assert lookup.headers["cache-control"] == "public, max-age=30, s-maxage=600"
        count = get(client, "{ providers(first: 1) { nodes { articleCount } } }")
        assert count.headers["cache-control"] == "public, max-age=30, s-maxage=60"


def test_admin_answers_are_private_and_name_nothing(clients, loaded):
    an_id = loaded.articles.find_one({"published": True})["_id"]
    for client in clients.values():
        response = get(
            client,
            "query ($id: ID!) { article(id: $id) { title } articles { nodes { id } } }",
            {"id": an_id},
            Authorization=f"Bearer {ADMIN_TOKEN}",
        )
        assert response.headers["cache-control"] == "private, no-store"
        assert "surrogate-key" not in response.headers and "cache-tag" not in response.headers
        # Any credentials at all: the answer is the asker's.
        other = get(client, "{ articles { nodes { id } } }", Authorization="Bearer wrong")
        assert other.headers["cache-control"] == "private, no-store"
        assert "surrogate-key" not in other.headers


def not_shared(response: Any) -> bool:
    """Whether ``response`` is kept by no shared cache and names no key."""
    return (
        "public" not in response.headers.get("cache-control", "no-store")
        and "surrogate-key" not in response.headers
        and "cache-tag" not in response.headers
    )


def test_an_api_keys_answers_and_refusals_are_never_shared(loaded, api_settings):
    """A key's client spends a budget of its own (``api.operation.throttle``):
    its answers, and any refusal (an unknown key's 401, a spent budget's 429),
    are for it alone, with no key for a CDN to purge by."""
    token, _ = keys.create(loaded.keys, "cache test app")
    query = "{ articles(first: 2) { nodes { id title } } }"
    settings = dataclasses.replace(api_settings, anonymous_burst=400, anonymous_points_per_s=1)
    for compiled in (True, False):
        tuned = dataclasses.replace(settings, compiled=compiled)
        address = f"198.51.100.{40 + compiled}"
        with TestClient(create_app(tuned, loaded), client=(address, 1)) as client:
            with_key = get(client, query, Authorization=f"Bearer {token}")
            assert with_key.json()["data"]["articles"]["nodes"]
            assert with_key.headers["cache-control"] == "private, no-store"
            assert not_shared(with_key)
            unknown = client.get(
                "/graphql",
                params={"query": query},
                headers={"Authorization": "Bearer ng_" + "x" * 43},
            )
            assert unknown.status_code == 401 and not_shared(unknown)
            # The same query, anonymous, is shared until its client's budget is spent.
            assert keys_of(get(client, query))
            for _ in range(200):
                refused = client.get("/graphql", params={"query": query})
                if refused.status_code != 200:
                    break
            assert refused.status_code == 429, refused.text
            assert refused.headers["cache-control"] == "no-store" and not_shared(refused)


def test_a_field_hinted_private_makes_the_answer_private(loaded, api_settings, monkeypatch):
    monkeypatch.setattr(Article, TYPE_HINT, PRIVATE)  # as an admin-only type would declare
    an_id = loaded.articles.find_one({"published": True})["_id"]
    for compiled in (True, False):
        settings = dataclasses.replace(api_settings, compiled=compiled)
        with TestClient(create_app(settings, loaded)) as client:
            private = get(client, "query ($id: ID!) { article(id: $id) { title } }", {"id": an_id})
            assert private.headers["cache-control"] == "private, no-store"
            assert "surrogate-key" not in private.headers
            public = get(client, "{ providers(first: 1) { nodes { name } } }")
            assert public.headers["cache-control"] == "public, max-age=60"


def test_the_key_headers_are_a_setting(loaded, api_settings):
    for headers, expected in (("xkey", {"xkey"}), ("none", set()), ("Cache-Tag", {"cache-tag"})):
        settings = dataclasses.replace(api_settings, cache_key_headers=headers)
        with TestClient(create_app(settings, loaded)) as client:
            response = get(client, "{ articles(first: 2) { nodes { id } } }")
            named = {h for h in ("xkey", "surrogate-key", "cache-tag") if h in response.headers}
            assert named == expected
            if "xkey" in expected:
                assert " " in response.headers["xkey"] and "," not in response.headers["xkey"]
    with pytest.raises(ConfigError):
        Settings.from_env({"NEWSGRAPH_CACHE_KEY_HEADERS": "Surrogate Key"})
    with pytest.raises(ConfigError):
        CachePolicy.for_settings(Settings(cache_key_headers="Surrogate Key"))


# -- a hostile query: many ids ---------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Three hundred generated articles, on the embedded engine: how many keys
    a query can name does not depend on the engine."""
    folder: Path = tmp_path_factory.mktemp("corpus")
    generate(300, folder)
    settings = Settings(db_name="cache_keys_corpus")
    store = connect(settings)
    assert load_paths(store, [folder], settings).ok
    yield store
    store.db.client.drop_database(settings.db_name)
    store.close()


def hostile(ids: list[str]) -> str:
    wide = "nodes { __typename id provider { __typename domain } topics { __typename name } "
    wide += "related { webUrl article { __typename id } provider { __typename domain } } }"
    pages = " ".join(
        f"p{i}: articles(first: 100, orderBy: {order}) {{ {wide} }}"
        for i, order in enumerate(("PUBLISHED_DESC", "QUALITY_DESC", "HEAT_DESC"))
    )
    many = json.dumps(ids)
    return f"{{ {pages} n: nodes(ids: {many}) {{ __typename ... on Article {{ id }} }} }}"


@pytest.mark.parametrize("bound", [300, 2000, 16_000])
@pytest.mark.parametrize("compiled", [True, False])
def test_the_header_bound_holds_under_a_query_for_many_ids(corpus, bound, compiled):
    settings = Settings(
        db_name="cache_keys_corpus",
        compiled=compiled,
        cache_keys_max_bytes=bound,
        max_query_objects=10**9,
        max_query_store_calls=10**6,
        anonymous_burst=10**7,  # priced at about 120,000 points: over the default bucket
    )
    ids = [f"{i:024x}" for i in range(100)]
    with TestClient(create_app(settings, corpus)) as client:
        response = get(client, hostile(ids))
    body = response.json()
    assert "errors" not in body
    header = response.headers["surrogate-key"]
    assert len(header) <= bound and len(response.headers["cache-tag"]) <= bound
    carried = set(header.split(" "))
    named = held(body["data"]) | story_lookups(body["data"])
    named |= {object_key(ARTICLE, i) for i in ids}
    assert len(" ".join(named)) > 16_000  # far more than any bound
    for key in named:  # every object is still reached by a purge
        type_name = key.partition(":")[0]
        assert key in carried or unnamed_key(type_name) in carried, key
    assert ALL in carried and ARTICLE in carried


# -- what the loader and the API agree on ------------------------------------------


def test_the_keyed_types_are_the_schemas_node_types():
    from api.operation.schema import build_schema

    schema = build_schema()._schema
    node = schema.get_type("Node")
    assert {t.name for t in schema.get_possible_types(node)} == set(TYPES)  # type: ignore[arg-type]
    assert {FACET_TYPES[f.collection]: f for f in FACETS_BY_TYPE.values()} == FACETS_BY_TYPE


def test_lists_sort_by_listed_fields_only():
    """An edit that changes no listed field leaves every list as it was (the
    loader then purges no list): so every order must sort by listed fields."""
    for ordering in ORDERINGS.values():
        assert ordering.key in LISTED_FIELDS, ordering.name
