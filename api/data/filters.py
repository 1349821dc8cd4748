"""Article filters as the one MongoDB query they become.

Every client value lands in the query as a value compared for equality or
range, never as an operator or a pattern: a search is folded into words and
matched against the words the loader stored (``_words``), an indexed lookup.
The schema's ``ArticleFilter`` input (``api.schema.filters``) is what
:class:`ArticleCriteria` describes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from api.data.cursors import Ordering
from api.errors import ClientError
from core.document import search_words

MAX_SEARCH_CHARS = 500
MAX_SEARCH_WORDS = 20
MAX_TOPICS_ANY = 50


class ArticleCriteria(Protocol):
    """What narrows a list of articles (the schema's ``ArticleFilter``)."""

    topic: str | None
    topicsAny: list[str] | None
    providerDomain: str | None
    category: str | None
    type: str | None
    publishedAfter: datetime | None
    publishedBefore: datetime | None
    minQuality: int | None
    minHeat: int | None
    search: str | None
    published: bool | None


#: Each ``ArticleOrder`` by name.
ORDERINGS: dict[str, Ordering] = {
    "PUBLISHED_DESC": Ordering("PUBLISHED_DESC", "publishedDateTime", -1),
    "PUBLISHED_ASC": Ordering("PUBLISHED_ASC", "publishedDateTime", 1),
    "QUALITY_DESC": Ordering("QUALITY_DESC", "quality", -1, kind="int"),
    "HEAT_DESC": Ordering("HEAT_DESC", "heat", -1, kind="int"),
    # Title matches, then excerpt matches: two tiers, each newest first.
    "RELEVANCE": Ordering("RELEVANCE", "publishedDateTime", -1, tiers=2),
}


def visible(admin: bool) -> dict[str, Any]:
    """What a request may see: published articles, or everything for an admin.

    Everything is spelled ``published in (true, false)`` rather than no
    condition, so that the ``published_*`` indexes still serve an admin's
    unfiltered, sorted list (MongoDB merges the two sorted ranges).
    """
    return {"published": {"$in": [True, False]}} if admin else {"published": True}


def article_query(flt: ArticleCriteria | None, *, admin: bool) -> dict[str, Any]:
    """One MongoDB filter for ``flt`` within what the request may see."""
    clauses: list[dict[str, Any]] = [visible(admin)]
    if flt is not None:
        if flt.published is not None:
            clauses.append({"published": flt.published})
        if flt.topic is not None:
            clauses.append({"topics": flt.topic})
        if flt.topicsAny is not None:
            if len(flt.topicsAny) > MAX_TOPICS_ANY:
                raise ClientError(f"topicsAny takes at most {MAX_TOPICS_ANY} topics")
            clauses.append({"topics": {"$in": list(flt.topicsAny)}})
        if flt.providerDomain is not None:
            clauses.append({"provider.domain": flt.providerDomain.strip().lower()})
        if flt.category is not None:
            clauses.append({"category": flt.category})
        if flt.type is not None:
            clauses.append({"type": flt.type})
        if flt.publishedAfter is not None:
            clauses.append({"publishedDateTime": {"$gte": flt.publishedAfter}})
        if flt.publishedBefore is not None:
            clauses.append({"publishedDateTime": {"$lt": flt.publishedBefore}})
        if flt.minQuality is not None:
            clauses.append({"quality": {"$gte": flt.minQuality}})
        if flt.minHeat is not None:
            clauses.append({"heat": {"$gte": flt.minHeat}})
        if flt.search is not None:
            clauses.append({"_words": {"$all": words(flt.search)}})
    return merge(clauses)


def words(search: str) -> list[str]:
    if len(search) > MAX_SEARCH_CHARS:
        raise ClientError(f"search may be at most {MAX_SEARCH_CHARS} characters long")
    found = search_words(search)
    if not found:
        raise ClientError("search has no words to look for: give letters or digits")
    if len(found) > MAX_SEARCH_WORDS:
        raise ClientError(f"search may have at most {MAX_SEARCH_WORDS} words")
    return found


def merge(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """``{a} + {b}`` as one flat filter while keys differ, ``$and`` once they
    repeat (two conditions on ``topics``, or a range twice on one field)."""
    merged: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for clause in clauses:
        for key, value in clause.items():
            if key in merged:
                extra.append({key: value})
            else:
                merged[key] = value
    if extra:
        return {"$and": [merged, *extra]}
    return merged
