"""The store's collections and the indexes each query path relies on.

Defined once: the loader ensures them before writing, the API before serving, and
the tests check with ``explain()`` that the API's queries use them. Every list
the API serves is sorted on a key plus ``_id`` (the keyset its cursors walk), so
each sort index ends in ``_id``.

The two facet collections (providers, topics) are each declared once as a
:class:`Facet`: the loader writes their rows and the API serves them from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel

from core.document import ARTICLE_FILTERS, COMBINED_FILTERS, domain_key

ARTICLES = "articles"
PROVIDERS = "providers"
TOPICS = "topics"
#: The loaders' lease and write generation (``loaders.lease``): one small document.
LOADER = "_loader"
#: The loader's manifest of what the articles hold (``loaders.manifest``): a
#: log of packed segments, read instead of the articles to make a reload cheap.
MANIFEST = "_manifest"
#: API keys (``core.keys``): one small document per key, under the SHA-256 of
#: its secret; the secret itself is never stored.
KEYS = "_keys"
#: Automatic persisted queries shared by the workers (``api.operation.persisted``):
#: the query under its SHA-256, and when a worker last read it (``used``).
PERSISTED = "_persisted"
#: Each client's budget shared by the workers (``api.operation.throttle``), as
#: the time its bucket is full again (``full``, seconds since the epoch).
BUDGETS = "_budgets"


@dataclass(frozen=True)
class Facet:
    """A facet collection: one row per provider (or topic), its ``_id`` the
    value articles carry, counting those articles.

    The loader counts them, so the API never counts per request; which articles
    each count covers, and who is served which, is decided here for both
    (:meth:`counted_in`, :meth:`count_field`).
    """

    collection: str
    #: The field of the API's object that holds a row's ``_id`` (``Provider.domain``).
    key: str
    #: The article field a row's ``_id`` comes from: an article carries the facet
    #: when this field equals (or, for a list, contains) it.
    article_field: str
    #: The row field holding the name anyone is served, taken from published
    #: articles only, so a draft's text never shows; None: no name but the key.
    name: str | None = None
    #: The same taken from all articles, which only the admin may see.
    name_all: str | None = None
    #: Published articles, which anyone may see.
    count: str = "count"
    #: All articles, which only the admin may see.
    count_all: str = "countAll"

    def key_of(self, value: str) -> str:
        """The row key a client's value names (a domain as stored: lower-case)."""
        return domain_key(value) if self.article_field == "provider.domain" else value

    def count_field(self, admin: bool) -> str:
        """The count a client is served: the admin's includes unpublished articles."""
        return self.count_all if admin else self.count

    def name_field(self, admin: bool) -> str | None:
        """The row field a client is served the name from."""
        return self.name_all if admin else self.name

    def searchable(self, admin: bool) -> tuple[str, ...]:
        """The row fields a client's search matches: the key, and the name it may see."""
        name = self.name_field(admin)
        return ("_id", name) if name else ("_id",)

    def counted_in(self, published: bool) -> tuple[str, ...]:
        """The counts one article adds to."""
        return (self.count, self.count_all) if published else (self.count_all,)


PROVIDERS_FACET = Facet(
    PROVIDERS, key="domain", article_field="provider.domain", name="name", name_all="nameAll"
)
TOPICS_FACET = Facet(TOPICS, key="name", article_field="topics")
FACETS = (PROVIDERS_FACET, TOPICS_FACET)

#: The order lists are served in unless asked otherwise: newest first.
DEFAULT_ORDER = [("publishedDateTime", DESC), ("_id", DESC)]

#: Each article filter's path, by its argument.
_PATHS = {f.argument: f.path for f in ARTICLE_FILTERS}

INDEXES: dict[str, list[IndexModel]] = {
    ARTICLES: [
        IndexModel([("webUrl", ASC)], name="webUrl_unique", unique=True),
        # The loader's incremental check: which of these file hashes are stored?
        IndexModel([("_source.hash", ASC)], name="source_hash"),
        IndexModel([("_source.path", ASC)], name="source_path"),
        # What became news since a subscription poll last looked (core.news),
        # read in this order.
        IndexModel([("_source.newsSeq", ASC), ("_id", ASC)], name="news_seq"),
        # Orders, each within the visible (published) set.
        IndexModel(
            [("published", ASC), ("publishedDateTime", DESC), ("_id", DESC)], name="published_date"
        ),
        IndexModel(
            [("published", ASC), ("quality", DESC), ("_id", DESC)], name="published_quality"
        ),
        IndexModel([("published", ASC), ("heat", DESC), ("_id", DESC)], name="published_heat"),
        # The filters core.document declares an index for (equality, and the
        # folded words of a search: multikey), each followed by the default order.
        *(
            IndexModel([(f.path, ASC), *DEFAULT_ORDER], name=f.index)
            for f in ARTICLE_FILTERS
            if f.index
        ),
        # The pairs of them core.document declares combined (equality on both).
        *(
            IndexModel([(_PATHS[a], ASC), (_PATHS[b], ASC), *DEFAULT_ORDER], name=name)
            for a, b, name in COMBINED_FILTERS
        ),
        # Relevance: title matches first (multikey).
        IndexModel(
            [("_titleWords", ASC), ("publishedDateTime", DESC), ("_id", DESC)],
            name="title_words_date",
        ),
    ],
    # A key is found by its hash (the _id); `newsgraph keys revoke` names it by
    # its short public id.
    KEYS: [IndexModel([("id", ASC)], name="key_id", unique=True)],
    # Both found by _id; these let the API drop what it no longer needs: a
    # registration unread for days, a bucket that is full again (a forgotten
    # bucket is a full one). Not TTL indexes: FerretDB v1 and the embedded
    # engine do not expire documents, so the API deletes them itself.
    PERSISTED: [IndexModel([("used", ASC)], name="used")],
    BUDGETS: [IndexModel([("full", ASC)], name="full")],
    # Facet collections, rebuilt by the loader after each run that changed
    # something, so the API never counts articles per request: listed by
    # either count, most first.
    **{
        facet.collection: [
            IndexModel([(facet.count, DESC), ("_id", ASC)], name="count"),
            IndexModel([(facet.count_all, DESC), ("_id", ASC)], name="count_all"),
        ]
        for facet in FACETS
    },
}
