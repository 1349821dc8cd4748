"""Write a batch of documents with one unordered bulk write.

New articles are inserted and stored ones replaced, rather than upserting
everything: the run knows which ids are stored (``loaders.stored``), and an
insert is far cheaper than an upsert (FerretDB v1 looks each upsert up by a
scan; MongoDB skips a lookup per document).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pymongo.errors
from pymongo import InsertOne, ReplaceOne, UpdateOne

from core.store import Store, unavailable_as_error

_DUPLICATE_KEY = 11000


@dataclass
class BatchResult:
    inserted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    #: index in the batch -> the store's reason
    failed: dict[int, str] = field(default_factory=dict)


def write_batch(
    store: Store,
    docs: list[dict[str, Any]],
    stored: Container[str],
    moved: list[tuple[str, str]] | None = None,
) -> BatchResult:
    """Store ``docs`` whole (replacing any stored version), and record new
    paths of ``moved`` files (``(_id, path)``) whose content is unchanged.

    ``stored`` holds the ids already in the store; a document whose id is not
    there is inserted, and if another writer inserted it meanwhile, replaced.
    Each document is one atomic insert or replace: a reader sees the old version
    or the new one, never a mix. The batch is unordered, so one bad document
    does not stop the others.
    """
    result = BatchResult()
    moved = moved or []
    if not docs and not moved:
        return result
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    for doc in docs:
        doc["_source"]["loadedAt"] = now
    with unavailable_as_error(store.where):
        known = [d["_id"] in stored for d in docs]  # one lookup per document
        new = [i for i, k in enumerate(known) if not k]
        ops: list[Any] = [InsertOne(docs[i]) for i in new]
        old = [i for i, k in enumerate(known) if k]
        ops += [ReplaceOne({"_id": docs[i]["_id"]}, docs[i], upsert=True) for i in old]
        ops += [UpdateOne({"_id": _id}, {"$set": {"_source.path": p}}) for _id, p in moved]
        order = new + old  # batch index of each document op
        raced: list[int] = []
        for op_index, error in _bulk(store, ops).items():
            if op_index >= len(order):
                continue  # a moved file's path; it is written again next load
            i = order[op_index]
            if error.get("code") == _DUPLICATE_KEY and op_index < len(new):
                raced.append(i)  # inserted meanwhile by another writer: replace it
            else:
                result.failed[i] = _store_reason(error)
        retry = [ReplaceOne({"_id": docs[i]["_id"]}, docs[i], upsert=True) for i in raced]
        for op_index, error in _bulk(store, retry).items():
            result.failed[raced[op_index]] = _store_reason(error)
    result.inserted = [i for i in new if i not in result.failed and i not in raced]
    result.updated = [i for i in old + raced if i not in result.failed]
    return result


def _bulk(store: Store, ops: list[Any]) -> dict[int, dict[str, Any]]:
    """Run ``ops`` unordered; op index -> the write error of each that failed."""
    if not ops:
        return {}
    try:
        store.articles.bulk_write(ops, ordered=False)
    except pymongo.errors.BulkWriteError as exc:
        return {e["index"]: e for e in exc.details.get("writeErrors", [])}
    return {}


def _store_reason(error: dict[str, Any]) -> str:
    if error.get("code") == _DUPLICATE_KEY:
        return "another stored article already has this webUrl"
    return f"the store refused the document: {error.get('errmsg', error)}"
