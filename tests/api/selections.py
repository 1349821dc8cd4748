"""Queries that select every field, written from the schema the code builds, so
a field added to the schema is selected by the tests that use them."""

from __future__ import annotations

import functools

from graphql import GraphQLObjectType, GraphQLOutputType, GraphQLSchema, build_schema
from graphql import get_named_type as named

from api.schema import sdl


@functools.cache
def schema() -> GraphQLSchema:
    return build_schema(sdl())


def object_type(name: str) -> GraphQLObjectType:
    found = schema().get_type(name)
    assert isinstance(found, GraphQLObjectType), name
    return found


def every_field(of: GraphQLOutputType, path: tuple[str, ...] = ()) -> str:
    """A selection set of every field of ``of`` and, below it, of every object
    type it reaches (arguments left at their defaults).

    The schema is cyclic (an article's provider lists articles), so a type met
    again on the way down gets only its scalar fields: each type's every field
    is still selected somewhere, at the first place it is met.
    """
    current = named(of)
    assert isinstance(current, GraphQLObjectType), current
    again = current.name in path
    parts = []
    for name, field in current.fields.items():
        if not isinstance(named(field.type), GraphQLObjectType):
            parts.append(name)
        elif not again:
            parts.append(f"{name} {every_field(field.type, (*path, current.name))}")
    return "{ " + " ".join(parts) + " }"
