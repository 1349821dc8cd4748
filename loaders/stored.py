"""What the store already holds, read once per load.

The loader must know, for every file, whether its content is already stored
(skip it) and, for every document, whether its ``_id`` exists (insert or
replace). Asking per batch costs a query per batch that MongoDB answers from an
index but FerretDB v1 answers by scanning the collection (it pushes down only
``_id`` equality), which made a load quadratic. One projected scan at the start
is linear on both, and the run keeps the answer up to date as it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from newsgraph.store import Store, unavailable_as_error


@dataclass
class Stored:
    #: content hash -> (_id, source path) of each stored article
    by_hash: dict[str, tuple[str, str]] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)

    @classmethod
    def scan(cls, store: Store) -> Stored:
        stored = cls()
        with unavailable_as_error(store.where):
            cursor = store.articles.find(
                {}, {"_source.hash": 1, "_source.path": 1}, batch_size=10_000
            )
            for doc in cursor:
                source = doc.get("_source") or {}
                stored.ids.add(doc["_id"])
                if "hash" in source:
                    stored.by_hash[source["hash"]] = (doc["_id"], source.get("path", ""))
        return stored

    def record(self, _id: str, content_hash: str, path: str) -> None:
        """A document the run has just written."""
        self.ids.add(_id)
        self.by_hash[content_hash] = (_id, path)
