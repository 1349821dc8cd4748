"""The article document: the one contract between ``loaders`` and ``api``.

An article file's front matter is stored largely as it appears: the same field
names and nesting. This module declares, as data, which fields newsgraph knows
and what type each must have; the loader enforces it (``loaders.normalize``) and
the API reads the same names. Fields it does not know are kept as they are.

Besides the file's own fields, a stored document carries fields newsgraph derives,
all starting with an underscore so they can never clash with the file's:

``_id``      stable id from the normalized ``webUrl`` (see :func:`article_id`)
``_source``  provenance: ``{path, hash, loadedAt, repaired, newsSeq}`` (the
             last, when it last became news: see ``core.news``)
``_words``   folded words of title and excerpt, for search
``_titleWords``  folded words of the title alone, for relevance
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.config import MAX_TOPICS_ANY

# Bump when normalization changes what a file turns into: every file's content
# hash includes it, so the next load rewrites documents made by older rules.
SHAPE_VERSION = 1


#: A stored document, as pymongo returns it (and the objects the API serves
#: straight from it).
Doc = dict[str, Any]


# -- field kinds -------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    required: bool = False
    max_length: int = 10_000
    #: Repair mojibake with ftfy (and record the repair in ``_source.repaired``).
    repair: bool = False


@dataclass(frozen=True)
class Url:
    """An absolute http(s) URL."""

    required: bool = False


@dataclass(frozen=True)
class DateTime:
    """ISO-8601 text; stored as a UTC datetime."""

    required: bool = False


@dataclass(frozen=True)
class Int:
    required: bool = False
    minimum: int = -(2**63)
    maximum: int = 2**63 - 1
    note: str = ""


@dataclass(frozen=True)
class Bool:
    required: bool = False
    default: bool | None = None


@dataclass(frozen=True)
class Domain:
    """A provider's domain name, stored lower-cased."""

    required: bool = False


@dataclass(frozen=True)
class ListOf:
    item: FieldKind
    max_items: int = 1000
    #: Accept a lone scalar as a one-item list (``topics: AI``).
    scalar_ok: bool = False


@dataclass(frozen=True)
class Obj:
    fields: dict[str, FieldKind] = field(default_factory=dict)
    required: bool = False


FieldKind = Text | Url | DateTime | Int | Bool | Domain | ListOf | Obj


# -- the shape ---------------------------------------------------------------

IMAGE = Obj(
    {
        "url": Url(required=True),
        "width": Int(minimum=0, maximum=1_000_000),
        "height": Int(minimum=0, maximum=1_000_000),
        "title": Text(max_length=1000),
        "isCached": Bool(),
    }
)

PROVIDER = Obj({"name": Text(max_length=200), "domain": Domain()})

QUALITY = Int(minimum=0, maximum=100)

#: What every story has, an article or a related story it cites.
STORY: dict[str, FieldKind] = {
    "title": Text(required=True, max_length=1000, repair=True),
    "excerpt": Text(max_length=10_000, repair=True),
    "publishedDateTime": DateTime(),
    "webUrl": Url(required=True),
    "ampWebUrl": Url(),
    "cdnAmpWebUrl": Url(),
    "type": Text(max_length=100),
}

RELATED = Obj(
    {
        **STORY,
        "provider": PROVIDER,
        "quality": QUALITY,
        "images": ListOf(IMAGE, max_items=50),
    }
)

ARTICLE = Obj(
    {
        "category": Text(max_length=100),
        **STORY,
        "originalUrl": Url(),
        "quality": QUALITY,
        "heat": Int(minimum=-1, maximum=1_000_000, note="-1 means no heat score"),
        # An article without the flag is served: the flag exists to hold one back.
        "published": Bool(default=True),
        "provider": PROVIDER,
        "topics": ListOf(Text(max_length=100), max_items=100, scalar_ok=True),
        "images": ListOf(IMAGE, max_items=50),
        "related": ListOf(RELATED, max_items=100),
        "secured": Text(max_length=100_000),
        "body": Text(max_length=1_000_000),
    },
    required=True,
)


def max_items(shape: Obj, name: str) -> int:
    """The most items the list field ``name`` of ``shape`` may hold (the
    loader refuses more): what bounds it wherever it is served."""
    kind = shape.fields[name]
    assert isinstance(kind, ListOf), f"{name} is not a list"
    return kind.max_items


