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

A refusal costs less than an answer. graphql-core's lexer is Python that
walks the text a character at a time and makes a Token per token: refusing a
document at the 2,000-token limit took 16–20 ms of CPU, and a 96 KB block
string, one token, 27 ms and then a parse. graphql-core's own limits
(``max_tokens``, ``max_lexical_tokens``, ``max_comments``) are checked by that
lexer as it goes, so they cost the same, and ``max_source_length`` counts
characters alone, which would refuse a long document of few tokens and pass
a dense one. So before the lexer runs, :func:`over_token_limit` counts the
text's tokens with one regular expression in C (matches are replaced, not
made into objects: nothing is allocated per token, and it stops at the
limit), by this rule: **each token counts one, a comment too (as
graphql-core counts them), and each 32 characters of the text count one
more**. The lexer reads strings, comments, names and spaces a character at a
time, and a character costs it about a thirtieth of a token, so no document
within the limit costs it more than 2,000 ordinary tokens do: a 96 KB block
string counts 3,000 and is refused in O(1), 1 KB of comment counts 32. The
README's largest query counts 62 + 430/32 = 75. Refusing a 6,000-token
document costs 0.2 ms, a 64 KB string 0.5–1.4 ms.

A text refused there or by the parser is remembered by its BLAKE2 digest (a
few hundred bytes each, in a small cache bounded by bytes), so a client
resending it is refused at the cost of hashing it (0.1 ms for 100 KB), with
the same error. A cryptographic digest, not ``hash()``: with a known
``PYTHONHASHSEED`` a client could make a text that collides with a valid
query, and have it refused for everyone.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass

from graphql import DocumentNode, GraphQLError, Source, parse
from strawberry.exceptions import MissingQueryError

from api.bounded import BoundedLRU, document_size
from api.operation.request import Operation, Refused

#: What a refused text is remembered by (:func:`digest`).
Digest = bytes

#: Characters that count one token more, whatever they are (see above).
CHARS_PER_TOKEN = 32

#: What the lexer ignores between tokens (besides comments).
IGNORED = " \t\n\r,\ufeff"

#: One match per token, with the ignored characters before it: a block
#: string, a string, a comment, a number, a name, a spread, or any other
#: character (a punctuator, or one the lexer will refuse). Possessive loops:
#: nothing is kept to backtrack into, so memory stays flat however long a string.
_TOKEN = re.compile(
    r"[ \t\n\r,\ufeff]*+(?:"
    r'"""[^"\\]*+(?:(?:\\(?:""")?|"(?!""))[^"\\]*+)*+(?:"""|\Z)'  # block string
    r'|"[^"\\\n\r]*+(?:\\.[^"\\\n\r]*+)*+"?'  # string
    r"|#[^\n\r]*+"  # comment
    r"|-?\d++(?:\.\d++)?(?:[eE][+-]?\d++)?"  # number
    r"|[_A-Za-z][_0-9A-Za-z]*+"  # name
    r"|\.\.\."  # spread
    r"|[^ \t\n\r,\ufeff])"  # a punctuator, or a character the lexer refuses
)


def over_token_limit(query: str, limit: int) -> bool:
    """Whether ``query`` counts more than ``limit`` tokens by the rule above."""
    budget = limit - len(query) // CHARS_PER_TOKEN
    if budget < 0:
        return True
    # ``subn`` counts the matches in C, and stops after budget + 1 of them.
    # Ignored characters at the end are no token, and are cut first: at each
    # of them the pattern read all the rest before failing and trying the
    # next, so 60,000 trailing spaces (a valid 60 kB query) took 2 s of the
    # event loop to count; cut in C, they take microseconds.
    return _TOKEN.subn("", query.rstrip(IGNORED), count=budget + 1)[1] > budget


def too_many_tokens(limit: int) -> str:
    return (
        f"Syntax Error: Document contains more than {limit} tokens (each token counts "
        f"one, and so do each {CHARS_PER_TOKEN} characters). Parsing aborted."
    )


@dataclass(frozen=True)
class Refusal:
    """Why a text was refused before it parsed: the error's words and where
    it points, made into the same error again for the same text."""

    message: str
    positions: tuple[int, ...]

    @property
    def size(self) -> int:
        return sys.getsizeof(self.message) + 64 * len(self.positions) + 300

    def error(self, query: str) -> GraphQLError:
        if not self.positions:
            return GraphQLError(self.message)
        return GraphQLError(self.message, source=Source(query), positions=list(self.positions))


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

    #: Refused texts remembered (by digest), and their memory.
    REFUSALS_KEPT = 1024
    REFUSALS_BYTES = 512_000

    def __init__(self, max_bytes: int) -> None:
        self.entries: BoundedLRU[str, Parsed] = BoundedLRU(
            self.MAX_ENTRIES, max_bytes, lambda p: p.size, max_bytes // self.MAX_SHARE
        )
        self.refusals: BoundedLRU[Digest, Refusal] = BoundedLRU(
            self.REFUSALS_KEPT,
            self.REFUSALS_BYTES,
            lambda r: r.size,
            self.REFUSALS_BYTES // self.MAX_SHARE,
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
        self.refusals.clear()

    def refusal(self, digest: Digest) -> Refusal | None:
        """How the text of this :func:`digest` was refused before, if it was
        (and is remembered)."""
        return self.refusals.get(digest)

    def refuse(self, digest: Digest, refusal: Refusal) -> None:
        """Remember that the text of this :func:`digest` was refused before
        it parsed, and how."""
        self.refusals[digest] = refusal

    def put(self, query: str, document: DocumentNode) -> None:
        """Keep a document that has passed validation."""
        self.entries[query] = Parsed(document, document_size(query, document))


def digest(query: str) -> Digest:
    """What a refused text is remembered by: 16 bytes of its BLAKE2."""
    return hashlib.blake2b(query.encode(errors="surrogatepass"), digest_size=16).digest()


class FindDocument:
    """Step: the operation's document, from the cache when this text was found
    valid before (then it is not walked or validated again); else refused at
    once if it is longer than the token limit allows, or was refused before;
    else counted (:func:`over_token_limit`) and parsed (graphql-core's lexer
    stopping at the limit too)."""

    def __init__(self, cache: DocumentCache, max_tokens: int) -> None:
        self.cache = cache
        self.max_tokens = max_tokens
        self.too_long = Refusal(too_many_tokens(max_tokens), ())

    def __call__(self, op: Operation) -> None:
        query = op.query
        if not query:
            raise MissingQueryError
        if len(query) // CHARS_PER_TOKEN > self.max_tokens:  # not even read
            raise Refused(self.too_long.error(query))
        document = self.cache.get(query)
        if document is not None:
            op.document, op.known = document, True
            return
        key = digest(query)
        refusal = self.cache.refusal(key)
        if refusal is None and over_token_limit(query, self.max_tokens):
            refusal = self.too_long
            self.cache.refuse(key, refusal)
        if refusal is not None:
            raise Refused(refusal.error(query))
        try:
            op.document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as error:
            self.cache.refuse(key, Refusal(error.message, tuple(error.positions or ())))
            raise Refused(error) from None
