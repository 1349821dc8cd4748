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
from urllib.parse import urlsplit, urlunsplit

# Bump when normalization changes what a file turns into: every file's content
# hash includes it, so the next load rewrites documents made by older rules.
SHAPE_VERSION = 1


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

#: Stored, never served: the API's projection never fetches these, whatever the
#: query asks, and no type of its schema may name one (``tests/api/test_private``).
PRIVATE_FIELDS = frozenset({"secured"})


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
