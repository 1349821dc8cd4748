"""The embedded engine: mongomock, an in-memory MongoDB inside this process.

One client per process, so that ``newsgraph serve --load`` serves what it loaded.
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any

import mongomock
from mongomock import helpers
from mongomock.collection import BulkOperationBuilder, Collection
from mongomock.store import CollectionStore

#: Bulk-builder methods already wrapped in this process.
_patched: set[str] = set()
_client: mongomock.MongoClient[dict[str, Any]] | None = None


def client() -> mongomock.MongoClient[dict[str, Any]]:
    global _client
    if _client is None:
        _patch_bulk_builder()
        _patch_unique_check()
        _client = mongomock.MongoClient()
    return _client


def _patch_bulk_builder() -> None:
    """pymongo >= 4.11 passes ``sort=`` to the bulk builder for ReplaceOne and
    UpdateOne; mongomock 4.3's builder predates it. newsgraph never sorts a
    bulk replace, so accept ``sort=None`` and refuse anything else loudly."""
    for name in ("add_replace", "add_update"):
        if name in _patched:
            continue
        original = getattr(BulkOperationBuilder, name)

        @functools.wraps(original)
        def compat(
            self: Any, *args: Any, _original: Any = original, sort: Any = None, **kwargs: Any
        ) -> Any:
            if sort is not None:
                raise NotImplementedError("the embedded engine cannot sort a bulk write")
            return _original(self, *args, **kwargs)

        setattr(BulkOperationBuilder, name, compat)
        _patched.add(name)


#: A unique index's key (one value per indexed field) -> the store keys of the
#: documents written with it. A superset: entries of documents since deleted or
#: changed are dropped when next looked at.
Lookup = dict[tuple[str, ...], set[Any]]
#: Per collection's data, per unique index: the index's definition the lookup
#: was built for (a re-created index gets a new one), and the lookup; None once
#: a document holds a value the lookup cannot stand for (see _key).
#: mongomock's own reading of a dotted field (untyped, hence the alias).
_value_by_dot: Any = helpers.get_value_by_dot
Known = tuple[dict[str, Any], Lookup | None]
_lookups: weakref.WeakKeyDictionary[CollectionStore, dict[str, Known]] = weakref.WeakKeyDictionary()
_lookups_lock = threading.Lock()


def _patch_unique_check() -> None:
    """mongomock checks a unique index after each insert or update by running
    a query for the new document's key over the whole collection: O(n) per
    write, so a load slows as the store fills (issue 12: 20,000 files loaded at
    a fifth of the rate of 2,000). Check against an in-memory lookup instead,
    O(1) per write, raising the same DuplicateKeyError in the same cases.

    Every document enters mongomock's store through ``_insert`` or ``_update``,
    both of which call this check, so the lookup (seeded by one scan) sees every
    key written; a key found there is confirmed against the stored document, so
    deletes and updates need no hook. Only string keys are looked up: a query
    for a string also matches arrays containing it and so on, so once any
    document holds another kind of value (or the index is sparse or partial)
    that index falls back to mongomock's own scan."""
    if "unique_check" in _patched:
        return
    original: Any = Collection._ensure_uniques

    @functools.wraps(original)
    def ensure_uniques(self: Any, new_data: dict[str, Any]) -> None:
        with _lookups_lock:
            if not _check_uniques(self._store, new_data):
                original(self, new_data)

    Collection._ensure_uniques = ensure_uniques  # type: ignore[method-assign]
    _patched.add("unique_check")


def _check_uniques(store: CollectionStore, new_data: dict[str, Any]) -> bool:
    """Raise DuplicateKeyError if ``new_data`` (already in ``store``) shares a
    unique index's key with another document; False if some index could not be
    checked here and mongomock's scan must decide."""
    by_index = _lookups.setdefault(store, {})
    new_id = _store_key(new_data["_id"])
    checked = True
    for name, index in store.indexes.items():
        if not index.get("unique"):
            continue
        fields = [field for field, _ in index["key"]]
        known = by_index.get(name)
        if known is None or known[0] is not index:
            known = (index, _seed(store, index, fields))
            by_index[name] = known
        lookup = known[1]
        key = _key(new_data, fields)
        if lookup is None or key is None:
            by_index[name] = (index, None)  # this index now needs the scan
            checked = False
            continue
        holders = lookup.setdefault(key, set())
        holders.add(new_id)
        for held in list(holders):
            if held not in store or _key(store[held], fields) != key:
                holders.discard(held)  # deleted or changed since
        if len(holders) > 1:
            holders.discard(new_id)  # the caller rolls the write back
            raise mongomock.DuplicateKeyError("E11000 Duplicate Key Error", 11000)
    return checked


def _seed(store: CollectionStore, index: dict[str, Any], fields: list[str]) -> Lookup | None:
    """The lookup of what ``store`` holds now; None if it cannot stand for the scan."""
    if index.get("sparse") or index.get("partialFilterExpression") is not None:
        return None
    lookup: Lookup = {}
    for doc in store.documents:
        key = _key(doc, fields)
        if key is None:
            return None
        lookup.setdefault(key, set()).add(_store_key(doc["_id"]))
    return lookup


def _key(doc: dict[str, Any], fields: list[str]) -> tuple[str, ...] | None:
    """The document's value of each field, if all are strings: only then does
    an equality query match exactly the documents with an equal value."""
    values = []
    for field in fields:
        try:
            value = _value_by_dot(doc, field)
        except KeyError:
            return None
        if type(value) is not str:
            return None
        values.append(value)
    return tuple(values)


def _store_key(_id: Any) -> Any:
    """How mongomock keys a document in its store (a dict ``_id`` is hashed)."""
    return helpers.hashdict(_id) if isinstance(_id, dict) else _id
