"""From a filter and a sort to the index ranges that answer them.

A filter becomes, per field, the set of values it allows (intervals of keys,
``core.engine.keys``), as MongoDB's planner derives index bounds: equality and
``$in`` are points, comparisons are ranges within their value's type, ``$ne``
and ``$nin`` the rest, ``$all`` any one of its values, and a ``$or`` bounds a
field only when each of its branches does (the union). Each index then gives a
plan: the points of its leading fields, then the intervals of the next field;
it returns documents in the sort's order when the fields after its points are
the sort's keys (in the same or the opposite direction; several points before
them are merged in order, as MongoDB's SORT_MERGE). A plan is *exact* when its
ranges say everything the filter says: then counts are counted on the index
alone and a page is the first entries walked; otherwise the whole filter is
evaluated on each document walked.

Of the plans, the cheapest by a small cost model wins; the number of entries in
a plan's ranges is counted (up to :data:`ESTIMATE_CAP`) on the index itself.
A query no index bounds, and whose sort no index gives, would scan the whole
collection: under the strict setting (MongoDB's ``notablescan``) it is refused
with :class:`pymongo.errors.OperationFailure` naming its shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.engine import keys

#: Entries counted, at most, to estimate a plan's size.
ESTIMATE_CAP = 2000
#: Largest range (in entries) another index may narrow a walk with, and how
#: many such ranges one walk uses.
SEMIJOIN_CAP = 8_000
SEMIJOINS = 2
#: Most point combinations a plan walks before it stops adding fields.
MAX_PREFIXES = 1000


@dataclass(frozen=True)
class Interval:
    """Keys from ``lo`` to ``hi`` in ascending key space; None is unbounded.
    A one-byte bound is a boundary between types (``keys.boundary``)."""

    lo: bytes | None
    lo_incl: bool
    hi: bytes | None
    hi_incl: bool

    @property
    def point(self) -> bool:
        return (
            self.lo is not None
            and self.lo == self.hi
            and self.lo_incl
            and self.hi_incl
            and not keys.is_boundary(self.lo)
        )


EVERYTHING = [Interval(None, False, None, False)]


@dataclass
class Predicate:
    """What the filter allows of one field: intervals, or alternatives of them
    (``$all``: any one of its values bounds the field)."""

    choices: list[list[Interval]]
    #: Whether the intervals say all the condition says (on a field no
    #: document holds an array in).
    exact: bool
    #: Whether it stays exact on a multikey field (equality and $in do: an
    #: array matches when one element does, and so does its entry).
    exact_multikey: bool


@dataclass
class Conditions:
    """A filter taken apart: per field, its predicates; ``whole`` is False
    when some condition bounds no field (then no plan is exact)."""

    fields: dict[str, list[Predicate]] = field(default_factory=dict)
    whole: bool = True

    def add(self, name: str, predicate: Predicate) -> None:
        self.fields.setdefault(name, []).append(predicate)


@dataclass(frozen=True)
class Index:
    """An index as the planner sees it."""

    name: str
    #: The SQLite table holding its entries (key, rid).
    table: str
    fields: tuple[tuple[str, int], ...]
    unique: bool
    #: Fields some document holds an array in (each entry is one element).
    multikey: frozenset[str] = frozenset()
    #: The ``_id`` index is the documents' own table.
    primary: bool = False


@dataclass
class Plan:
    index: Index
    #: Half-open key ranges [lo, hi), None unbounded, in walking order; each
    #: with the prefix it shares with the others of its stream.
    ranges: list[tuple[bytes, bytes | None, bytes | None]]
    exact: bool
    #: Whether documents come out in the sort's order.
    sorted: bool
    #: Walk the index backwards.
    reverse: bool
    #: Several prefixes whose streams are merged by what follows the prefix.
    merge: bool
    consumed: int
    estimate: int = 0
    #: Other plans' ranges every match also lies in: entries whose document
    #: has none there are skipped in SQL, before any document is read (index
    #: intersection: a topic's newest articles of one provider).
    semijoins: list[Plan] = field(default_factory=list)
    #: The fields the ranges bound, and how: plans alike select alike.
    bounds: tuple[Any, ...] = ()

    def cost(self, limit: int, counting: bool) -> float:
        """Work, in documents decoded (an index entry alone costs 1/20)."""
        est = self.estimate
        if counting:
            return est * (0.05 if self.exact else 1.0)
        needs_all = not self.sorted or not limit
        walked = est if needs_all else min(est, limit if self.exact else limit * 10)
        return walked * (1.0 if not self.exact or needs_all else 0.05) + walked * 0.05

    def led_by_bool(self) -> bool:
        """Whether the first field bounded holds booleans only."""
        if not self.bounds:
            return False
        intervals = self.bounds[0][1]
        return bool(intervals) and all(
            i.lo is not None and i.lo[:1] == bytes([keys.BOOL]) and i.point for i in intervals
        )

    def unique_point(self) -> bool:
        """Whether the plan looks up one key of a unique index, exactly."""
        return (
            self.index.unique
            and self.exact
            and len(self.ranges) == 1
            and self.consumed == len(self.index.fields)
            and self.ranges[0][0] != b""
            and self.ranges[0][1] == self.ranges[0][0]
        )

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index.name,
            "exact": self.exact,
            "sorted": self.sorted,
            "reverse": self.reverse,
            "ranges": len(self.ranges),
            "estimate": self.estimate,
            "semijoins": [p.index.name for p in self.semijoins],
        }


class Unplannable(Exception):
    """No declared index serves the query (see the strict setting)."""


# -- the filter, per field -----------------------------------------------------


def conditions(flt: dict[str, Any]) -> Conditions:
    found = Conditions()
    _collect(flt, found)
    return found


_NO_BOUNDS = frozenset(
    {"$exists", "$regex", "$options", "$size", "$type", "$elemMatch", "$not", "$mod"}
)


def _collect(flt: dict[str, Any], into: Conditions) -> None:
    for name, value in flt.items():
        if name == "$and":
            for part in value:
                _collect(part, into)
        elif name == "$or":
            into.whole = False
            _union(value, into)
        elif name.startswith("$"):  # $nor, $expr, $comment...: evaluated on documents
            into.whole = False
        elif isinstance(value, dict) and value and all(k.startswith("$") for k in value):
            for op, operand in value.items():
                predicate = _operator(op, operand)
                if predicate is None:
                    into.whole = into.whole and op == "$options"
                else:
                    into.add(name, predicate)
        else:
            predicate = _equal(value)
            if predicate is None:
                into.whole = False
            else:
                into.add(name, predicate)


def _union(branches: list[dict[str, Any]], into: Conditions) -> None:
    """A field each branch bounds is bounded by the union of what they allow."""
    per_branch = [conditions(branch) for branch in branches]
    if not per_branch:
        return
    shared = set(per_branch[0].fields)
    for branch in per_branch[1:]:
        shared &= set(branch.fields)
    for name in shared:
        allowed: list[Interval] = []
        for branch in per_branch:
            choice = intersect_all([p.choices[0] for p in branch.fields[name]])
            allowed = union(allowed + choice)
        into.add(name, Predicate([allowed], exact=False, exact_multikey=False))


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list | tuple) and value is not None


def _equal(value: Any) -> Predicate | None:
    if isinstance(value, list | tuple) or _is_regex(value):
        return None  # an array's equality, or a pattern: evaluated on documents
    key = keys.encode(value)
    exact = _scalar(value)
    return Predicate([[Interval(key, True, key, True)]], exact, exact)


def _is_regex(value: Any) -> bool:
    return type(value).__name__ in ("Pattern", "Regex")


def _operator(op: str, operand: Any) -> Predicate | None:
    if op == "$eq":
        return _equal(operand)
    if op == "$in":
        if not isinstance(operand, list | tuple) or any(
            isinstance(v, list | tuple) or _is_regex(v) for v in operand
        ):
            return None
        points = [keys.encode(v) for v in operand]
        exact = all(_scalar(v) for v in operand)
        return Predicate([union([Interval(k, True, k, True) for k in points])], exact, exact)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(operand, list | tuple) or _is_regex(operand):
            return None
        key = keys.encode(operand)
        start, end = keys.boundary(key[0], False), keys.boundary(key[0] + 1, False)
        interval = {
            "$gt": Interval(key, False, end, False),
            "$gte": Interval(key, True, end, False),
            "$lt": Interval(start, False, key, False),
            "$lte": Interval(start, False, key, True),
        }[op]
        exact = _scalar(operand)
        return Predicate([[interval]], exact, exact)
    if op in ("$ne", "$nin"):
        values = operand if op == "$nin" else [operand]
        if not isinstance(values, list | tuple) or any(
            isinstance(v, list | tuple) or _is_regex(v) for v in values
        ):
            return None
        excluded = union([Interval(keys.encode(v), True, keys.encode(v), True) for v in values])
        return Predicate([complement(excluded)], all(_scalar(v) for v in values), False)
    if op == "$all":
        if not isinstance(operand, list | tuple) or not operand:
            return None
        choices = []
        for value in operand:
            equal = _equal(value)
            if equal is None or isinstance(value, dict):
                return None
            choices.append(equal.choices[0])
        exact = len(operand) == 1 and _scalar(operand[0])
        return Predicate(choices, exact, exact)
    return None


# -- intervals -----------------------------------------------------------------


def _lower_key(interval: Interval) -> tuple[int, bytes, int]:
    if interval.lo is None:
        return (0, b"", 0)
    return (1, interval.lo, 0 if interval.lo_incl or keys.is_boundary(interval.lo) else 1)


def _upper_key(interval: Interval) -> tuple[int, bytes, int]:
    if interval.hi is None:
        return (2, b"", 0)
    return (1, interval.hi, 1 if interval.hi_incl and not keys.is_boundary(interval.hi) else 0)


def _empty(interval: Interval) -> bool:
    if interval.lo is None or interval.hi is None:
        return False
    if interval.lo < interval.hi:
        return False
    if interval.lo > interval.hi:
        return True
    return not (interval.lo_incl and interval.hi_incl) or keys.is_boundary(interval.lo)


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same keys."""
    ordered = sorted((i for i in intervals if not _empty(i)), key=_lower_key)
    merged: list[Interval] = []
    for interval in ordered:
        if merged and _touches(merged[-1], interval):
            last = merged[-1]
            if _upper_key(interval) > _upper_key(last):
                merged[-1] = Interval(last.lo, last.lo_incl, interval.hi, interval.hi_incl)
        else:
            merged.append(interval)
    return merged


