"""Caches bounded by the memory they hold, not only by how many entries.

Strawberry's ParserCache and ValidationCache keep 512 entries each whatever
their size: a parsed 2,000-token document holds about 1 MB (a Token object per
token, comments included, chained from the document's location), so distinct
large documents could pin half a gigabyte, twice (the validation cache keys on
the document, keeping it alive after the parser cache dropped it).

Here one cache per schema keeps, for each query text, its parsed document,
and only once that document has passed validation: a document that fails to
parse or validate is never kept, so a flood of bad documents cannot evict
good ones, and a repeated query is parsed and validated once.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, Token, TokenKind
from strawberry.extensions import SchemaExtension

from api.bounded import BoundedLRU

#: Memory of a parsed document per token, measured with tracemalloc: 420–640
#: bytes (Token, Location, the AST nodes), rounded up; a comment is a bare
#: Token (190 bytes).
BYTES_PER_TOKEN = 700
BYTES_PER_COMMENT = 250


@dataclass(frozen=True)
class Parsed:
    document: DocumentNode
    #: Estimated bytes the entry holds (document, query text, its key).
    size: int


def document_size(query: str, document: DocumentNode) -> int:
    """Estimated bytes of a parsed document and its query text. Counts the
    tokens chained from the document's location (comments included, since the
    lexer keeps them too); linear, and only paid once per cached document."""
    if document.loc is None:  # parsed without locations: every character a token, at most
        return len(query) * BYTES_PER_TOKEN + 2 * sys.getsizeof(query)
    size = 2 * sys.getsizeof(query)  # the text, and the copies token values make of it
    token: Token | None = document.loc.start_token
    while token is not None:
        size += BYTES_PER_COMMENT if token.kind is TokenKind.COMMENT else BYTES_PER_TOKEN
        token = token.next
    return size


class DocumentCache:
    """Valid documents by query text, for one schema (whose validation rules
    are fixed, so a document valid once stays valid)."""

    #: Most entries, whatever their size (a lookup is a dict access either way).
    MAX_ENTRIES = 512
    #: Share of the cache one document may take; larger ones are not cached.
    MAX_SHARE = 16

    def __init__(self, max_bytes: int) -> None:
        self.entries: BoundedLRU[Hashable, Parsed] = BoundedLRU(
            self.MAX_ENTRIES, max_bytes, lambda p: p.size, max_bytes // self.MAX_SHARE
        )

    @property
    def bytes(self) -> int:
        """The estimated bytes held now (never over the bound)."""
        return int(self.entries.currsize)

    def get(self, key: Hashable) -> DocumentNode | None:
        entry = self.entries.get(key)
        return None if entry is None else entry.document

    def put(self, key: Hashable, query: str, document: DocumentNode) -> None:
        self.entries[key] = Parsed(document, document_size(query, document))


def cache_key(query: str, parse_options: Mapping[str, Any]) -> Hashable:
    """A document's key: its text and the options it was parsed with (the
    token limit), since the same text under another limit is another outcome."""
    return (query, tuple(sorted(parse_options.items())))


class DocumentCacheExtension(SchemaExtension):
    """Puts a cached document in place of parsing and validating it, and
    caches a document once it has passed validation.

    Strawberry skips its parse when ``graphql_document`` is already set, and
    its validation when ``pre_execution_errors`` is (the protocol its own
    ParserCache and ValidationCache use)."""

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache
        self.key: Hashable = None
        self.hit = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            self.key = cache_key(context.query, context.parse_options)
            document = self.cache.get(self.key)
            if document is not None:
                context.graphql_document = document
                self.hit = True
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.hit:
            context.pre_execution_errors = []
        yield
        valid = context.pre_execution_errors == []
        if valid and not self.hit and self.key is not None and context.graphql_document:
            self.cache.put(self.key, context.query or "", context.graphql_document)
