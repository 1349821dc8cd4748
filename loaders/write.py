"""Write a batch of documents with one unordered bulk write."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pymongo.errors
from pymongo import ReplaceOne, UpdateOne

from newsgraph.store import Store, unavailable_as_error


@dataclass
class BatchResult:
    inserted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    #: index in the batch -> the store's reason
    failed: dict[int, str] = field(default_factory=dict)


def write_batch(
    store: Store, docs: list[dict[str, Any]], moved: list[tuple[str, str]] | None = None
) -> BatchResult:
    """Upsert ``docs`` whole (replacing any stored version), and record new
    paths of ``moved`` files (``(_id, path)``) whose content is unchanged.

    Each document is one atomic replace: a reader sees the old version or the
    new one, never a mix. The batch is unordered, so one bad document does not
    stop the others.
    """
    result = BatchResult()
    moved = moved or []
    if not docs and not moved:
        return result
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ops: list[Any] = []
    for doc in docs:
        doc["_source"]["loadedAt"] = now
        ops.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
    ops.extend(UpdateOne({"_id": _id}, {"$set": {"_source.path": path}}) for _id, path in moved)
    upserted: set[int] = set()
    with unavailable_as_error(store.where):
        try:
            outcome = store.articles.bulk_write(ops, ordered=False)
            upserted = set(outcome.upserted_ids)
        except pymongo.errors.BulkWriteError as exc:
            details = exc.details
            upserted = {u["index"] for u in details.get("upserted", [])}
            for err in details.get("writeErrors", []):
                result.failed[err["index"]] = _store_reason(err)
    for i in range(len(docs)):
        if i in result.failed:
            continue
        (result.inserted if i in upserted else result.updated).append(i)
    return result


def _store_reason(err: dict[str, Any]) -> str:
    if err.get("code") == 11000:
        return "another stored article already has this webUrl"
    return f"the store refused the document: {err.get('errmsg', err)}"
