"""The loader's half of ``core.news``: stamp what a batch makes news, and move
the marker once the batch is written, so API workers polling the store see
what is news and that the articles changed.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from core.indexes import LOADER
from core.news import CHANGED_FIELD, EPOCH_FIELD, MARKER_FIELD, MARKER_ID
from core.store import Store

if TYPE_CHECKING:  # loaders.stored imports loaders.facets, which announces
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


def announce(store: Store, news: int) -> None:
    """Stored articles were just written or deleted, and every article the
    write numbered ``news`` made news (0: none) is among them: count a change
    and raise the news marker, in one update of the marker's document. ``$max``,
    so a late retry of an older write cannot lower it; a retry counting one
    more change is harmless (readers only compare the count for inequality).
    The document made here gets an epoch of its own (``core.news.EPOCH_FIELD``)."""
    update: dict[str, Any] = {
        "$inc": {CHANGED_FIELD: 1},
        "$setOnInsert": {EPOCH_FIELD: uuid.uuid4().hex},
    }
    if news:
        update["$max"] = {MARKER_FIELD: news}
    store.db[LOADER].update_one({"_id": MARKER_ID}, update, upsert=True)
