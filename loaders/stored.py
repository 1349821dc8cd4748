"""What the store holds, read once per loader and kept up to date as it writes.

The loader must know, for every file, whether its content is already stored
(skip it) and, for every document, whether its ``_id`` exists (insert or
replace). Asking per batch costs a query per batch that MongoDB answers from an
index but FerretDB v1 answers by scanning the collection (it pushes down only
``_id`` equality), which made a load quadratic. One projected scan at the start
is linear on both; a watching loader keeps the snapshot for its whole life.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from loaders.facets import FACET_FIELDS, Facets, facets_of
from newsgraph.store import Store, unavailable_as_error


@dataclass
class Stored:
    #: content hash -> _id of each stored article
    by_hash: dict[str, str] = field(default_factory=dict)
    #: _id -> (content hash, source path, facets) of each stored article
    by_id: dict[str, tuple[str, str, Facets]] = field(default_factory=dict)

    @classmethod
    def scan(cls, store: Store) -> Stored:
        stored = cls()
        with unavailable_as_error(store.where):
            fields = {"_source.hash": 1, "_source.path": 1, **FACET_FIELDS}
            for doc in store.articles.find({}, fields, batch_size=10_000):
                source = doc.get("_source") or {}
                stored.record(
                    doc["_id"], source.get("hash", ""), source.get("path", ""), facets_of(doc)
                )
        return stored

    @property
    def ids(self) -> dict[str, tuple[str, str, Facets]]:
        """Supports ``_id in stored.ids``."""
        return self.by_id

    def find(self, content_hash: str) -> tuple[str, str] | None:
        """``(_id, path)`` of the stored article with this content, if any."""
        _id = self.by_hash.get(content_hash)
        return None if _id is None else (_id, self.by_id[_id][1])

    def facets(self) -> Iterator[Facets]:
        """What each stored article contributes to the provider and topic counts."""
        return (facets for _, _, facets in self.by_id.values())

    def record(self, _id: str, content_hash: str, path: str, facets: Facets) -> None:
        """An article as it is now stored (just written, moved, or scanned)."""
        previous = self.by_id.get(_id)
        if previous is not None and self.by_hash.get(previous[0]) == _id:
            del self.by_hash[previous[0]]
        self.by_id[_id] = (content_hash, path, facets)
        if content_hash:
            self.by_hash[content_hash] = _id

    def forget(self, _id: str) -> None:
        """An article just deleted from the store."""
        content_hash, _, _ = self.by_id.pop(_id)
        if self.by_hash.get(content_hash) == _id:
            del self.by_hash[content_hash]

    def orphans(self, roots: Iterable[str], seen: set[str]) -> Iterator[tuple[str, str]]:
        """``(_id, path)`` of stored articles whose source file was under one of
        ``roots`` and is gone: not seen by this run and not on disk (a file that
        exists but failed to load keeps its stored version)."""
        prefixes = [(root, root.rstrip(os.sep) + os.sep) for root in roots]
        for _id, (_, path, _) in list(self.by_id.items()):
            under = any(path == root or path.startswith(prefix) for root, prefix in prefixes)
            if under and path not in seen and not os.path.lexists(path):
                yield _id, path
