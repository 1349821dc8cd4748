"""What the engine does to one document in Python: read a path (as an index
sees it), project, apply an update's operators, match a filter.

Matching uses mongomock's evaluator of MongoDB filters (a well-kept, tested
implementation of the query language) on the candidates an index walk yields;
the indexes decide which documents are looked at, never whether one matches.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import bson
from mongomock import filtering
from pymongo.errors import WriteError

from core.engine import keys

_filter_applies: Any = filtering.filter_applies
#: Entries one document may add to one index, as MongoDB caps parallel arrays.
MAX_ENTRIES = 10_000


def matches(flt: dict[str, Any], doc: dict[str, Any]) -> bool:
    return bool(_filter_applies(flt, doc))


def normalized(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as a server receives it: through BSON, so datetimes are
    milliseconds in naive UTC and tuples are lists, as stored documents are."""
    decoded: dict[str, Any] = bson.decode(bson.encode(value))
    return decoded


# -- index keys ------------------------------------------------------------------


def path_keys(doc: dict[str, Any], path: str) -> tuple[list[bytes], bool]:
    """The keys an index on ``path`` holds for ``doc`` (one per array element:
    multikey), and whether an array was met on the way."""
    if "." not in path:  # most fields: no path to walk
        value = doc.get(path)
        if isinstance(value, list | tuple):
            if not value:
                return [keys.EMPTY_ARRAY_KEY], True
            return list(dict.fromkeys(map(keys.encode, value))), True
        return [keys.encode(value)], False
    current: list[Any] = [doc]
    array = False
    for part in path.split("."):
        following: list[Any] = []
        for value in current:
            if isinstance(value, dict):
                following.append(value.get(part))
            elif isinstance(value, list | tuple):
                array = True
                following.extend(e.get(part) for e in value if isinstance(e, dict))
            else:
                following.append(None)
        current = following or [None]
    found: list[bytes] = []
    for value in current:
        if isinstance(value, list | tuple):
            array = True
            if not value:
                found.append(keys.EMPTY_ARRAY_KEY)
            found.extend(keys.encode(e) for e in value)
        else:
            found.append(keys.encode(value))
    return list(dict.fromkeys(found)), array


#: A field's keys for one document and whether it held an array (``entries``' memo).
FieldKeys = tuple[list[bytes], bool]


def entries(
    doc: dict[str, Any],
    fields: tuple[tuple[str, int], ...],
    unique: bool,
    memo: dict[tuple[str, int], FieldKeys] | None = None,
) -> tuple[list[bytes], set[str]]:
    """An index's keys for ``doc`` (with its ``_id`` after the fields of a
    non-unique index that lacks it, so each entry is one document's), and the fields in which
    the document holds arrays. ``memo`` keeps a field's keys for the
    document's other indexes (most of them share ``publishedDateTime``).

    Written for speed (it runs once per document and index as a load
    writes): one pass over the fields, the common case of one key per field
    joined at once."""
    if memo is None:
        memo = {}
    per_field = []
    multikey = set()
    single = True
    with_id = unique
    for field in fields:
        known = memo.get(field)
        if known is None:
            name, direction = field
            found, array = path_keys(doc, name)
            if direction != 1:
                found = [keys.invert(k) for k in found]
            known = memo[field] = (found, array)
        found, array = known
        if array:
            multikey.add(field[0])
        if len(found) != 1:
            single = False
        if field[0] == "_id":
            with_id = True
        per_field.append(found)
    if with_id:
        suffix = b""
    else:
        id_keys = memo.get(("_id", 1))
        suffix = id_keys[0][0] if id_keys else keys.encode(doc["_id"])
    if single:  # no array: one entry
        return [b"".join([found[0] for found in per_field]) + suffix], multikey
    out = []
    for combination in itertools.product(*per_field):
        out.append(b"".join(combination) + suffix)
        if len(out) > MAX_ENTRIES:
            raise WriteError(
                f"the document adds more than {MAX_ENTRIES} entries to one index", 10088
            )
    return out, multikey


def sort_key(doc: dict[str, Any], sort: list[tuple[str, int]]) -> bytes:
    """Bytes that order documents as ``sort`` does (for a sort in memory)."""
    parts = []
    for name, direction in sort:
        found, _ = path_keys(doc, name)
        key = (min if direction == 1 else max)(found)
        parts.append(key if direction == 1 else keys.invert(key))
    return b"".join(parts)


# -- projection -------------------------------------------------------------------


def project(doc: dict[str, Any], projection: dict[str, Any] | None) -> dict[str, Any]:
    if not projection:
        return doc
    include_id = bool(projection.get("_id", True))
    fields = {k: bool(v) for k, v in projection.items() if k != "_id"}
    if not fields:
        inclusive = bool(projection.get("_id", True))
        if inclusive:
            return {"_id": doc["_id"]} if "_id" in doc else {}
        return {k: v for k, v in doc.items() if k != "_id"}
    if all(fields.values()):
        out = _include(doc, [k.split(".") for k in fields])
        if include_id and "_id" in doc:
            out = {"_id": doc["_id"], **out}
        else:
            out.pop("_id", None)
        return out
    if not any(fields.values()):
        out = copy.deepcopy(doc)
        for name in fields:
            _exclude(out, name.split("."))
        if not include_id:
            out.pop("_id", None)
        return out
    raise WriteError("a projection cannot both include and exclude fields", 31254)