def _touches(a: Interval, b: Interval) -> bool:
    """Whether ``b`` (starting no earlier than ``a``) overlaps or adjoins ``a``."""
    if a.hi is None or b.lo is None:
        return True
    if b.lo < a.hi:
        return True
    if b.lo > a.hi:
        return False
    return a.hi_incl or b.lo_incl or keys.is_boundary(a.hi)


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out = []
    for x in a:
        for y in b:
            lo = max(x, y, key=_lower_key)
            hi = min(x, y, key=_upper_key)
            both = Interval(lo.lo, lo.lo_incl, hi.hi, hi.hi_incl)
            if not _empty(both):
                out.append(both)
    return union(out)


def intersect_all(lists: Sequence[list[Interval]]) -> list[Interval]:
    result = EVERYTHING
    for intervals in lists:
        result = intersect(result, intervals)
    return result


def complement(intervals: list[Interval]) -> list[Interval]:
    out = []
    lo: bytes | None = None
    lo_incl = False
    for interval in intervals:
        out.append(Interval(lo, lo_incl, interval.lo, not interval.lo_incl))
        lo, lo_incl = interval.hi, not interval.hi_incl
        if lo is None:
            return union(out)
    out.append(Interval(lo, lo_incl, None, False))
    return union(out)


def _flip(bound: bytes) -> bytes:
    if keys.is_boundary(bound):
        return bytes([256 - bound[0]])
    return keys.invert(bound)


