"""The loader's half of ``core.news``: stamp what a batch makes news, and raise
the marker once the batch is written, so API workers polling the store see it.
"""

from __future__ import annotations

from typing import Any

from core.indexes import LOADER
from core.news import MARKER_FIELD, MARKER_ID
from core.store import Store
from loaders.stored import Stored


def stamp(docs: list[dict[str, Any]], stored: Stored, seq: int) -> bool:
    """Give each of ``docs`` (about to be written by the write numbered
    ``seq``) its ``_source.newsSeq``: ``seq`` if writing it makes news (it is
    not stored, or it is published and the stored version is not), else the
    number its stored version carries. Whether any of them is news."""
    news = False
    for doc in docs:
        before = stored.news(doc["_id"])
        published = doc.get("published") is not False
        if before is None or (published and not before[0]):
            doc["_source"]["newsSeq"] = seq
            news = True
        else:
            doc["_source"]["newsSeq"] = before[1]
    return news


def announce(store: Store, seq: int) -> None:
    """Every article the write ``seq`` made news is written: raise the marker.
    ``$max``, so a late retry of an older write cannot lower it."""
    store.db[LOADER].update_one({"_id": MARKER_ID}, {"$max": {MARKER_FIELD: seq}}, upsert=True)
