"""Cache keys: the names a CDN files each answer under, and a purge names.

The API tags each cacheable answer with keys (``Surrogate-Key`` and
``Cache-Tag`` headers, ``api.http.caching``); the loader, after each write,
hands the keys of what changed to a purge hook (``loaders.purge``), which a
CDN integration turns into its own purge calls. The two processes share only
this module, so what one tags and the other purges cannot drift apart.

The keys:

``Article:<id>``, ``Provider:<domain>``, ``Topic:<name>``
    An object the answer holds, or one it looked up and did not find (an
    ``article(id:)`` that answered null changes when that article arrives).
``Article``, ``Provider``, ``Topic``
    A list (a page of a connection, and its ``totalCount``): it changes when an
    object enters or leaves it, or moves in its order, which the object's own
    key cannot say. The loader purges it when a write may do that.
``Article:*``, ``Provider:*``, ``Topic:*``
    An answer holding objects of the type that it does not name, because
    naming them all would pass the header's bound (:func:`bounded`). The
    loader purges it with every change to an object of the type.
``all``
    Every cacheable answer: purged when a write changed too much to name.

Each key is printable ASCII without spaces or commas (the separators of the
two headers): ids are percent-encoded, and a key too long for a CDN (Fastly
and Cloudflare take at most 1024 bytes per key) names a hash of its id.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from urllib.parse import quote

from core.document import ARTICLE_FILTERS
from core.indexes import PROVIDERS_FACET, TOPICS_FACET

ARTICLE = "Article"
PROVIDER = "Provider"
TOPIC = "Topic"
#: The API's object types that have keys, in the order a header lists them.
TYPES = (ARTICLE, PROVIDER, TOPIC)
#: Each facet collection's type (its rows are served as that type).
FACET_TYPES = {PROVIDERS_FACET.collection: PROVIDER, TOPICS_FACET.collection: TOPIC}
#: The key of every cacheable answer.
ALL = "all"
#: Longest key written out; a longer one names a hash of its id instead.
MAX_KEY = 200
#: The article fields that decide which lists an article is in and where:
#: those lists filter on (``core.document.ARTICLE_FILTERS``), those they sort
#: by, and the title's words (a search ranks title matches first). An edit
#: that changes none of them leaves every list as it was, but for the article
#: itself, whose key those lists carry. tests/api/test_cache_keys.py checks
#: that the API's orderings sort by nothing else.
LISTED_FIELDS = tuple(
    sorted(
        {f.path for f in ARTICLE_FILTERS}
        | {"published", "publishedDateTime", "quality", "heat", "_titleWords"}
    )
)


#: Keys kept across requests: the same articles, providers and topics are in
#: answer after answer, and percent-encoding each again was a third of what
#: naming them cost. Only short ids (all an article's, most domains and topic
#: names) are kept, so the cache holds at most a few MB.
KEYS_KEPT = 8192
KEPT_ID = 64
#: What percent-encoding leaves as it is.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]+")


def object_key(type_name: str, ident: str) -> str:
    """The key of one object: ``Article:<id>``, ``Provider:<domain>``, ``Topic:<name>``."""
    if len(ident) <= KEPT_ID:
        return _kept_key(type_name, ident)
    return _object_key(type_name, ident)


def _object_key(type_name: str, ident: str) -> str:
    key = f"{type_name}:{ident if _PLAIN.fullmatch(ident) else quote(ident, safe='')}"
    if len(key) <= MAX_KEY:
        return key
    # '#' is never left unencoded by quote, so a hashed key cannot be another's plain one.
    digest = hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=12)
    return f"{type_name}:#{digest.hexdigest()}"


_kept_key = functools.lru_cache(maxsize=KEYS_KEPT)(_object_key)


def list_key(type_name: str) -> str:
    """The key of every list of ``type_name``."""
    return type_name


def unnamed_key(type_name: str) -> str:
    """The key of answers holding objects of ``type_name`` they do not name."""
    return f"{type_name}:*"


def type_of(key: str) -> str:
    """The type a key is about (``ALL`` for :data:`ALL`)."""
    return key.partition(":")[0]


def bounded(objects: Iterable[tuple[str, str]], lists: Iterable[str], max_bytes: int) -> list[str]:
    """An answer's keys, at most ``max_bytes`` when joined by one separator:
    :data:`ALL`, the list keys, and a key for each ``(type, id)`` object. While
    they are longer, the type whose keys take the most bytes is named by its
    :func:`unnamed_key` instead, so a purge of any object of it still reaches
    the answer. (The keys that are left always fit a bound of 100 bytes.)"""
    named: dict[str, set[str]] = {}
    kept = _kept_key  # object_key, inlined: this loop is most of an answer's cost of keys
    for type_name, ident in objects:
        found = named.get(type_name)
        if found is None:
            found = named[type_name] = set()
        found.add(kept(type_name, ident) if len(ident) <= KEPT_ID else object_key(type_name, ident))
    head = [ALL, *sorted({list_key(t) for t in lists})]
    sizes = {t: sum(map(len, keys)) + len(keys) for t, keys in named.items()}
    size = sum(map(len, head)) + len(head) - 1 + sum(sizes.values())
    unnamed: list[str] = []
    while size > max_bytes and sizes:
        widest = max(sizes, key=sizes.__getitem__)
        size -= sizes.pop(widest)
        del named[widest]
        unnamed.append(unnamed_key(widest))
        size += len(unnamed[-1]) + 1
    # Sorted: the same answer always lists the same header.
    return [*head, *sorted(unnamed), *(k for t in sorted(named) for k in sorted(named[t]))]


# -- what a write purges ---------------------------------------------------------


def article_purge(ident: str, *, before: bool, after: bool, relisted: bool) -> list[str]:
    """The keys a write of one article purges. ``before``/``after``: whether
    anyone could see it before and after the write (it was stored and
    published); ``relisted``: whether a field of :data:`LISTED_FIELDS` changed
    (or may have). An article no client could see either side changes no
    cacheable answer; one that appears or goes changes the lists too."""
    if not (before or after):
        return []
    keys = [object_key(ARTICLE, ident), unnamed_key(ARTICLE)]
    if before != after or relisted:
        keys.append(list_key(ARTICLE))
    return keys


def row_purge(type_name: str, ident: str) -> list[str]:
    """The keys purged when a provider's or topic's row changed as clients
    see it (its count or name): the object, and its lists, which are ordered
    by count."""
    return [object_key(type_name, ident), unnamed_key(type_name), list_key(type_name)]
