"""The manifest: what the articles collection holds, packed small, so that a
loader reads it in a fraction of the time a scan of the articles takes.

A reload that finds nothing changed costs what reading the snapshot of the
store costs (``loaders.stored``). FerretDB v1 decodes every stored value it
returns, whatever the projection, at a cost that grows with the number of
values: a projected scan of 1,000 articles took 0.5 s, and even one small
document per article costs ~0.1 ms each. So the manifest packs rows into
few documents, each a compressed JSON array in one binary field:

    {_id: "seg-<seq>", n: <rows>, rows: <zlib(JSON [[row], ...])>}
    {_id: "meta", version, base: <first live seq>}

Every write of the loader appends one segment (after the articles it
describes are written): a row per article written, moved or re-checked, and
``[_id]`` for an article deleted. Reading replays the segments in order, the
later row for an ``_id`` winning. When segments pile up the loader rewrites
the rows as a few segments with higher numbers, moves ``base`` past the old
ones and deletes them: a crash midway leaves either the old log or the old
log plus a copy of its own content, both right.

Only the lease holder writes here, after bumping the lease generation
(``loaders.lease``), so segment numbers never collide: another loader re-reads
the manifest when the generation moved. A loader that dies between writing
articles and appending their segment leaves the manifest behind the articles;
it also leaves the facet generation behind, which the next loader takes as
the sign to rebuild the manifest from one scan of the articles.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from bson import Binary

from core.indexes import MANIFEST
from core.store import Store

#: Bumped when a row's shape changes: an older manifest is then rebuilt.
#: 2: rows end with the article's newsSeq (``core.news``).
VERSION = 2
#: Rows per segment when the manifest is rewritten.
SEGMENT_ROWS = 5_000
#: Segments beyond which the manifest is compacted.
MAX_SEGMENTS = 64
_META = "meta"
_SEGMENTS = {"_id": {"$gte": "seg-", "$lt": "seg-~"}}

#: (_id, hash, path, published, domain, name, topics, size, mtime_ns, ctime_ns,
#: newsSeq) of an article, or (_id,) of a deleted one.
Row = list[Any]


class Log:
    """The manifest of one store as this loader last read or wrote it."""

    def __init__(self, store: Store) -> None:
        self._docs = store.db[MANIFEST]
        #: The number the next segment gets.
        self.next_seq = 0
        #: Live segments (those at or past ``base``).
        self.segments = 0

    def read(self) -> Iterator[Row] | None:
        """Every row, oldest first; None if there is no manifest (first run
        after an upgrade) or it has an older shape: rebuild it then."""
        meta = self._docs.find_one({"_id": _META})
        if meta is None or meta.get("version") != VERSION:
            return None
        base = int(meta["base"])
        docs = list(self._docs.find({"_id": {"$gte": _seg(base), "$lt": "seg-~"}}))
        docs.sort(key=lambda d: str(d["_id"]))
        self.segments = len(docs)
        self.next_seq = max([base - 1, *(_seq(d["_id"]) for d in docs)]) + 1
        return (row for doc in docs for row in json.loads(zlib.decompress(doc["rows"])))

    def append(self, rows: list[Row]) -> None:
        """Record ``rows``: written by the lease holder after it bumped the
        generation. A replace, so a retried append does not add a copy."""
        if not rows:
            return
        self._docs.replace_one({"_id": _seg(self.next_seq)}, _segment(rows), upsert=True)
        self.next_seq += 1
        self.segments += 1

    def rewrite(self, rows: Iterable[Row]) -> None:
        """Replace the manifest with ``rows`` (every live article), packed."""
        # Past every segment there is, live or not: none is overwritten.
        ids = [str(d["_id"]) for d in self._docs.find(_SEGMENTS, {"_id": 1})]
        self.next_seq = first = max([self.next_seq - 1, *map(_seq, ids)]) + 1
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) == SEGMENT_ROWS:
                self.append(batch)
                batch = []
        self.append(batch)
        meta = {"version": VERSION, "base": first}
        self._docs.replace_one({"_id": _META}, meta, upsert=True)
        self._docs.delete_many({"_id": {"$lt": _seg(first), "$gte": "seg-"}})
        self.segments = self.next_seq - first

    @property
    def crowded(self) -> bool:
        """Whether so many segments pile up that rewriting them pays."""
        return self.segments > MAX_SEGMENTS


def _seg(seq: int) -> str:
    # Zero-padded: the ids sort as the numbers do.
    return f"seg-{seq:012d}"


def _seq(_id: str) -> int:
    return int(_id.removeprefix("seg-"))


def _segment(rows: list[Row]) -> dict[str, Any]:
    # ensure_ascii (the default) keeps any surrogate in a name intact.
    packed = zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 1)
    return {"n": len(rows), "rows": Binary(packed)}
