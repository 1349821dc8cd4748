"""The embedded engine: mongomock, an in-memory MongoDB inside this process.

One client per process, so that ``newsgraph serve --load`` serves what it loaded.
"""

from __future__ import annotations

import functools
from typing import Any

import mongomock
from mongomock.collection import BulkOperationBuilder

#: Bulk-builder methods already wrapped in this process.
_patched: set[str] = set()
_client: mongomock.MongoClient[dict[str, Any]] | None = None


def client() -> mongomock.MongoClient[dict[str, Any]]:
    global _client
    if _client is None:
        _patch_bulk_builder()
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
