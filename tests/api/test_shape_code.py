"""The completers compiled plans write for each object selection
(``api.execution.plan.shape``): one shape's code is compiled once and shared,
and the code kept is bounded by its estimated bytes, which are not under
what it takes."""

from __future__ import annotations

import gc
import tracemalloc

from graphql import OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values

from api.execution.plan import Plan, build_plan, shape
from api.operation.schema import build_schema
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
