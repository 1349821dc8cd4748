"""Compiled execution answers exactly as ordinary execution does.

Differential: each generated operation (tests/api/test_compiled_queries.py)
is executed by a schema with compiled plans and by one without, on the same
store, and the answers must be equal: data, and errors with their messages,
paths, locations and codes (after masking, as clients see them). The corpus
is the sample articles, a generated one, and documents the loader would never
write (a null title, an Int out of range, a list item that is null, a
provider that is not an object), on both engines. NEWSGRAPH_COMPILED_EXAMPLES
bounds the examples per engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
from datetime import datetime
from typing import Any

import pytest
from graphql import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from api.execution.compiled import Plans
from api.execution.plan.nodes import CHECKED_KEPT, KEYED_TEXT_MAX, Plan
from api.operation.schema import build_schema
from api.schema.context import Context
from api.schema.nodes import facet_id
from api.telemetry import stats as observe
from bench.gen import generate
from core.config import Settings
from core.document import article_id
from core.store import Store
from loaders import load_paths
from tests.api.fixtures import without_cost_limits
from tests.api.selections import every_field, object_type
from tests.api.test_compiled_queries import Values, operations
from tests.articles import EXAMPLES

EXAMPLES_PER_ENGINE = int(os.environ.get("NEWSGRAPH_COMPILED_EXAMPLES", "300"))

ODD_URLS = [f"https://odd.example/{i}" for i in range(5)]


def odd_documents() -> list[dict[str, Any]]:
    """Stored shapes the loader never writes, to exercise null propagation and
    leaf coercion errors: each is published; the null title is the oldest
    article, the others the newest (so the default order meets them first)."""
    base = {"published": True, "category": "odd", "type": "article", "quality": 1, "heat": 1}
    docs = [
        {"title": None},  # null where the schema says String!
        {"title": "Huge heat", "heat": 2**40},  # over GraphQL's 32-bit Int
        {"title": "Null image", "images": [None, {"url": "https://odd.example/i.jpg"}]},
        {"title": "Odd provider", "provider": "not an object", "topics": []},
        {"title": "Odd related", "related": [{"title": "no url"}, {"title": None, "webUrl": "x"}]},
    ]
    return [
        {
            **base,
            **doc,
            "_id": article_id(url),
            "webUrl": url,
            "publishedDateTime": datetime(1990 if i == 0 else 2100, 1, 1 + i),
        }
        for i, (url, doc) in enumerate(zip(ODD_URLS, docs, strict=True))
    ]


@pytest.fixture
def corpus(store: Store, settings: Settings, tmp_path: Any) -> Values:
    return load_corpus(store, settings, tmp_path)


def load_corpus(store: Store, settings: Settings, tmp_path: Any) -> Values:
    """The sample articles, 30 generated ones and the odd documents, loaded
    into ``store``: the values operations are drawn from."""
    generated = tmp_path / "generated"
    generate(30, generated, seed=13)
    report = load_paths(store, [EXAMPLES, generated], settings)
    assert report.ok, report.failures
    store.articles.insert_many(odd_documents())
    docs = list(store.articles.find({}, {"related": 0, "body": 0}))
    values = Values(
        ids=[d["_id"] for d in docs[::3]] + ["0" * 24],
        urls=[d["webUrl"] for d in docs[::4]],
        topics=sorted({t for d in docs for t in d.get("topics") or ()})[:8],
        domains=sorted(
            {d["provider"]["domain"] for d in docs if isinstance(d.get("provider"), dict)}
        )[:6],
        categories=sorted({d["category"] for d in docs if d.get("category")}),
        types=sorted({d["type"] for d in docs if d.get("type")}),
        words=[w for d in docs[:6] for w in (d.get("title") or "").split()[:1]],
    )
    values.node_ids = [
        *(facet_id("Provider", domain) for domain in values.domains[:2]),
        *(facet_id("Topic", topic) for topic in values.topics[:2]),
        facet_id("Topic", "Nothing"),
    ]
    values.cursors = [*asyncio.run(_cursors(store, settings)), "not-a-cursor"]
    return values


async def _cursors(store: Store, settings: Settings) -> list[str]:
    """A cursor from the first page of every order (and of each facet list)."""
    schema = build_schema(dataclasses.replace(settings, compiled=False))
    query = """{ a: articles(first: 2) { pageInfo { endCursor } }
      b: articles(first: 2, orderBy: HEAT_DESC) { pageInfo { endCursor } }
      c: articles(first: 2, orderBy: QUALITY_DESC) { pageInfo { endCursor } }
      d: articles(first: 2, orderBy: PUBLISHED_ASC) { pageInfo { endCursor } }
      p: providers(first: 2) { pageInfo { endCursor } }
      t: topics(first: 2) { pageInfo { endCursor } } }"""
    result = await schema.execute(query, context_value=Context(Gateway(store, 5000)))
    assert result.data, result.errors
    return [page["pageInfo"]["endCursor"] for page in result.data.values()]


class Differential:
    """The two ways of executing, side by side on one store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.compiled = build_schema(dataclasses.replace(settings, compiled=True))
        self.ordinary = build_schema(dataclasses.replace(settings, compiled=False))
        self.modes: list[str] = []

    async def answers(
        self, query: str, variables: dict[str, Any], admin: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # A slow store must not make them differ: no time limit that a full
        # scan on the wire server could meet, and no request shed for want of
        # a slot. Slots of their own for each example's event loop: a call
        # abandoned as one example's loop closes gives its slot back to no one.
        slots = StoreSlots(self.settings.store_concurrency, 600_000)
        gateway = Gateway(self.store, 60_000, slots)
        # Twice: at first sight and with its document, price and plan
        # cached; each must answer alike, to the last extension.
        twice = []
        for _ in range(2):
            stats = observe.RequestStats()
            token = observe._current.set(stats)
            try:
                twice.append(
                    await self.compiled.execute(
                        query, variable_values=variables, context_value=Context(gateway, admin)
                    )
                )
            finally:
                observe._current.reset(token)
            self.modes.extend(stats.executions)
        first, ours = twice
        assert _sent(first) == _sent(ours), query
        theirs = await self.ordinary.execute(
            query, variable_values=variables, context_value=Context(gateway, admin)
        )
        return _answer(ours), _answer(theirs)


def _answer(result: Any) -> dict[str, Any]:
    """What a client reads of a result: data, and each error as sent. Errors in
    a stable order: ordinary execution orders them as its concurrent fields
    happen to finish, which a slow store changes from one run to the next (the
    spec gives their order no meaning)."""
    errors = sorted((e.formatted for e in result.errors or []), key=repr)
    return {"data": result.data, "errors": errors}


def _sent(result: Any) -> dict[str, Any]:
    """:func:`_answer` and the extensions: all of them for an answer without
    errors. With errors, ordinary execution abandons the fields still running
    when one nulls the answer, so how many store calls had started depends
    on how fast the store answered: that count is left out."""
    extensions = result.extensions
    if result.errors and extensions and "cost" in extensions:
        cost = extensions["cost"]
        extensions = {**extensions, "cost": {**cost, "actual": {**cost["actual"]}}}
        extensions["cost"]["actual"].pop("storeCalls", None)
    return _answer(result) | {"extensions": extensions}


@pytest.fixture
def differential(corpus: Values, store: Store, settings: Settings) -> Differential:
    return Differential(store, settings)


def test_compiled_answers_equal_ordinary_execution(
    corpus: Values, differential: Differential
) -> None:
    @given(operation=operations(corpus), admin=st.booleans())
    @settings(
        max_examples=EXAMPLES_PER_ENGINE,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(operation: tuple[str, dict[str, Any]], admin: bool) -> None:
        query, variables = operation
        ours, theirs = asyncio.run(differential.answers(query, variables, admin))
        # A field refused while starting leaves graphql-core's coroutines for
        # its siblings unawaited: with automatic collection off, everything this
        # example made is in the youngest generations, finalized here rather
        # than in whatever frame the collector would next run in.
        gc.collect(1)
        assert ours == theirs, query

    gc.disable()
    try:
        check()
    finally:
        gc.enable()
        gc.collect()
    modes = differential.modes
    # Most operations must really be compiled, or this proves little.
    assert modes.count("compiled") >= 0.6 * len(modes), modes


@pytest.mark.parametrize("order", ["PUBLISHED_DESC", "PUBLISHED_ASC", "HEAT_DESC"])
def test_every_field_answers_alike(
    corpus: Values, store: Store, settings: Settings, engine: str, order: str
) -> None:
    """Every field, over the first page of each order that meets the odd
    documents, beside the generated operations' samples of them."""
    if engine == "wire" and order != "PUBLISHED_DESC":
        pytest.skip("one order on the wire server, whose scans make each take a minute")
    differential = Differential(store, without_cost_limits(settings))
    lists = {
        "articles": f"articles(first: 12, orderBy: {order})",
        "providers": "providers(first: 6)",
        "topics": "topics(first: 6)",
    }
    queries = [
        f"{{ {call} {every_field(object_type('Query').fields[name].type)} }}"
        for name, call in lists.items()
    ]
    article = every_field(object_type("Query").fields["article"].type)
    queries += [f'{{ article(id: "{i}") {article} }}' for i in corpus.ids[:3]]
    for query in queries:
        for admin in (False, True):
            ours, theirs = asyncio.run(differential.answers(query, {}, admin))
            assert ours == theirs, query
    # The odd documents make several field errors, left to ordinary execution.
    assert differential.modes.count("compiled") >= len(differential.modes) / 2


# -- serving: counted, refused first, switched off -------------------------------


def _executions(client: Any) -> dict[str, float]:
    text = client.get("/metrics").text
    found = {}
    for mode in ("compiled", "fallback"):
        line = f'newsgraph_graphql_execution_total{{mode="{mode}"}} '
        found[mode] = sum(
            float(row[len(line) :]) for row in text.splitlines() if row.startswith(line)
        )
    return found


def test_each_operation_is_counted_by_how_it_ran(gql: Any, api_settings: Settings) -> None:
    if not api_settings.compiled:
        pytest.skip("the suite runs with NEWSGRAPH_COMPILED=false")
    assert gql("{ articles(first: 2) { nodes { title } } }")["articles"]["nodes"]
    assert gql("{ __schema { queryType { name } } }")["__schema"]
    assert _executions(gql.client) == {"compiled": 1.0, "fallback": 1.0}


def test_a_query_over_budget_is_refused_before_any_plan_runs(gql: Any) -> None:
    message = gql.error(
        "{ articles(first: 100) { nodes { related { article { related "
        "{ article { related { article { id } } } } } } } } }"
    )
    assert message.startswith("query too costly")
    assert _executions(gql.client) == {"compiled": 0.0, "fallback": 0.0}


def test_compiled_execution_can_be_switched_off(loaded: Store, api_settings: Settings) -> None:
    from starlette.testclient import TestClient

    from api.app import create_app
    from tests.api.fixtures import GQL

    settings = dataclasses.replace(api_settings, compiled=False)
    with TestClient(create_app(settings, loaded)) as client:
        assert GQL(client)("{ articles(first: 2) { totalCount } }")["articles"]["totalCount"]
        assert _executions(client) == {"compiled": 0.0, "fallback": 0.0}


def test_explain_prints_the_store_calls_and_the_shaping() -> None:
    from click.testing import CliRunner

    from newsgraph.cli import cli

    query = "query($n: Int) { articles(first: $n) { totalCount nodes { id title } } }"
    result = CliRunner().invoke(cli, ["explain", query, "--variables", '{"n": 5}'])
    assert result.exit_code == 0, result.output
    assert 'find articles {"published":true} projection {"publishedDateTime":1,"title":1}' in (
        result.output
    )
    assert "limit 6" in result.output and 'count articles {"published":true}' in result.output
    assert "id: ID! <- _id" in result.output
    refused = CliRunner().invoke(cli, ["explain", "{ articles(first: 500) { totalCount } }"])
    assert "refused: first may be at most 100" in refused.output


def test_checked_arguments_kept_per_plan_are_bounded_whatever_clients_send(loaded) -> None:
    # Arguments read from variables are kept checked by their values: a client
    # sending endless distinct values, or very long ones, must not grow memory.
    query = "query($u: String) { article(webUrl: $u) { title } }"
    plans, schema, document = Plans(), build_schema(), parse(query)
    LONG = "https://nowhere.example/" + "x" * KEYED_TEXT_MAX

    async def ask(url: str) -> None:
        context = Context(Gateway(loaded, 5000))
        await plans.execute(schema, query, document, {"u": url}, None, context)

    async def scenario() -> None:
        for i in range(CHECKED_KEPT + 40):
            await ask(f"https://nowhere.example/{i}")
        await ask(LONG)

    asyncio.run(scenario())
    (plan,) = plans.plans()
    assert isinstance(plan, Plan)
    assert len(plan.checked) == CHECKED_KEPT
    assert not any((str, LONG) in key for key in plan.checked)
    newest = f"https://nowhere.example/{CHECKED_KEPT + 39}"
    assert any((str, newest) in key for key in plan.checked)  # short ones are kept
