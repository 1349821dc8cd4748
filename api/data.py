"""Store access for the API: every call bounded, and outages made readable.

pymongo is synchronous; each call runs in a worker thread so the event loop
keeps serving other requests while one waits on the store. The embedded engine
is in-process and answers at once, so it is called inline.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import pymongo.errors

from api.errors import StoreUnavailableError
from api.observe import count_store_call
from core.store import Store, StoreUnavailable

log = logging.getLogger("newsgraph.api")
R = TypeVar("R")

_OUTAGE = (pymongo.errors.ConnectionFailure, pymongo.errors.ExecutionTimeout, StoreUnavailable)


class Gateway:
    def __init__(self, store: Store, op_timeout_ms: int) -> None:
        self.store = store
        self.op_timeout_ms = op_timeout_ms

    async def run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        call = functools.partial(fn, *args, **kwargs)
        count_store_call()
        try:
            if self.store.embedded:
                return call()
            return await anyio.to_thread.run_sync(call)
        except _OUTAGE as exc:
            log.warning("store unavailable: %s", exc)
            raise StoreUnavailableError() from None

    async def find(
        self,
        collection: str,
        query: dict[str, Any],
        projection: dict[str, int] | None = None,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            cursor = self.store.db[collection].find(query, projection)
            if sort:
                cursor = cursor.sort(sort)
            if limit:
                cursor = cursor.limit(limit)
            if not self.store.embedded:
                cursor = cursor.max_time_ms(self.op_timeout_ms)
            return list(cursor)

        return await self.run(fetch)

    async def count(self, collection: str, query: dict[str, Any]) -> int:
        options = {} if self.store.embedded else {"maxTimeMS": self.op_timeout_ms}
        return await self.run(self.store.db[collection].count_documents, query, **options)
