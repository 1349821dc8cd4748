"""The completers compiled plans write for each object selection
(``api.execution.plan.shape``): one shape's code is compiled once and shared,
and the code kept is bounded by its estimated bytes, which are not under
what it takes."""

from __future__ import annotations

import gc
import inspect
import tracemalloc
from datetime import UTC, datetime
from types import FunctionType, SimpleNamespace
from typing import Any

from graphql import OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values

from api.execution.plan import Plan, build_plan, shape
from api.execution.plan.fields import topic_objects
from api.execution.plan.nodes import Failure, Fallback
from api.execution.plan.state import State
from api.operation.schema import build_schema
from api.schema.caching import Keys
from api.schema.context import Context
from api.schema.pagination import connection
from bench.queries import FRONT_PAGE, MOBILE

SCHEMA = build_schema()


def _plan(query: str, variables: dict[str, str]) -> Plan:
    document = parse(query)
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    coerced = get_variable_values(SCHEMA._schema, operation.variable_definitions or (), variables)
    assert not isinstance(coerced, list)
    return build_plan(SCHEMA, document, operation, coerced)


def _completers(plan: Plan) -> list[object]:
    return [f.complete for f in plan.walk() if f.selection is not None]


def test_selections_of_one_shape_share_their_code() -> None:
    first, second = _plan(MOBILE, {"id": "x"}), _plan(MOBILE, {"id": "x"})
    ours, theirs = _completers(first), _completers(second)
    assert ours and all(a is not b for a, b in zip(ours, theirs, strict=True))
    codes = [getattr(c, "__code__", None) for c in ours]
    assert codes == [getattr(c, "__code__", None) for c in theirs]
    # The article's provider and a related story's are the same shape.
    assert len(set(codes)) < len(codes)


def test_the_code_kept_is_bounded_by_bytes() -> None:
    for n in range(shape.MAKERS_KEPT + 50):  # more distinct shapes than it keeps
        aliases = " ".join(f"a{n}_{i}: title" for i in range(3))
        _plan(f"{{ articles(first: 1) {{ nodes {{ {aliases} }} }} }}", {})
    assert len(shape._makers) <= shape.MAKERS_KEPT
    assert shape._makers.currsize <= shape.MAKERS_BYTES


def test_a_makers_estimate_is_not_under_what_it_holds() -> None:
    _plan(FRONT_PAGE, {})  # whatever else is made once, made
    shape._makers.clear()

    def held() -> int:
        gc.collect()
        tracemalloc.start()
        try:
            plan = _plan(FRONT_PAGE, {})
            gc.collect()
            size = tracemalloc.get_traced_memory()[0]
            del plan
            return size
        finally:
            tracemalloc.stop()

    cold = held()  # its code compiled and kept
    warm = held()  # its code found
    estimate = sum(size for _, size in shape._makers.values())
    assert cold - warm <= estimate <= 2 * (cold - warm)


def test_a_page_knows_whether_its_edges_are_read() -> None:
    # Edges are made (an object per item) only for a page whose selection reads them.
    (nodes_only,) = _plan(FRONT_PAGE, {}).root.fields
    assert not nodes_only.wants_edges
    query = "{ articles(first: 2) { edges { node { id } } nodes { id } } }"
    (with_edges,) = _plan(query, {}).root.fields
    assert with_edges.wants_edges
    items = [("c1", {"_id": "a"}), ("c2", {"_id": "b"})]

    async def count() -> int:
        return 2

    made, bare = connection(items, False, count), connection(items, False, count, False)
    assert [e.node for e in made.edges] == made.nodes == bare.nodes and bare.edges == []
    assert made.pageInfo == bare.pageInfo


def _outcome(complete: Any, items: Any) -> tuple[Any, ...]:
    """What completing ``items`` gives: the value or the error (its kind and
    path), and what it left in a fresh state (errors, failures, objects)."""
    state = State(Context(None))  # type: ignore[arg-type]
    try:
        value: Any = complete(items, state, None, "nodes")
    except Failure as failure:
        value = ("Failure", type(failure.raw).__name__, failure.path)
    except Fallback as fallback:
        value = ("Fallback", str(fallback))
    errors = [(e.message, e.path) for e in state.errors]
    return value, errors, state.failures, state.objects


