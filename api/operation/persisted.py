"""Automatic Persisted Queries, in Apollo's protocol.

A mobile client sends only the SHA-256 of its query
(``extensions.persistedQuery.sha256Hash``), usually as a short, cacheable GET.
If this worker has not seen that query it answers ``PersistedQueryNotFound``
and the client sends the query once with its hash, which registers it.

Each worker keeps a bounded in-memory LRU, as Apollo Server does: a client
filling it with junk only evicts old entries, and it is bounded by bytes as
well as entries, since a query may be up to the request body limit long.

Behind a load balancer a hash registered on one worker would miss on every
other (Apollo Router keeps its registry in Redis for that). newsgraph keeps
its registrations in the store the fleet already shares
(:class:`SharedRegistry`, collection ``_persisted``, on by default): a
registration is written there too, and a hash this worker's LRU misses is
looked up there before the client is asked for its query: one round trip on
a miss, none on a hit. Each stored query is at most the body limit long; one
no worker has read from the store for ``NEWSGRAPH_PERSISTED_QUERIES_DAYS`` is
deleted (by the API, at most once an hour per worker, on its ``used`` index:
a TTL index would do it, but FerretDB v1 and the embedded engine do not
expire documents). Clients add the entries, so the store's share is bounded
too: only queries up to :data:`SHARED_QUERY_MAX_BYTES` are stored, and past
``NEWSGRAPH_PERSISTED_QUERIES_STORED_MAX`` registrations the least recently
read are deleted, checked by each worker hourly and after every tenth of
that many of its own registrations. A store that fails answers
``STORE_UNAVAILABLE``, as the query would have. A query is registered only
once it has parsed and passed validation, so the registry never holds a
document that cannot run. Every query is still parsed, validated and limited
like any other when it is executed.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from api.bounded import ENTRY_BYTES, BoundedLRU
from api.data.gateway import Gateway
from api.errors import ClientError
from api.operation.request import Operation, gateway_of
from core.indexes import PERSISTED

#: How often one worker deletes the registrations unread for too long (seconds).
PRUNE_REGISTRATIONS_S = 3600.0
#: The longest query kept in the store (bytes of UTF-8); a longer one is
#: remembered by each worker only. Apps' operations are a few kilobytes.
SHARED_QUERY_MAX_BYTES = 16_384


class PersistedQueryError(ClientError):
    """The client's persisted-query extension cannot be honoured."""

    code = "BAD_PERSISTED_QUERY"


class PersistedQueryNotFound(PersistedQueryError):
    # Apollo clients recognise this exact message (and code) and resend the
    # query with its hash.
    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self, digest: str = "") -> None:
        super().__init__("PersistedQueryNotFound")
        #: The hash not found (lower-case hex).
        self.digest = digest


class PersistedQueryNotSupported(PersistedQueryError):
    code = "PERSISTED_QUERY_NOT_SUPPORTED"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotSupported")


class Resolved(NamedTuple):
    #: The query to execute (None if the request has none: strawberry says so).
    query: str | None
    #: The hash to register ``query`` under once it has validated, if it is new.
    register: str | None = None


