"""Cursor pagination: keyset on (sort key, ``_id``), never skip/offset.

A cursor is the position of the last item a client saw: the ordering's name,
the item's sort-key value and its ``_id``, encoded opaquely. The next page is
"everything after that position", one indexed range query, so pages stay
correct and cheap however deep the client goes and however many articles are
added meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from api.errors import ClientError
from core.config import DEFAULT_PAGE, MAX_CURSOR, MAX_CURSOR_ID, MAX_PAGE

#: A cursor's values must fit what the store can compare: BSON's 64-bit ints,
#: and ids no longer than any this API hands out.
INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Ordering:
    """A sort order: ``key`` then ``_id``, both in ``direction`` unless
    ``id_direction`` says otherwise."""

    name: str
    key: str
    direction: int  # 1 ascending, -1 descending
    id_direction: int | None = None
    #: Type of the key's values: "date", "int" or "str".
    kind: str = "date"
    #: How many ranked groups the list walks in turn (RELEVANCE has two).
    tiers: int = 1

    @property
    def sort(self) -> list[tuple[str, int]]:
        return [(self.key, self.direction), ("_id", self.id_direction or self.direction)]


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if first < 0:
        raise ClientError(f"first must be zero or more, got {first}")
    if first > MAX_PAGE:
        raise ClientError(
            f"first may be at most {MAX_PAGE}, got {first}; "
            "fetch further pages with `after: pageInfo.endCursor`"
        )
    return first


# -- cursors -------------------------------------------------------------------


def encode_cursor(ordering: Ordering, doc: dict[str, Any], tier: int = 0) -> str:
    value = doc.get(ordering.key)
    if isinstance(value, datetime):
        value = int(value.replace(tzinfo=UTC).timestamp() * 1000)
    raw = orjson.dumps([ordering.name, tier, value, doc["_id"]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Position:
    tier: int
    value: Any
    id: str


def decode_cursor(ordering: Ordering, cursor: str) -> Position:
    """The position a cursor names; :class:`ClientError` for anything that is
    not a cursor this API made for this ordering. Every part is checked for
    type and range here, before any store call sees it."""
    bad = ClientError(
        "invalid cursor: `after` takes the endCursor (or an edge's cursor) of a "
        "previous page of the same list and order"
    )
    if len(cursor) > MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, tier, value, _id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if type(name) is not str:
        raise bad
    if name != ordering.name:
        raise ClientError(
            f"this cursor belongs to the order {name[:40]!r}, not {ordering.name!r}; "
            "start again without `after` when changing the order"
        )
    if type(tier) is not int or tier not in range(ordering.tiers):
        raise bad
    if type(_id) is not str or not 0 < len(_id) <= MAX_CURSOR_ID:
        raise bad
    return Position(tier, _key_value(ordering, value, bad), _id)


def _key_value(ordering: Ordering, value: Any, bad: ClientError) -> Any:
    """A cursor's sort-key value, as the store compares it."""
    if value is None:
        return None
    if ordering.kind == "str":
        if type(value) is not str or len(value) > MAX_CURSOR_ID:
            raise bad
        return value
    # "int" and "date" (milliseconds since the epoch); bool is not an int here.
    if type(value) is not int or value not in INT64:
        raise bad
    if ordering.kind == "date":
        try:
            return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            raise bad from None
    return value


def after(ordering: Ordering, position: Position) -> dict[str, Any]:
    """The filter for "strictly after ``position``" in ``ordering``.

    Documents without the key sort as null: first when ascending, last when
    descending (MongoDB's order), so the null region is walked by ``_id``.
    """
    key, value = ordering.key, position.value
    id_op = "$gt" if (ordering.id_direction or ordering.direction) == 1 else "$lt"
    same_key_later_id = {key: value, "_id": {id_op: position.id}}
    if value is None:
        if ordering.direction == 1:  # non-null values follow the nulls
            return {"$or": [same_key_later_id, {key: {"$ne": None}}]}
        return same_key_later_id
    beyond = {key: {"$gt" if ordering.direction == 1 else "$lt": value}}
    clauses = [beyond, same_key_later_id]
    if ordering.direction == -1:  # nulls come after every value
        clauses.append({key: None})
    return {"$or": clauses}