def test_a_list_of_objects_written_out_completes_as_item_by_item() -> None:
    # The front page's `nodes` ([Article!]!) is completed by code written for
    # its selection; anything it does not take is handed to the list's own
    # function, and either way the answer, errors and counts are the same.
    (page,) = _plan(FRONT_PAGE, {}).root.fields
    assert page.selection is not None
    (nodes,) = page.selection.fields
    written = nodes.complete
    each = inspect.getclosurevars(written).nonlocals["EACH"]
    assert written is not each and written.__name__ == "complete_items"
    when = datetime(2024, 5, 1, tzinfo=UTC)

    def article(n: int, **fields: Any) -> dict[str, Any]:
        doc = {"_id": f"a{n}", "title": f"T{n}", "excerpt": None, "publishedDateTime": when}
        doc.update(provider={"name": "P", "domain": "p.example"}, topics=["x", "y"])
        return {**doc, "images": [{"url": "u", "width": 1, "height": 2}], **fields}

    cases = [
        [],
        None,
        (article(1),),  # not a list: execution's own way
        [article(1), article(2)],
        [article(1), None, article(3)],  # a null item of a non-null list
        [article(1), SimpleNamespace(**article(2))],  # an object that is not a document
        [article(1), article(2, title=None)],  # a non-null field null
        [article(1, title=None), article(2)],  # ... before the last item: counted as far as it got
        [article(1), article(2, provider="nope")],  # a nullable field's error
        [article(1), article(2, publishedDateTime="2024")],  # a value of another type
        [article(1), article(2, images=[{"url": "u", "width": 2**40, "height": 1}])],
        [article(1), article(2, topics="xy")],  # a list that is a text
    ]
    for items in cases:
        assert _outcome(written, items) == _outcome(each, items), items


def _completed(complete: Any, stored: Any, make: Any) -> tuple[Any, ...]:
    """What completing the topics ``make(stored)`` gives, with the cache keys
    it named; a raw error (not a field error) as its kind."""
    keys = Keys()
    state = State(Context(None, keys=keys))  # type: ignore[arg-type]
    try:
        value: Any = complete(make(stored), state, None, "topics")
    except Failure as failure:
        value = ("Failure", type(failure.raw).__name__, failure.path)
    except Exception as raw:
        value = ("raw", type(raw).__name__)
    errors = [(e.message, e.path) for e in state.errors]
    return value, errors, state.failures, state.objects, keys.objects


def test_topic_names_complete_as_the_getters_objects() -> None:
    # The front page's `topics { name }` is completed from the names the
    # article stores, not from the getter's {'name': n} objects; whatever is
    # stored, the answer, errors, count and cache keys are the same.
    (page,) = _plan(FRONT_PAGE, {}).root.fields
    assert page.selection is not None
    (nodes,) = page.selection.fields
    assert nodes.selection is not None
    (topics,) = [f for f in nodes.selection.fields if f.name == "topics"]
    names = shape._topic_names(topics)
    assert isinstance(names, FunctionType)
    # The article's written-out code completes its topics so.
    assert names.__code__ in {
        getattr(v, "__code__", None)
        for v in inspect.getclosurevars(nodes.complete).nonlocals.values()
    }
    cases = [
        [],
        ["x"],
        ["x", "y", "x"],  # a name twice
        ["x", ""],  # an empty name: no cache key
        ["x", None, "y"],  # a null item of a non-null list, after a name
        ["x", 5],  # a value of another type
        [None],
        None,
        ("x", "y"),  # not a list
        "xy",  # a text: its letters, as the getter makes them
        5,  # not iterable: a raw error
    ]
    for stored in cases:
        ours = _completed(names, stored, lambda s: s)
        assert ours == _completed(topics.complete, stored, topic_objects), stored
    # Other selections of topics are completed from the getter's objects.
    query = "{ articles(first: 1) { nodes { topics { __typename name } } } }"
    (page,) = _plan(query, {}).root.fields
    assert page.selection is not None and page.selection.fields[0].selection is not None
    (other,) = page.selection.fields[0].selection.fields
    assert shape._topic_names(other) is None
