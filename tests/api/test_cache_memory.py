"""Memory a client can make a worker keep: bounded by bytes in every cache
that query texts fill (documents, prices, plans and what a plan keeps: its
document, its checked arguments), whatever the client sends.

Memory is measured with tracemalloc, in-process, on the embedded engine (the
caches are the worker's; the engine only answers): estimates are checked
against what the objects really hold, and thousands of distinct documents
against the bounds the README states.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import random
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import parse

from api.bounded import deep_size
from api.data.articles import article_page
from api.data.gateway import Gateway
from api.execution.compiled import Plans
from api.execution.plan import Unplannable
from api.execution.plan.state import ARTICLE_ID_URL_MAX, State, _cached_article_id
from api.operation.budget import CostCache
from api.operation.cost import query_cost
from api.operation.schema import Schema, build_schema
from api.schema.context import Context
from bench import queries
from bench.hostile import plan_flood
from core.config import Settings
from core.document import article_id
from core.store import Store, connect
from loaders import load_paths
from tests.articles import EXAMPLES

MB = 1_000_000


@pytest.fixture(scope="module")
def examples() -> Iterator[Store]:
    """The sample articles on the embedded engine (what is measured here is
    the worker's memory, the same whichever engine answers)."""
    settings = Settings(db_name=f"t_{uuid.uuid4().hex[:12]}")
    store = connect(settings)
    assert load_paths(store, [EXAMPLES], settings).ok
    yield store
    store.db.client.drop_database(settings.db_name)
    store.close()


def execute(schema: Schema, store: Store, query: str, variables: dict | None = None) -> Any:
    return asyncio.run(schema.execute(query, variables, Context(Gateway(store, 5000))))


def traced(work: Any) -> int:
    """Bytes still allocated after ``work()``, garbage collected, under tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


NESTED = (
    "{ topics(first: 5) { totalCount nodes { name articleCount articles(first: 3, "
    "orderBy: HEAT_DESC) { totalCount pageInfo { endCursor hasNextPage } edges { cursor "
    "node { id title provider { name articleCount } topics { name } } } } } } }"
)
SHAPES = {
    "mobile": queries.MOBILE,
    "front page": queries.FRONT_PAGE,
    "facets": queries.FACETS,
    "filtered": queries.FILTERED,
    "nested": NESTED,
    "28 one-article pages": plan_flood(random.Random(1))["query"],
    "one field": "{ __typename }",
}


#: Plans measured at once by the test below.
COPIES = 5


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_plan_is_not_smaller_than_its_estimate(examples: Store, name: str) -> None:
    query = SHAPES[name]
    schema = build_schema(Settings(db_name=examples.db.name))
    first = examples.articles.find_one({}, {"_id": 1})
    variables = {"id": first["_id"], "topic": "Health", "domain": "x.example"}
    definitions = parse(query).definitions[0].variable_definitions or ()
    declared = {v.variable.name.value for v in definitions}
    variables = {k: v for k, v in variables.items() if k in declared}

    def plan(plans: Plans) -> None:
        # The document is parsed here: the plan's fields hold all of it.
        context = Context(Gateway(examples, 5000))
        asyncio.run(plans.execute(schema, query, parse(query), variables, None, context))

    plan(Plans())  # whatever is made once per process, made
    # Several plans, each in its own cache, measured together: a shared table
    # that happens to grow while one is made (an interning dict, a statement
    # cache) is counted whole, and would be one plan's error.
    copies = [Plans(max_bytes=10**9) for _ in range(COPIES)]
    held = traced(lambda: [plan(plans) for plans in copies]) / COPIES
    (kept,) = copies[0].plans()
    assert held <= kept.bytes <= 1.6 * held + 5000


def distinct_documents(count: int, ids: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``count`` valid documents, each a text never sent before, of the shapes
    that fill each cache: prices keyed by a variable, plans with checked
    arguments keyed by another, pages, facets, lookups, and every 40th the
    28 one-article pages of the 1,000-document attack (each ten times as slow
    to answer as the others, and as large as a kept entry may be)."""
    rng = random.Random(5)
    for i in range(count):
        kind = i % 10
        if i % 40 == 0:
            yield plan_flood(rng)["query"], {}
        elif kind == 0:
            yield f'{{ n{i}: node(id: "{ids[i % len(ids)]}") {{ id }} }}', {}
        elif kind in (1, 2, 3):
            yield (
                f"query Q{i}($n: Int) {{ articles(first: $n) {{ totalCount nodes {{ id }} }} }}",
                {"n": 1 + i % 7},
            )
        elif kind in (4, 5):
            yield f"{{ t{i}: topics(first: 2) {{ nodes {{ name articleCount }} }} }}", {}
        elif kind in (6, 7):
            yield (
                f"query($id: ID!) {{ a{i}: article(id: $id) {{ title related {{ title }} }} }}",
                {"id": ids[i % len(ids)]},
            )
        else:
            yield f"{{ p{i}: providers(first: 1) {{ nodes {{ name domain }} }} }}", {}


#: The caches' bounds here: a thousandth of their defaults' scale, so that
#: thousands of small documents fill each many times over.
SMALL = {"query_cache_bytes": MB, "plan_cache_bytes": MB, "persisted_queries_max_bytes": MB // 4}
#: What else a worker keeps after thousands of requests: the
#: modules' own lazily made caches (strawberry's, graphql-core's, logging's).
SLACK = MB


@pytest.mark.parametrize(
    ("compiled", "documents"), [(True, 2000), (False, 600)], ids=["compiled", "ordinary"]
)
def test_thousands_of_distinct_documents_hold_no_more_than_the_caches_bounds(
    examples: Store, compiled: bool, documents: int
) -> None:
    settings = dataclasses.replace(Settings(db_name=examples.db.name), compiled=compiled, **SMALL)
    schema = build_schema(settings)
    ids = [d["_id"] for d in examples.articles.find({}, {"_id": 1})]

    async def send(count: int) -> None:
        for query, variables in distinct_documents(count, ids):
            result = await schema.execute(query, variables, Context(Gateway(examples, 5000)))
            assert result.errors is None, result.errors

    async def flood() -> int:
        await send(41)  # each kind once: what is made once per process, made
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            await send(documents)
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - start
        finally:
            tracemalloc.stop()

    grown = asyncio.run(flood())
    caches = schema.caches
    bound = settings.query_cache_bytes * 5 // 4 + settings.persisted_queries_max_bytes
    if compiled:
        bound += settings.plan_cache_bytes
        assert caches.plans is not None and caches.plans.bytes <= settings.plan_cache_bytes
    assert caches.documents.bytes <= settings.query_cache_bytes
    assert caches.costs.bytes <= settings.query_cache_bytes // 4
    print(f"grown {grown / MB:.2f} MB, bound {bound / MB:.2f} MB")
    assert grown <= bound + SLACK


def test_a_plan_is_counted_again_as_its_checked_arguments_grow(examples: Store) -> None:
    query = "query($id: ID!) { article(id: $id) { title } }"
    schema = build_schema(Settings(db_name=examples.db.name))
    plans, document = Plans(), parse(query)

    async def ask(ids: list[str]) -> None:
        for i in ids:
            context = Context(Gateway(examples, 5000))
            await plans.execute(schema, query, document, {"id": i}, None, context)

    asyncio.run(ask(["0" * 24]))
    (plan,) = plans.plans()
    others, first = plans.bytes - plan.bytes, plan.bytes
    asyncio.run(ask([f"{i:024x}" for i in range(1, 101)]))
    assert len(plan.checked) == 101
    assert plan.bytes > first + 100 * 100  # each id and its checked key, at least
    assert plans.bytes == others + plan.bytes


def test_a_plan_cache_holds_no_more_than_its_bytes_however_large_the_plans(
    examples: Store,
) -> None:
    bound = Settings().plan_cache_bytes
    schema = build_schema(Settings(db_name=examples.db.name))
    plans = Plans(max_bytes=bound)
    rng = random.Random(3)

    async def flood() -> None:
        for _ in range(40):  # about 1 MB each: two and a half times the bound in all
            query = plan_flood(rng)["query"]
            context = Context(Gateway(examples, 5000))
            await plans.execute(schema, query, parse(query), {}, None, context)
            assert plans.bytes <= bound

    asyncio.run(flood())
    assert 10 <= len(plans.plans()) <= 16
    # Over a sixteenth of the bound, a plan is built for its request and not kept.
    assert all(plan.bytes <= bound // 16 for plan in plans.plans())
    small = Plans(max_bytes=bound // 4)
    query = plan_flood(rng)["query"]
    context = Context(Gateway(examples, 5000))
    asyncio.run(small.execute(schema, query, parse(query), {}, None, context))
    assert not small.plans()


def test_a_query_that_cannot_be_planned_is_remembered_in_a_few_words(examples: Store) -> None:
    query = "{ __schema { queryType { name } } }"
    schema = build_schema(Settings(db_name=examples.db.name))
    plans = Plans()
    for _ in range(2):
        with pytest.raises(Unplannable, match="introspection"):
            context = Context(Gateway(examples, 5000))
            asyncio.run(plans.execute(schema, query, parse(query), {}, None, context))
    kept = list(plans._entries.values())
    # Not the exception, whose traceback's frames would hold the document.
    assert not any(isinstance(entry, BaseException) for entry in kept)
    assert plans.bytes < 2000 and not plans.plans()


# -- prices, checked arguments, article ids ----------------------------------------


def test_prices_are_kept_within_their_bytes_whatever_the_variables() -> None:
    schema = build_schema()
    costs = CostCache(max_bytes=200_000)
    query = "query($n: Int) { articles(first: $n) { nodes { id } } }"
    document = parse(query)
    for i in range(100):  # each priced under a value 10 kB long: 5 times the bound
        value = f"{i:05}" + "x" * 10_000
        costs.cost(schema._schema, query, document, {"n": value}, None)
        assert costs.bytes <= 200_000
    assert 5 <= len(costs) < 40
    pages = " ".join(f"a{i:03}: articles(first: 1) {{ totalCount }}" for i in range(30))
    wide = "{ " + pages + " }"
    costs.cost(schema._schema, wide, parse(wide), None, None)
    assert costs.bytes <= 200_000


@functools.cache
def _schema() -> Any:
    """One schema for the test below: it measures a price, not a schema's build
    (whose caches, made again with each build, held 22 kB more in one
    clone-CI's order of tests)."""
    return build_schema()._schema


@pytest.mark.parametrize(
    "value",
    [
        lambda: query_cost(_schema(), parse(NESTED)),
        lambda: article_page(None, "PUBLISHED_DESC", 20, None, {"topics": "Health"}, admin=False),
        lambda: {"words": ["tram"] * 20, "text": "x" * 500, "n": 10**30},
    ],
    ids=["price", "page", "plain"],
)
def test_a_structure_is_not_smaller_than_its_estimate(value: Any) -> None:
    value()  # whatever is made once per process (a schema's own caches), made
    made: list[Any] = []
    held = traced(lambda: made.append(value()))
    # Shared constants (an ordering, interned words) are counted: small entries over.
    assert held - 100 <= deep_size(made[0]) <= 3 * held + 2000


def test_article_ids_are_kept_for_short_urls_only() -> None:
    state = State(Context(Gateway(connect(Settings(db_name="t_ids")), 5000)))
    short = "https://www.example.com/a/short/one"
    long = "https://www.example.com/" + "x" * ARTICLE_ID_URL_MAX
    before = _cached_article_id.cache_info().currsize
    assert state.article_id(short) == article_id(short)
    assert state.article_id(long) == article_id(long)
    assert _cached_article_id.cache_info().currsize <= before + 1
    assert state.article_id(short) == article_id(short)
    hits = _cached_article_id.cache_info().hits
    state.article_id(long)
    assert _cached_article_id.cache_info().hits == hits
