"""The store's collections and the indexes each query path relies on.

Defined once: the loader ensures them before writing, the API before serving, and
the tests check with ``explain()`` that the API's queries use them. Every list
the API serves is sorted on a key plus ``_id`` (the keyset its cursors walk), so
each sort index ends in ``_id``.
"""

from __future__ import annotations

from pymongo import ASCENDING as ASC
from pymongo import DESCENDING as DESC
from pymongo import IndexModel

ARTICLES = "articles"
PROVIDERS = "providers"
TOPICS = "topics"

INDEXES: dict[str, list[IndexModel]] = {
    ARTICLES: [
        IndexModel([("webUrl", ASC)], name="webUrl_unique", unique=True),
        # The loader's incremental check: which of these file hashes are stored?
        IndexModel([("_source.hash", ASC)], name="source_hash"),
        IndexModel([("_source.path", ASC)], name="source_path"),
        # Orders, each within the visible (published) set.
        IndexModel(
            [("published", ASC), ("publishedDateTime", DESC), ("_id", DESC)], name="published_date"
        ),
        IndexModel(
            [("published", ASC), ("quality", DESC), ("_id", DESC)], name="published_quality"
        ),
        IndexModel([("published", ASC), ("heat", DESC), ("_id", DESC)], name="published_heat"),
        # Equality filters, each followed by the default order.
        IndexModel(
            [("topics", ASC), ("publishedDateTime", DESC), ("_id", DESC)], name="topic_date"
        ),
        IndexModel(
            [("provider.domain", ASC), ("publishedDateTime", DESC), ("_id", DESC)],
            name="provider_date",
        ),
        IndexModel(
            [("category", ASC), ("publishedDateTime", DESC), ("_id", DESC)], name="category_date"
        ),
        IndexModel([("type", ASC), ("publishedDateTime", DESC), ("_id", DESC)], name="type_date"),
        # Search: folded words of title and excerpt (multikey).
        IndexModel(
            [("_words", ASC), ("publishedDateTime", DESC), ("_id", DESC)], name="words_date"
        ),
        IndexModel(
            [("_titleWords", ASC), ("publishedDateTime", DESC), ("_id", DESC)],
            name="title_words_date",
        ),
    ],
    # Facet collections, rebuilt by the loader after each run that changed
    # something, so the API never counts articles per request.
    PROVIDERS: [
        IndexModel([("count", DESC), ("_id", ASC)], name="count"),
        IndexModel([("countAll", DESC), ("_id", ASC)], name="count_all"),
    ],
    TOPICS: [
        IndexModel([("count", DESC), ("_id", ASC)], name="count"),
        IndexModel([("countAll", DESC), ("_id", ASC)], name="count_all"),
    ],
}
