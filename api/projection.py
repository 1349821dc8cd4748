"""Fetch only what a query selects: a MongoDB projection from the selection set.

Schema field names are the document's field names (the contract of
``core.document``), so a selected field maps to the field of the same
name; ``id`` maps to ``_id``, which MongoDB always returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

#: Article fields stored under another name, or derived from several.
_SOURCES = {"id": "_id"}


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


def projection(selected: Iterable[str], allowed: frozenset[str], *always: str) -> dict[str, int]:
    """``{field: 1}`` for each selected field the document stores, plus ``always``."""
    fields = {_SOURCES.get(name, name) for name in selected if name in allowed}
    fields.update(always)
    fields.discard("_id")
    return dict.fromkeys(sorted(fields), 1)
