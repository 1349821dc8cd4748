"""The operation's document: parsed once per query text, and kept once valid.

Strawberry's ParserCache and ValidationCache keep 512 entries each whatever
their size: a parsed 2,000-token document holds about 1 MB (a Token object per
token, comments included, chained from the document's location), so distinct
large documents could pin half a gigabyte, twice (the validation cache keys on
the document, keeping it alive after the parser cache dropped it).

Here one cache per schema (so per worker; its token limit and validation
rules are fixed) keeps, for each query text, its parsed document,
and only once that document has passed validation: a document that fails to
parse or validate is never kept, so a flood of bad documents cannot evict
good ones, and a repeated query is parsed and validated once.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import DocumentNode, GraphQLError, parse
from strawberry.exceptions import MissingQueryError

from api.bounded import BoundedLRU, document_size
from api.operation.request import Operation, Refused


@dataclass(frozen=True)
class Parsed:
    document: DocumentNode
    #: Estimated bytes the entry holds (document, query text, its key).
    size: int


class DocumentCache:
    """Valid documents by query text, for one schema (whose validation rules
    are fixed, so a document valid once stays valid)."""

    #: Most entries, whatever their size (a lookup is a dict access either way).
    MAX_ENTRIES = 512
    #: Share of the cache one document may take; larger ones are not cached.
    MAX_SHARE = 16

    def __init__(self, max_bytes: int) -> None:
        self.entries: BoundedLRU[str, Parsed] = BoundedLRU(
            self.MAX_ENTRIES, max_bytes, lambda p: p.size, max_bytes // self.MAX_SHARE
        )

    @property
    def bytes(self) -> int:
        """The estimated bytes held now (never over the bound)."""
        return int(self.entries.currsize)

    def get(self, query: str) -> DocumentNode | None:
        entry = self.entries.get(query)
        return None if entry is None else entry.document

    def clear(self) -> None:
        self.entries.clear()

    def put(self, query: str, document: DocumentNode) -> None:
        """Keep a document that has passed validation."""
        self.entries[query] = Parsed(document, document_size(query, document))


class FindDocument:
    """Step: the operation's document, from the cache when this text was found
    valid before (then it is not walked or validated again), else parsed with
    graphql-core's lexer stopping at the token limit."""

    def __init__(self, cache: DocumentCache, max_tokens: int) -> None:
        self.cache = cache
        self.max_tokens = max_tokens

    def __call__(self, op: Operation) -> None:
        if not op.query:
            raise MissingQueryError
        document = self.cache.get(op.query)
        if document is not None:
            op.document, op.known = document, True
            return
        try:
            op.document = parse(op.query, max_tokens=self.max_tokens)
        except GraphQLError as error:
            raise Refused(error) from None
