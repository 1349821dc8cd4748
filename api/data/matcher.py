"""A MongoDB filter evaluated in Python, against one document in memory.

A subscription is told about each article that becomes news once per worker
(``api.live.feed``), then every subscriber's ``ArticleFilter`` decides whether the
article is for it: the same filter ``articles(filter:)`` sends to the store
(``api.data.filters.article_query``, so visibility included), evaluated here
instead of by a store query per subscriber per article.

Only what ``article_query`` writes is understood: field equality, ``$in``,
``$all``, the range operators, ``$and``, ``$or`` and ``$nor``. Anything else
is refused when the filter is compiled, never silently matched. The rules
are MongoDB's where documents can differ: a path reaches into arrays (a list
matches when one of its items does), a range compares only values of one
kind (a number with a number, a date with a date; a missing field matches
none), and ``true`` is not ``1``. Tests hold it to the store's answers on
both engines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_RANGES: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


class UnsupportedFilter(ValueError):
    """A filter uses what this module does not evaluate."""


def compile_filter(query: Mapping[str, Any]) -> Predicate:
    """A predicate that says, for a document, whether ``query`` selects it."""
    clauses = [_clause(key, value) for key, value in query.items()]
    return lambda doc: all(clause(doc) for clause in clauses)


def _clause(key: str, value: Any) -> Predicate:
    if key in ("$and", "$or", "$nor"):
        if not isinstance(value, Sequence) or not value:
            raise UnsupportedFilter(f"{key} takes a non-empty list")
        parts = [compile_filter(part) for part in value]
        if key == "$and":
            return lambda doc: all(part(doc) for part in parts)
        if key == "$or":
            return lambda doc: any(part(doc) for part in parts)
        return lambda doc: not any(part(doc) for part in parts)
    if key.startswith("$"):
        raise UnsupportedFilter(f"{key} is not evaluated in memory")
    path = key.split(".")
    if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
        tests = [_operator(op, operand) for op, operand in value.items()]
        return lambda doc: all(test(list(_values(doc, path))) for test in tests)
    return lambda doc: _equals_any(list(_values(doc, path)), value)


def _operator(op: str, operand: Any) -> Callable[[list[Any]], bool]:
    """A test of the values a path reaches (see :func:`_values`)."""
    if op == "$eq":
        return lambda found: _equals_any(found, operand)
    if op == "$in":
        if not isinstance(operand, Sequence) or isinstance(operand, str):
            raise UnsupportedFilter("$in takes a list")
        options = list(operand)
        return lambda found: any(_equals_any(found, option) for option in options)
    if op == "$all":
        if not isinstance(operand, Sequence) or isinstance(operand, str):
            raise UnsupportedFilter("$all takes a list")
        wanted = list(operand)
        return lambda found: bool(wanted) and all(_equals_any(found, w) for w in wanted)
    if op in _RANGES:
        compare, bound = _RANGES[op], _normal(operand)
        kind = _kind(bound)
        if kind is None:
            raise UnsupportedFilter(f"{op} compares numbers, text, dates or booleans")
        return lambda found: any(
            _kind(v) == kind and compare(v, bound) for v in map(_normal, _flat(found))
        )
    raise UnsupportedFilter(f"{op} is not evaluated in memory")


def _values(value: Any, path: Sequence[str]) -> Iterator[Any]:
    """What a dotted path reaches in a document: lists on the way are walked
    item by item, as MongoDB does (``provider.domain`` through a list of
    providers); nothing at all when a field is missing."""
    if not path:
        yield value
        return
    if isinstance(value, Mapping):
        if path[0] in value:
            yield from _values(value[path[0]], path[1:])
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield from _values(item, path)


def _flat(found: list[Any]) -> Iterator[Any]:
    """Each value, and each item of a list value: a list field matches a
    condition when one of its items does."""
    for value in found:
        if isinstance(value, list):
            yield from value
        yield value


def _equals_any(found: list[Any], wanted: Any) -> bool:
    if wanted is None:  # null matches a missing field too
        return not found or any(v is None for v in _flat(found))
    wanted = _normal(wanted)
    return any(_same(_normal(v), wanted) for v in _flat(found))


def _same(a: Any, b: Any) -> bool:
    kind = _kind(a)
    if kind is None or kind != _kind(b):
        return kind is None and _kind(b) is None and type(a) is type(b) and bool(a == b)
    return bool(a == b)


def _kind(value: Any) -> str | None:
    """The kinds of value MongoDB compares with each other (bool is its own)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "date"
    return None


def _normal(value: Any) -> Any:
    """Dates as the store keeps them: naive, in UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