class SharedRegistry:
    """The registrations in the store, shared by every worker and host."""

    def __init__(self, keep_days: int, most: int, clock: Callable[[], float] | None = None) -> None:
        self.keep_s = keep_days * 86400.0
        #: Most registrations kept in the store (the least recently read go first).
        self.most = most
        #: Seconds since the epoch: one clock for every worker and host.
        self.clock = clock or time.time
        self._pruned = float("-inf")
        self._saved = 0  # registrations this worker wrote since it last pruned

    async def find(self, gateway: Gateway, digest: str) -> str | None:
        """The query registered under ``digest``, marked as read now; None if none is."""
        collection = gateway.store.db[PERSISTED]
        update = {"$set": {"used": self.clock()}}

        def read() -> dict[str, Any] | None:
            # No projection: FerretDB v1's findAndModify takes none (a query is
            # most of its row anyway).
            return collection.find_one_and_update({"_id": digest}, update)

        found = await gateway.call("findAndModify", PERSISTED, read)
        query = found.get("query") if found else None
        # What the store holds is checked as a client's is: a row that does
        # not hash to its key is not run.
        if not isinstance(query, str) or _digest(query) != digest:
            return None
        return query

    async def save(self, gateway: Gateway, digest: str, query: str) -> None:
        """Keep ``query`` under ``digest`` (if it is short enough to share);
        now and then, forget the long unread and the least recently read past
        the bound."""
        if len(query.encode()) > SHARED_QUERY_MAX_BYTES:
            return
        collection = gateway.store.db[PERSISTED]
        now = self.clock()
        document = {"$set": {"query": query, "used": now}}

        def write() -> None:
            collection.update_one({"_id": digest}, document, upsert=True)

        await gateway.call("update", PERSISTED, write)
        self._saved += 1
        if now - self._pruned < PRUNE_REGISTRATIONS_S and self._saved < max(1, self.most // 10):
            return
        self._pruned, self._saved = now, 0

        def prune() -> None:
            collection.delete_many({"used": {"$lt": now - self.keep_s}})
            # The newest registration past the bound, by the used index.
            past = list(collection.find({}, {"used": 1}).sort("used", -1).skip(self.most).limit(1))
            if past:
                collection.delete_many({"used": {"$lte": past[0]["used"]}})

        await gateway.call("delete", PERSISTED, prune)


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedQueries:
    def __init__(
        self, max_entries: int, max_bytes: int, shared: SharedRegistry | None = None
    ) -> None:
        self._queries: BoundedLRU[str, str] = BoundedLRU(
            max_entries, max_bytes, lambda query: sys.getsizeof(query) + ENTRY_BYTES
        )
        #: The registrations the fleet shares, looked up on a miss (None: this worker's only).
        self.shared = shared

    def __len__(self) -> int:
        return len(self._queries)

    @property
    def bytes(self) -> int:
        """The estimated bytes held now (never over the bound)."""
        return int(self._queries.currsize)

    def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> Resolved:
        """The query to execute: ``query`` itself, or the one registered under
        the request's hash. Raises :class:`PersistedQueryError` when the
        extension is malformed, the hash does not match, or is unknown."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return Resolved(query)
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError(
                "extensions.persistedQuery must be {version: 1, sha256Hash: <hex>}"
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or len(digest) != 64:
            raise PersistedQueryError(
                "extensions.persistedQuery.sha256Hash must be 64 hexadecimal characters"
            )
        digest = digest.lower()
        if query is None:
            known = self._queries.get(digest)
            if known is None:
                raise PersistedQueryNotFound(digest)
            return Resolved(known)
        if _digest(query) != digest:
            raise PersistedQueryError("provided sha256Hash does not match the query")
        return Resolved(query, digest)

    def register(self, digest: str, query: str) -> None:
        """Remember a query that has parsed and validated (one over the byte
        bound is not kept: its client keeps sending it in full)."""
        self._queries[digest] = query


class NoPersistedQueries(PersistedQueries):
    """Used when persisted queries are switched off."""

    def __init__(self) -> None:
        super().__init__(max_entries=0, max_bytes=0)

    def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> Resolved:
        if (extensions or {}).get("persistedQuery") is not None:
            raise PersistedQueryNotSupported()
        return Resolved(query)


class ResolvePersisted:
    """Step: the query text a request's persisted-query hash names (or the
    query it sent with its hash, to register). Raises
    :class:`PersistedQueryError` when the extension cannot be honoured."""

    def __init__(self, registry: PersistedQueries) -> None:
        self.registry = registry

    def __call__(self, op: Operation) -> Awaitable[None] | None:
        if op.query is not None:  # a trusted document named by id (api.operation.trusted)
            return None
        try:
            op.query, op.register = self.registry.resolve(op.request.query, op.request.extensions)
        except PersistedQueryNotFound as missing:
            gateway = gateway_of(op)
            if self.registry.shared is None or gateway is None:
                raise
            return self._look_up(op, gateway, self.registry.shared, missing)
        return None

    async def _look_up(
        self,
        op: Operation,
        gateway: Gateway,
        shared: SharedRegistry,
        missing: PersistedQueryNotFound,
    ) -> None:
        """Another worker may have registered it: ask the store."""
        query = await shared.find(gateway, missing.digest)
        if query is None:
            raise missing
        self.registry.register(missing.digest, query)
        op.query = query


class RegisterPersisted:
    """Step, once the document has validated: remember a query sent with its
    hash, so its client can send the hash alone from now on. A document that
    fails to parse or validate is never registered."""

    def __init__(self, registry: PersistedQueries) -> None:
        self.registry = registry

    def __call__(self, op: Operation) -> Awaitable[None] | None:
        if op.register is None or op.query is None:
            return None
        self.registry.register(op.register, op.query)
        gateway = gateway_of(op)
        if self.registry.shared is None or gateway is None:
            return None
        return self.registry.shared.save(gateway, op.register, op.query)
