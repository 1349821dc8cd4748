"""Fetch only what a query selects: a MongoDB projection from the selection set.

Schema field names are the document's field names (the contract of
``core.document``): a field without a resolver reads the document key of its
own name (``api.schema.resolvers.read_field``), and the resolvers of the others
read that key too, except where the field declares another
(``api.schema.facts``). So which keys a type's fields read is derived from the
type's definition, never listed by hand: a field added to the type is fetched
when selected. ``id`` maps to ``_id``, which MongoDB always returns. Private
fields (``core.document.PRIVATE_FIELDS``) are never fetched, whatever a type
declares.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from strawberry.schema.name_converter import NameConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from api.schema.facts import answered_by
from core.document import PRIVATE_FIELDS


@functools.lru_cache(maxsize=16)  # one entry per schema built; a server builds one
def document_keys(
    definition: StrawberryObjectDefinition, names: NameConverter
) -> Mapping[str, str]:
    """The document key each field of an object type reads, by GraphQL name."""
    return MappingProxyType(
        {names.get_graphql_name(field): _source(field) for field in definition.fields}
    )


def _source(field: Any) -> str:
    """The document key a field reads: its own name, unless it declares
    another (``Article.id`` reads ``_id``)."""
    declared = answered_by(field)
    return declared.source if declared and declared.source else str(field.python_name)


def fields_under(selections: Iterable[Any], *path: str) -> set[str]:
    """Names selected at ``path`` below ``selections`` (through fragments)."""
    found: set[str] = set()
    for sel in selections:
        if isinstance(sel, FragmentSpread | InlineFragment):
            found |= fields_under(sel.selections, *path)
        elif isinstance(sel, SelectedField):
            if not path:
                found.add(sel.name)
            elif sel.name == path[0]:
                found |= fields_under(sel.selections, *path[1:])
    return found


def projection(selected: Iterable[str], keys: Mapping[str, str], *always: str) -> dict[str, int]:
    """``{key: 1}`` for the document key of each selected field in ``keys``
    (see :func:`document_keys`), plus ``always``; never a private field."""
    fields = {keys[name] for name in selected if name in keys}
    fields.update(always)
    fields -= PRIVATE_FIELDS
    fields.discard("_id")
    return dict.fromkeys(sorted(fields), 1)