def _include(value: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    heads: dict[str, list[list[str]]] = {}
    for path in paths:
        heads.setdefault(path[0], []).append(path[1:])
    for name, value_here in value.items():
        if name not in heads:
            continue
        rests = heads[name]
        if any(not rest for rest in rests):
            out[name] = value_here
        elif isinstance(value_here, dict):
            out[name] = _include(value_here, rests)
        elif isinstance(value_here, list):
            out[name] = _include_list(value_here, rests)
    return out


def _include_list(items: list[Any], paths: list[list[str]]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            out.append(_include(item, paths))
        elif isinstance(item, list):
            out.append(_include_list(item, paths))
    return out


def _exclude(value: Any, path: list[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _exclude(item, path)
    elif isinstance(value, dict):
        if len(path) == 1:
            value.pop(path[0], None)
        elif path[0] in value:
            _exclude(value[path[0]], path[1:])


# -- updates ------------------------------------------------------------------------

_MISSING = object()


def apply_update(doc: dict[str, Any], update: dict[str, Any], inserting: bool) -> None:
    """Apply an update's operators to ``doc`` in place."""
    for op, fields in update.items():
        if not isinstance(fields, dict):
            raise WriteError(f"{op} takes a document of fields", 9)
        for path, value in fields.items():
            if path == "_id" or path.startswith("_id."):
                current = _get(doc, path)
                if op in ("$set", "$setOnInsert") and current == value:
                    continue
                if not inserting:
                    raise WriteError(
                        "Performing an update on the path '_id' would modify the "
                        "immutable field '_id'",
                        66,
                    )
            _apply(doc, op, path, value, inserting)


def _apply(doc: dict[str, Any], op: str, path: str, value: Any, inserting: bool) -> None:
    current = _get(doc, path)
    if op == "$set":
        _set(doc, path, copy.deepcopy(value))
    elif op == "$setOnInsert":
        if inserting:
            _set(doc, path, copy.deepcopy(value))
    elif op == "$unset":
        _unset(doc, path)
    elif op in ("$inc", "$mul"):
        if not isinstance(value, int | float):
            raise WriteError(f"{op} takes a number, got {type(value).__name__}", 14)
        if current is _MISSING:
            _set(doc, path, value if op == "$inc" else 0 * value)
        elif not isinstance(current, int | float) or isinstance(current, bool):
            raise WriteError(f"{op} cannot change the non-numeric field {path!r}", 14)
        else:
            _set(doc, path, current + value if op == "$inc" else current * value)
    elif op in ("$min", "$max"):
        if current is _MISSING:
            _set(doc, path, value)
        else:
            lower = keys.encode(value) < keys.encode(current)
            if lower == (op == "$min") and keys.encode(value) != keys.encode(current):
                _set(doc, path, value)
    elif op in ("$push", "$addToSet"):
        items = value["$each"] if isinstance(value, dict) and "$each" in value else [value]
        target = [] if current is _MISSING else current
        if not isinstance(target, list):
            raise WriteError(f"{op} needs an array at {path!r}", 2)
        for item in items:
            if op == "$push" or item not in target:
                target.append(copy.deepcopy(item))
        _set(doc, path, target)
    elif op == "$pull":
        if isinstance(current, list):
            _set(doc, path, [item for item in current if item != value])
    else:
        raise WriteError(f"the embedded engine does not support the update operator {op}", 9)


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target = doc
    for part in parts[:-1]:
        nxt = target.get(part)
        if nxt is None:
            nxt = target[part] = {}
        if not isinstance(nxt, dict):
            raise WriteError(f"cannot create field {parts[-1]!r} in a non-document at {path!r}", 28)
        target = nxt
    target[parts[-1]] = value


def _unset(doc: dict[str, Any], path: str) -> None:
    parts = path.split(".")
    target: Any = doc
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
    if isinstance(target, dict):
        target.pop(parts[-1], None)


def is_update(update: dict[str, Any]) -> bool:
    return bool(update) and all(k.startswith("$") for k in update)


def seed(flt: dict[str, Any]) -> dict[str, Any]:
    """The document an upsert starts from: the filter's equalities."""
    doc: dict[str, Any] = {}
    for name, value in _equalities(flt):
        _set(doc, name, copy.deepcopy(value))
    return doc


def _equalities(flt: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, value in flt.items():
        if name == "$and":
            for part in value:
                yield from _equalities(part)
        elif name.startswith("$"):
            continue
        elif isinstance(value, dict) and value and all(k.startswith("$") for k in value):
            if "$eq" in value:
                yield name, value["$eq"]
        else:
            yield name, value