def in_key_space(intervals: list[Interval], direction: int) -> list[Interval]:
    """``intervals`` as a descending field's keys hold them (reversed and inverted)."""
    if direction == 1:
        return intervals
    return [
        Interval(
            None if i.hi is None else _flip(i.hi),
            i.hi_incl,
            None if i.lo is None else _flip(i.lo),
            i.lo_incl,
        )
        for i in reversed(intervals)
    ]


def key_range(prefix: bytes, interval: Interval) -> tuple[bytes | None, bytes | None]:
    """The half-open byte range of keys starting with ``prefix`` whose next
    field lies in ``interval`` (in key space)."""
    if interval.lo is None:
        lo: bytes | None = prefix or None
    elif keys.is_boundary(interval.lo) or interval.lo_incl:
        lo = prefix + interval.lo
    else:
        lo = keys.successor(prefix + interval.lo)
    if interval.hi is None:
        hi = keys.successor(prefix) if prefix else None
    elif keys.is_boundary(interval.hi) or not interval.hi_incl:
        hi = prefix + interval.hi
    else:
        hi = keys.successor(prefix + interval.hi)
    return lo, hi


# -- plans ---------------------------------------------------------------------


def plans(index: Index, found: Conditions, sort: list[tuple[str, int]]) -> Iterable[Plan]:
    """The plans ``index`` offers (one per choice of an ``$all`` value)."""
    options: list[dict[str, list[Interval]]] = [{}]
    exact_fields: dict[str, bool] = {}
    for name, _ in index.fields:
        predicates = found.fields.get(name)
        if not predicates:
            continue
        multikey = name in index.multikey
        if multikey and len(predicates) > 1:
            # Two conditions on an array may be met by different elements:
            # bound by one, evaluate the rest.
            predicates = [predicates[0]]
            exact_fields[name] = False
        else:
            exact_fields[name] = all(
                p.exact_multikey if multikey else p.exact for p in predicates
            ) and len(found.fields[name]) == len(predicates)
        fixed = intersect_all([p.choices[0] for p in predicates if len(p.choices) == 1])
        alternatives = [p for p in predicates if len(p.choices) > 1]
        choices = [fixed]
        if alternatives:
            choices = [intersect(fixed, c) for c in alternatives[0].choices]
            exact_fields[name] = False
        options = [{**o, name: c} for o in options for c in choices]
    for option in options:
        plan = _plan(index, option, found, exact_fields, sort)
        if plan is not None:
            yield plan


