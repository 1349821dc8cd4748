"""The embedded engine: a document store on SQLite with MongoDB's indexes.

Chosen by measuring (issue 21; front page and topic page, 10k synthetic
articles, median of 5): mongomock, which scans and sorts every document in
Python, 364 ms / 27 ms; montydb 2.5.6 (its create_index does nothing) 1,049 /
615 ms; tinymongo 1.3.1 on SQLite (single top-level fields, sorts in Python)
415 / 61 ms; mongita 1.2.0 (unreleased since 2023) 22 / 1 ms, but 325 ms at
100k with a load of 432 documents/s and 431 MB; bsondb 0.1.0 cannot index a
list (``topics``). A prototype of this design answered both in 0.06 ms at 10k
and at 100k. So: SQLite from the standard library (B-trees, WAL, crash-safe
transactions, files another process can share, and its work done outside the
GIL), documents as BSON, and each index declared in ``core.indexes`` kept as a
table of order-preserving keys (``keys``), walked by the plans of ``plan``.
The pymongo-shaped surface the code uses is in ``database``; what is done to
one document in Python (paths, projections, updates, matching) in ``documents``.
"""

from core.engine.database import Busy, Client, Collection, Cursor, Database

__all__ = ["Busy", "Client", "Collection", "Cursor", "Database"]
