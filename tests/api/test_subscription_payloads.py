"""A subscription's payload answered by plan equals ordinary execution's.

Differential, as tests/api/test_compiled.py is for queries: selections on
``Article`` generated from the schema (tests/api/test_compiled_queries.py's
builder: nested fields, aliases, fragments, directives, arguments valid or
not) under ``articlePublished``, each answered for an article of the corpus
(the sample articles, a generated corpus, and documents the loader would
never write) by the plan ``api.execution.subscription`` runs and by
graphql-core's ``execute_subscription_event``, as the admin and as anyone.
Data, and errors as the client sees them, must be equal. Both engines;
NEWSGRAPH_COMPILED_EXAMPLES bounds the examples (half of them here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
from typing import Any

import pytest
from graphql import GraphQLObjectType, parse
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from api.execution.plan import Fallback
from api.execution.subscription import Payloads, share_key
from api.live.feed import PROJECTION
from api.operation.masking import processed
from api.operation.schema import build_schema
from api.schema.context import Context
from bench.hostile import heavy_subscription
from core.config import Settings
from core.store import Store
from loaders import load_paths
from tests.api.fixtures import without_cost_limits
from tests.api.test_compiled import corpus  # noqa: F401 (a fixture)
from tests.api.test_compiled_queries import SCHEMA, Builder, Values
from tests.api.test_cost_actual import without_automatic_collection
from tests.articles import write_linked_corpus

EXAMPLES_PER_ENGINE = int(os.environ.get("NEWSGRAPH_COMPILED_EXAMPLES", "300")) // 2

ARTICLE = SCHEMA.get_type("Article")
assert isinstance(ARTICLE, GraphQLObjectType)


@st.composite
def subscriptions(draw: Any, values: Values) -> tuple[str, dict[str, Any]]:
    """A subscription selecting a generated selection on each article it is sent."""
    builder = Builder(draw, values)
    depth = draw(st.integers(1, 3))
    body = builder.selection(ARTICLE, depth)
    if draw(st.booleans()):  # related(first, filter) in half of them: it narrows by plan too
        body = body[:-1] + builder.field(ARTICLE, "related", depth) + " }"
    field = draw(st.sampled_from(["articlePublished", "sent: articlePublished"]))
    head = f"subscription S({', '.join(builder.definitions)})" if builder.definitions else ""
    text = f"{head or 'subscription S'} {{ {field} {body} }}"
    return "\n".join([text, *builder.fragments]), builder.variables


class Both:
    """A subscription's payloads, by plan and ordinarily, on one store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.schema = build_schema(dataclasses.replace(settings, compiled=True))
        self.store = store
        self.modes: list[str] = []

    def payloads(self, query: str, variables: dict[str, Any], admin: bool) -> Payloads | None:
        document = parse(query)
        executor = self.schema.execution_context_class.build(
            self.schema._schema, document, raw_variable_values=variables
        )
        if isinstance(executor, list):  # refused variables: the subscription never starts
            return None
        # Slots and a time limit no slow store meets: only the answers may differ.
        gateway = Gateway(self.store, 60_000, StoreSlots(16, 600_000))
        key = share_key(query, None, variables, admin)
        plans = self.schema.caches.plans
        return Payloads(key, self.schema, plans, query, document, executor, gateway, admin)

    async def answers(self, payloads: Payloads, article: dict[str, Any]) -> tuple[Any, Any]:
        """The plan's answer (or ordinary execution's where it falls back, as
        served), and ordinary execution's."""
        plan = payloads.plan()
        ours = None
        if plan is not None:
            try:
                ours = await payloads.by_plan(plan, article, fresh(payloads))
                self.modes.append("compiled")
            except Fallback:
                self.modes.append("fallback")
        else:
            self.modes.append("ordinary")
        served = await payloads.answer(article)
        theirs = await payloads.ordinarily(article, fresh(payloads))
        if ours is not None:
            assert _seen(served) == _seen(ours)
        return _seen(served), _seen(theirs)


def fresh(payloads: Payloads) -> Context:
    """A context of its own for one answer, as :meth:`Payloads.answer` makes."""
    return Context(payloads.gateway, payloads.admin)


def _seen(result: Any) -> dict[str, Any]:
    """What a client reads: data, and the errors as masked, in a stable order."""
    errors = sorted((e.formatted for e in processed(result.errors) or []), key=repr)
    return {"data": result.data, "errors": errors}


def _articles(store: Store) -> list[dict[str, Any]]:
    """The corpus's articles as the feed sends them."""
    return list(store.articles.find({}, PROJECTION).sort("_id", 1))


def test_payloads_by_plan_equal_ordinary_execution(
    corpus: Values,  # noqa: F811 (the fixture)
    store: Store,
    settings: Settings,
) -> None:
    both = Both(store, settings)
    articles = _articles(store)
    # Mostly articles with several related stories, which a selection narrows.
    cited = [i for i, a in enumerate(articles) if len(a.get("related") or []) >= 2]
    assert cited

    @given(
        subscription=subscriptions(corpus),
        admin=st.booleans(),
        which=st.one_of(st.sampled_from(cited), st.integers(0, len(articles) - 1)),
    )
    @examples(
        max_examples=EXAMPLES_PER_ENGINE,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(subscription: tuple[str, dict[str, Any]], admin: bool, which: int) -> None:
        query, variables = subscription
        payloads = both.payloads(query, variables, admin)
        if payloads is None:
            return
        ours, theirs = asyncio.run(both.answers(payloads, articles[which]))
        gc.collect(1)  # as tests/api/test_compiled.py: unawaited siblings finalized here
        assert ours == theirs, (query, variables, articles[which]["_id"])

    without_automatic_collection(check)
    # Most payloads must really run by plan, or this proves little.
    assert both.modes.count("compiled") >= 0.6 * len(both.modes), both.modes


def test_the_heavy_shape_runs_by_plan_and_answers_alike(
    store: Store, settings: Settings, tmp_path: Any
) -> None:
    """The attack's shape (bench/hostile.py): related(first: 6) { article { … } }
    five deep over articles that cite each other."""
    linked = write_linked_corpus(tmp_path / "linked")
    assert load_paths(store, [linked], settings).ok
    both = Both(store, without_cost_limits(settings))
    query = heavy_subscription()
    for admin in (False, True):
        payloads = both.payloads(query, {}, admin)
        assert payloads is not None and payloads.plan() is not None
        article = _articles(store)[0]
        ours, theirs = asyncio.run(both.answers(payloads, article))
        assert ours == theirs and not ours["errors"]
        assert ours["data"]["articlePublished"]["related"][0]["article"]["related"]
    assert both.modes == ["compiled", "compiled"]


@pytest.mark.parametrize("stored", ["true", "$stored"])
def test_a_filter_that_asks_the_store_falls_back(
    store: Store, settings: Settings, tmp_path: Any, stored: str
) -> None:
    """``related(filter: {stored: …})`` asks the store per parent: the plan
    leaves it to ordinary execution, literal or variable."""
    linked = write_linked_corpus(tmp_path / "linked", n=8, links=3)
    assert load_paths(store, [linked], settings).ok
    head = "subscription($stored: Boolean)" if stored.startswith("$") else "subscription"
    query = f"{head} {{ articlePublished {{ related(filter: {{stored: {stored}}}) {{ title }} }} }}"
    both = Both(store, settings)
    payloads = both.payloads(query, {"stored": True}, False)
    assert payloads is not None
    ours, theirs = asyncio.run(both.answers(payloads, _articles(store)[0]))
    assert ours == theirs and len(ours["data"]["articlePublished"]["related"]) == 3
    assert both.modes == ["fallback"]
