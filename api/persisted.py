"""Automatic Persisted Queries, in Apollo's protocol.

A mobile client sends only the SHA-256 of its query
(``extensions.persistedQuery.sha256Hash``), usually as a short, cacheable GET.
If this worker has not seen that query it answers ``PersistedQueryNotFound``
and the client sends the query once with its hash, which registers it.

The registry is a bounded in-memory LRU per worker, as in Apollo Server: the
API stays stateless (a worker that never saw a hash answers "not found" and
the client registers it there), and a client filling the registry with junk
only evicts old entries. Every query is still parsed, validated and limited
like any other when it is executed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from cachetools import LRUCache
from strawberry.extensions import SchemaExtension

from api.errors import ClientError


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


class PersistedQueries:
    def __init__(self, max_entries: int) -> None:
        self._queries: LRUCache[str, str] = LRUCache(maxsize=max_entries)

    def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The query to execute: ``query`` itself, or the one registered under
        the request's hash. Raises :class:`PersistedQueryError` when the
        extension is malformed, the hash does not match, or is unknown."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return query
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
            return known
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            raise PersistedQueryError("provided sha256Hash does not match the query")
        self._queries[digest] = query
        return query


class NoPersistedQueries(PersistedQueries):
    """Used when persisted queries are switched off."""

    def __init__(self) -> None:
        super().__init__(max_entries=1)

    def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        if (extensions or {}).get("persistedQuery") is not None:
            raise PersistedQueryNotSupported()
        return query


class PersistedQueryExtension(SchemaExtension):
    """Puts the persisted query in place before strawberry parses the request.

    Its errors become the response's GraphQL errors, with their codes."""

    def __init__(self, registry: PersistedQueries) -> None:
        self.registry = registry

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.query = self.registry.resolve(context.query, context.operation_extensions)
        yield