def _plan(
    index: Index,
    bounds: dict[str, list[Interval]],
    found: Conditions,
    exact_fields: dict[str, bool],
    sort: list[tuple[str, int]],
) -> Plan | None:
    prefixes = [b""]
    used: list[str] = []
    single: set[str] = set()
    position = 0
    range_field: tuple[list[Interval], int] | None = None
    for name, direction in index.fields:
        allowed = bounds.get(name)
        if allowed is None:
            break
        if allowed and all(i.point for i in allowed):
            points = sorted(
                (i.lo if direction == 1 else keys.invert(i.lo)) for i in allowed if i.lo
            )
            if len(points) * len(prefixes) > MAX_PREFIXES:
                range_field = (allowed, direction)
                used.append(name)
                break
            prefixes = [p + k for p in prefixes for k in points]
            used.append(name)
            if len(points) == 1:
                single.add(name)
            position += 1
            continue
        range_field = (allowed, direction)
        used.append(name)
        break
    if not prefixes:
        prefixes = []
    # The sort, less the keys fixed to one value.
    wanted = [(k, d) for k, d in sort if k not in single]
    following = list(index.fields[position : position + len(wanted)])
    sorted_ = True
    reverse = False
    if wanted:
        names_match = [k for k, _ in wanted] == [k for k, _ in following]
        if not names_match:
            sorted_ = False
        else:
            same = [d == f[1] for (_, d), f in zip(wanted, following, strict=True)]
            sorted_ = all(same) or not any(same)
            reverse = not any(same)
    if not used and not (wanted and sorted_):
        return None
    ranges: list[tuple[bytes, bytes | None, bytes | None]] = []
    for prefix in prefixes:
        if range_field is None:
            lo, hi = (prefix or None), (keys.successor(prefix) if prefix else None)
            ranges.append((prefix, lo, hi))
        else:
            for interval in in_key_space(*range_field):
                lo, hi = key_range(prefix, interval)
                ranges.append((prefix, lo, hi))
    exact = found.whole and all(
        name in used and exact_fields.get(name, False) for name in found.fields
    )
    merge = len(prefixes) > 1 and bool(wanted) and sorted_
    if reverse:
        ranges.reverse()
    signature = tuple((name, tuple(bounds.get(name, ()))) for name in used)
    return Plan(index, ranges, exact, sorted_, reverse, merge, len(used), bounds=signature)


def choose(candidates: list[Plan], limit: int, counting: bool) -> Plan:
    def rank(plan: Plan) -> tuple[float, bool, bool, int, bool, int]:
        cost = plan.cost(limit, counting)
        # Plans past the count's cap tie on size: then one led by a yes/no
        # field (two values: the larger half of the collection, most likely)
        # is the worse bet.
        return (
            cost,
            not plan.exact,
            not plan.sorted,
            plan.estimate,
            plan.led_by_bool(),
            -plan.consumed,
        )

    return min(candidates, key=rank)


def shape(value: Any) -> Any:
    """A filter with its values replaced by their types: what an error names."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shape(v) for v in value[:1]] + (["..."] if len(value) > 1 else [])
    return f"<{type(value).__name__}>"
