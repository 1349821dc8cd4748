"""Compiled execution coerces plain scalar variables itself
(``api.execution.compiled._quick_variables``): whatever it takes, it must
coerce as graphql-core's ``get_variable_values`` does, and leave it the rest."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values

from api.execution.compiled import _quick_signatures, _quick_variables
from api.operation.schema import build_schema

SCHEMA = build_schema()._schema
QUERY = """query($id: ID!, $url: String, $first: Int, $flag: Boolean) {
  article(id: $id, webUrl: $url) { related(first: $first) { title } }
  articles @include(if: $flag) { nodes { id } } }"""

CASES: list[dict[str, Any]] = [
    {"id": "a"},
    {"id": "a", "url": "https://x", "first": 3, "flag": True},
    {"id": "a", "first": 2**31 - 1},
    {"id": "a", "first": -(2**31)},
    {"id": "a", "first": 2**31},  # over 32 bits: refused by Int
    {"id": "a", "first": True},  # a bool is not an Int
    {"id": "a", "first": 1.0},
    {"id": 7},  # an ID given as an int becomes text
    {"id": None},
    {},
    {"id": "a", "url": None, "flag": None},
    {"id": "a", "flag": "yes"},
    {"id": ["a"]},
    {"id": "a", "unknown": {"x": 1}},
]


def _operation(query: str) -> OperationDefinitionNode:
    definition = parse(query).definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    return definition


@pytest.mark.parametrize("inputs", CASES)
def test_what_it_coerces_it_coerces_as_graphql_core(inputs: dict[str, Any]) -> None:
    operation = _operation(QUERY)
    signatures = _quick_signatures(SCHEMA, operation)
    assert signatures is not None
    quick = _quick_variables(signatures, inputs)
    theirs = get_variable_values(SCHEMA, operation.variable_definitions, dict(inputs))
    if quick is None:
        return  # left to graphql-core
    assert not isinstance(theirs, list), theirs
    assert quick.coerced == theirs.coerced
    assert {k: type(v) for k, v in quick.coerced.items()} == {
        k: type(v) for k, v in theirs.coerced.items()
    }
    assert _sources(quick.sources) == _sources(theirs.sources)


def _sources(sources: dict[str, Any]) -> dict[str, Any]:
    """Sources compared by what they say (a signature's wrapping types are
    made anew for each reading, and compare by identity)."""
    return {
        name: (s.signature.name, str(s.signature.type), s.signature.default, s.value)
        for name, s in sources.items()
    }


def test_it_takes_the_common_case() -> None:
    operation = _operation(QUERY)
    signatures = _quick_signatures(SCHEMA, operation)
    assert signatures is not None
    assert _quick_variables(signatures, CASES[1]) is not None
    assert _quick_variables(signatures, {"id": "a"}) is not None  # nullable ones left out


@pytest.mark.parametrize(
    "query",
    [
        "query($f: ArticleFilter) { articles(filter: $f) { nodes { id } } }",
        'query($id: ID! = "x") { article(id: $id) { id } }',
        "query($ids: [ID!]) { article(id: $ids) { id } }",
    ],
)
def test_other_variables_are_left_to_graphql_core(query: str) -> None:
    assert _quick_signatures(SCHEMA, _operation(query)) is None
