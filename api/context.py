"""What each request carries: the store, who is asking, and its batch loaders.

DataLoaders live for one request: every ``RelatedStory.article`` (or provider
and topic count) asked for while resolving it is gathered into one store query.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from api.data import Gateway
from api.filters import visible
from newsgraph.indexes import ARTICLES


@dataclass
class Context:
    gateway: Gateway
    admin: bool = False
    _loaders: dict[Any, DataLoader[Any, Any]] = field(default_factory=dict)
    #: Memo for work that depends only on the query text (projections).
    memo: dict[Any, Any] = field(default_factory=dict)

    def articles_by_id(self, projection: dict[str, int]) -> DataLoader[str, dict | None]:
        """Articles by ``_id`` (``None`` for unknown or hidden ones), fetching
        ``projection``: one loader, and so one query, per distinct selection."""
        key = ("articles", tuple(projection))
        if key not in self._loaders:

            async def load(ids: Sequence[str]) -> list[dict | None]:
                query = {"_id": {"$in": list(set(ids))}, **visible(self.admin)}
                docs = await self.gateway.find(ARTICLES, query, projection)
                by_id = {d["_id"]: d for d in docs}
                return [by_id.get(i) for i in ids]

            self._loaders[key] = DataLoader(load_fn=load)
        return self._loaders[key]

    def facet_by_id(self, collection: str) -> DataLoader[str, dict | None]:
        """Provider (by domain) or topic (by name) count rows, batched."""
        if collection not in self._loaders:

            async def load(ids: Sequence[str]) -> list[dict | None]:
                docs = await self.gateway.find(collection, {"_id": {"$in": list(set(ids))}})
                by_id = {d["_id"]: d for d in docs}
                return [by_id.get(i) for i in ids]

            self._loaders[collection] = DataLoader(load_fn=load)
        return self._loaders[collection]


def is_admin(authorization: str | None, admin_token: str) -> bool:
    """Whether an ``Authorization: Bearer <token>`` header carries the admin token."""
    if not admin_token or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), admin_token.encode()
    )
