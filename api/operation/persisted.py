"""Automatic Persisted Queries, in Apollo's protocol.

A mobile client sends only the SHA-256 of its query
(``extensions.persistedQuery.sha256Hash``), usually as a short, cacheable GET.
If this worker has not seen that query it answers ``PersistedQueryNotFound``
and the client sends the query once with its hash, which registers it.

The registry is a bounded in-memory LRU per worker, as in Apollo Server: the
API stays stateless (a worker that never saw a hash answers "not found" and
the client registers it there), and a client filling the registry with junk
only evicts old entries. It is bounded by bytes as well as entries, since a
query may be up to the request body limit long. A query is registered only
once it has parsed and passed validation, so the registry never holds a
document that cannot run. Every query is still parsed, validated and limited
like any other when it is executed.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, NamedTuple

from api.bounded import ENTRY_BYTES, BoundedLRU
from api.errors import ClientError
from api.operation.request import Operation


class PersistedQueryError(ClientError):
    """The client's persisted-query extension cannot be honoured."""

    code = "BAD_PERSISTED_QUERY"


class PersistedQueryNotFound(PersistedQueryError):
    # Apollo clients recognise this exact message (and code) and resend the
    # query with its hash.
    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


class PersistedQueryNotSupported(PersistedQueryError):
    code = "PERSISTED_QUERY_NOT_SUPPORTED"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotSupported")


class Resolved(NamedTuple):
    #: The query to execute (None if the request has none: strawberry says so).
    query: str | None
    #: The hash to register ``query`` under once it has validated, if it is new.
    register: str | None = None


class PersistedQueries:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._queries: BoundedLRU[str, str] = BoundedLRU(
            max_entries, max_bytes, lambda query: sys.getsizeof(query) + ENTRY_BYTES
        )

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
                raise PersistedQueryNotFound()
            return Resolved(known)
        if hashlib.sha256(query.encode()).hexdigest() != digest:
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

    def __call__(self, op: Operation) -> None:
        if op.query is not None:  # a trusted document named by id (api.operation.trusted)
            return
        op.query, op.register = self.registry.resolve(op.request.query, op.request.extensions)


class RegisterPersisted:
    """Step, once the document has validated: remember a query sent with its
    hash, so its client can send the hash alone from now on. A document that
    fails to parse or validate is never registered."""

    def __init__(self, registry: PersistedQueries) -> None:
        self.registry = registry

    def __call__(self, op: Operation) -> None:
        if op.register is not None and op.query is not None:
            self.registry.register(op.register, op.query)