#: Stored, never served: the API's projection never fetches these, whatever the
#: query asks, and no type of its schema may name one (``tests/api/test_private``).
PRIVATE_FIELDS = frozenset({"secured"})


# -- filters -------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """One way a client narrows a list: the argument it names, the document
    path it tests, and the test (one of :data:`TESTS`). Declared once here: the
    API turns the arguments a client gives into the store's query from these
    (``api.data.filters``), and, for articles, ``core.indexes`` makes the index
    that serves an equality filter with the default order (``index``)."""

    argument: str
    path: str
    test: str
    #: The name of the index serving it (its path, then newest first).
    index: str | None = None
    #: The most values a list argument may hold.
    most: int | None = None

    def __post_init__(self) -> None:
        assert self.test in TESTS, self.test


#: equals: the path holds the value (or, for a list, contains it); any: one of
#: the values; words: every folded word of the text; from: at or after (>=);
#: before: strictly before (<); not: does not hold the value; filled: a
#: non-empty list is there (true) or not (false).
TESTS = frozenset({"equals", "any", "words", "from", "before", "not", "filled"})

#: ``articles(filter:)``, in the order the query is built.
ARTICLE_FILTERS = (
    Filter("published", "published", "equals"),
    Filter("topic", "topics", "equals", index="topic_date"),
    Filter("topicsAny", "topics", "any", most=MAX_TOPICS_ANY),
    Filter("providerDomain", "provider.domain", "equals", index="provider_date"),
    Filter("category", "category", "equals", index="category_date"),
    Filter("type", "type", "equals", index="type_date"),
    Filter("publishedAfter", "publishedDateTime", "from"),
    Filter("publishedBefore", "publishedDateTime", "before"),
    Filter("minQuality", "quality", "from"),
    Filter("minHeat", "heat", "from"),
    Filter("search", "_words", "words", index="words_date"),
)

#: Equality filters clients combine, each pair with an index of its own (both
#: paths, then newest first), by name: a topic's page from one provider then
#: walks that provider's articles of the topic alone, where one filter's
#: index walks the topic's newest until enough of them are the provider's (a
#: walk that grows with the archive: 6.6x from 10k to 100k articles).
COMBINED_FILTERS = (("providerDomain", "topic", "provider_topic_date"),)

#: ``Article.related(filter:)``, evaluated on the stories an article lists
#: (``stored``, which asks the store, is the API's own).
RELATED_FILTERS = (
    Filter("providerDomain", "provider.domain", "equals"),
    Filter("excludeProviderDomain", "provider.domain", "not"),
    Filter("type", "type", "equals"),
    Filter("minQuality", "quality", "from"),
    Filter("publishedAfter", "publishedDateTime", "from"),
    Filter("publishedBefore", "publishedDateTime", "before"),
    Filter("hasImages", "images", "filled"),
)


def kind_at(shape: Obj, path: str) -> FieldKind | None:
    """The declared kind of a dotted path of ``shape`` (None if undeclared)."""
    kind: FieldKind | None = shape
    for name in path.split("."):
        while isinstance(kind, ListOf):
            kind = kind.item
        if not isinstance(kind, Obj):
            return None
        kind = kind.fields.get(name)
    return kind


def domain_key(text: str) -> str:
    """A provider's domain as stored and looked up: trimmed, lower-case."""
    return text.strip().lower()


# -- identity ----------------------------------------------------------------


def normalize_url(url: str) -> str:
    """The form of a URL used for identity: case-folded scheme and host, no
    default port, no fragment, ``http`` treated as ``https``.

    Feeds link the same story as ``http://Example.com/a#top`` and
    ``https://example.com/a``; both must name one article.
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    return urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))


def article_id(web_url: str) -> str:
    """The stable ``_id`` of the article at ``web_url``: 24 hex digits."""
    return hashlib.blake2b(normalize_url(web_url).encode(), digest_size=12).hexdigest()


# -- search words --------------------------------------------------------------

_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Case- and accent-insensitive form: ``"Café"`` -> ``"cafe"``."""
    if text.isascii():  # most text: nothing to decompose, and casefold is lower
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def search_words(text: str) -> list[str]:
    """The distinct folded words of ``text``, in order of first appearance.

    The loader stores these for title and excerpt; the API folds a search the
    same way and matches words exactly, so a search is an index lookup and no
    client text ever becomes a regular expression.
    """
    return list(dict.fromkeys(_WORD.findall(fold(text))))
