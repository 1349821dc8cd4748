"""Queries that select every field, written from the schema the code builds, so
a field added to the schema is selected by the tests that use them."""

from __future__ import annotations

import functools

from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    build_schema,
)
from graphql import get_named_type as named

from api.operation.schema import sdl


@functools.cache
def schema() -> GraphQLSchema:
    return build_schema(sdl())


def object_type(name: str) -> GraphQLObjectType:
    found = schema().get_type(name)
    assert isinstance(found, GraphQLObjectType), name
    return found


def every_field(of: GraphQLOutputType, path: tuple[str, ...] = ()) -> str:
    """A selection set of every field of ``of`` and, below it, of every object
    type it reaches (arguments left at their defaults); an interface gets an
    inline fragment per type that implements it, its fields aliased by type
    (``Topic_name: name``) so that same-named fields of other types never clash.

    The schema is cyclic (an article's provider lists articles), so a type met
    again on the way down gets only its scalar fields: each type's every field
    is still selected somewhere, at the first place it is met.
    """
    current = named(of)
    if isinstance(current, GraphQLInterfaceType):
        fragments = [
            f"... on {t.name} {{ {' '.join(_fields(t, path, alias=t.name))} }}"
            for t in schema().get_possible_types(current)
        ]
        return "{ __typename " + " ".join(fragments) + " }"
    return "{ " + " ".join(_fields(current, path)) + " }"


def _fields(current: object, path: tuple[str, ...], alias: str = "") -> list[str]:
    assert isinstance(current, GraphQLObjectType), current
    again = current.name in path
    parts = []
    for name, field in current.fields.items():
        key = f"{alias}_{name}: {name}" if alias else name
        if not isinstance(named(field.type), GraphQLObjectType):
            parts.append(key)
        elif not again:
            parts.append(f"{key} {every_field(field.type, (*path, current.name))}")
    return parts
