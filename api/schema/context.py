"""What each request carries: the store, who is asking, and its batch loaders.

DataLoaders live for one request: every ``RelatedStory.article`` (or provider
and topic count) asked for while resolving it is gathered into one store query.

Who is asking is an :class:`Identity`, found by the transport
(``api.http.identity``) before anything runs: the budget the pipeline draws
from (``api.operation.throttle``) is the identity's.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from strawberry.dataloader import DataLoader

from api.data.gateway import Gateway
from api.live.feed import Answers, Feed, Owner
from api.schema.caching import Keys, current_keys
from core.cachekeys import ARTICLE, FACET_TYPES
from core.document import Doc
from core.indexes import ARTICLES, Facet

K = TypeVar("K")
V = TypeVar("V")


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose answers outlive any one field waiting for them.

    Several fields await the same future (that is the batching). graphql-core
    cancels a field's siblings when one fails and nulls their parent, and
    cancelling a task cancels the future it awaits: the shared one, so a field
    in another branch, not cancelled at all, would get CancelledError. Each
    caller awaits a shield of the future instead; the future itself is never
    cancelled."""

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


Tier = Literal["anonymous", "key", "admin"]


@dataclass(frozen=True)
class Identity:
    """Who asks, for the budget: ``key`` names whose budget it is
    (``addr:<address>``, ``key:<public id>``, ``admin``), ``tier`` which
    limits apply to it."""

    key: str
    tier: Tier = "anonymous"
    #: Why the credentials the client sent were not honoured (an unknown or
    #: revoked API key): its operations are refused, and the address's
    #: budget pays for them.
    refused: str | None = None


#: Whoever calls the schema with no transport in front (tests, scripts).
LOCAL = Identity("local")


@dataclass
class Context:
    gateway: Gateway
    admin: bool = False
    identity: Identity = LOCAL
    _loaders: dict[Any, DataLoader[Any, Any]] = field(default_factory=dict)
    #: Memo for work that depends only on the query text (projections).
    memo: dict[Any, Any] = field(default_factory=dict)
    #: Over WebSocket: the worker's feed of news, and the connection that
    #: holds the subscriptions (``api.live.feed``). None over HTTP.
    feed: Feed | None = None
    owner: Owner | None = None
    #: Where the answer gathers the keys of the objects it holds, for shared
    #: caches (``api.schema.caching``); None when it is not for one.
    keys: Keys | None = field(default_factory=current_keys)
    #: For one subscription: how it answers each article, and the key it
    #: shares those answers by (``api.execution.subscription``).
    answers: Answers | None = None
    #: The identity's budget as the last operation left it
    #: (``api.operation.throttle``), for the transport's ``RateLimit`` headers.
    budget_status: Any = None

    def for_operation(self) -> Context:
        """A context for one operation of a connection: who asks, and where
        news comes from, but loaders of its own."""
        return Context(self.gateway, self.admin, self.identity, feed=self.feed, owner=self.owner)

    def articles_by_id(self, projection: dict[str, int]) -> DataLoader[str, Doc | None]:
        """Articles by ``_id`` (``None`` for unknown or hidden ones), fetching
        ``projection``: one loader, and so one query, per distinct selection.

        The query names ids only and visibility is checked here, on the fetched
        ``published`` flag: FerretDB v1 serves a query from the ``_id`` index
        only when ``_id`` is its sole condition, and on MongoDB it costs the same.
        """
        key = ("articles", tuple(projection))
        if key not in self._loaders:

            async def load(ids: Sequence[str]) -> list[Doc | None]:
                return await self.articles(ids, projection)

            self._loaders[key] = SharedLoader(load_fn=load)
        return self._loaders[key]

    async def articles(self, ids: Sequence[str], projection: dict[str, int]) -> list[Doc | None]:
        """One store query for the articles with these ids (see
        :meth:`articles_by_id`), in the order asked; compiled plans call it
        directly, with every id of a nesting level at once."""
        self.note_articles(ids)
        docs = await self.gateway.find(ARTICLES, by_ids(ids), article_fields(projection))
        return self.visible(ids, docs)

    def note_articles(self, ids: Sequence[str]) -> None:
        """The articles asked for, among the answer's cache keys: found or
        not, the answer changes when one arrives."""
        if self.keys is not None:
            for i in ids:
                self.keys.add(ARTICLE, i)

    def visible(self, ids: Sequence[str], docs: list[Doc]) -> list[Doc | None]:
        """The articles found for ``ids``, in their order: ``None`` for one not
        found, or unpublished and not asked by an admin. Pure: a chained
        plan's worker thread calls it (``api.execution.plan.fetch``)."""
        by_id = {d["_id"]: d for d in docs if self.admin or d.get("published") is True}
        return [by_id.get(i) for i in ids]

    def facet_by_id(self, facet: Facet) -> DataLoader[str, Doc | None]:
        """A facet's count rows (a provider's by domain, a topic's by name), batched."""
        if facet not in self._loaders:

            async def load(ids: Sequence[str]) -> list[Doc | None]:
                return await self.facet_rows(facet, ids)

            self._loaders[facet] = SharedLoader(load_fn=load)
        return self._loaders[facet]

    async def facet_rows(self, facet: Facet, ids: Sequence[str]) -> list[Doc | None]:
        """One store query for a facet's count rows with these ids, in order."""
        if self.keys is not None:
            type_name = FACET_TYPES[facet.collection]
            for i in ids:
                self.keys.add(type_name, i)
        docs = await self.gateway.find(facet.collection, by_ids(ids))
        by_id = {d["_id"]: d for d in docs}
        return [by_id.get(i) for i in ids]


def article_fields(projection: dict[str, int]) -> dict[str, int]:
    """What an articles lookup asks for: the projection, and what decides who sees it."""
    return {**projection, "published": 1}


def by_ids(ids: Sequence[str]) -> dict[str, Any]:
    """``_id`` equality for one id, ``$in`` for several: both use the ``_id``
    index on MongoDB, but FerretDB v1 serves only equality from it (a one-item
    ``$in`` scans the collection), and one id is the common case: ``article(id:)``."""
    unique = list(dict.fromkeys(ids))
    return {"_id": unique[0]} if len(unique) == 1 else {"_id": {"$in": unique}}


def is_admin(authorization: str | None, admin_token: str) -> bool:
    """Whether an ``Authorization: Bearer <token>`` header carries the admin token.

    Compared as bytes: the header's bytes as sent (ASGI servers hand headers on
    decoded as Latin-1, so encoding back gives them unchanged) against the
    token's UTF-8, so a token that is not ASCII matches when sent as UTF-8.
    """
    if not admin_token or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    try:
        sent = token.strip().encode("latin-1")
    except UnicodeEncodeError:  # not a header as a server decodes one
        return False
    return scheme.lower() == "bearer" and hmac.compare_digest(sent, admin_token.encode())
