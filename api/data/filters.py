"""Filters as the one MongoDB query they become: the one filter engine.

What a client may filter on is declared once, in ``core.document``
(``ARTICLE_FILTERS``, ``RELATED_FILTERS``): each names the input's argument,
the document path and the test. Every client value lands in the query as a
value compared for equality or range, never as an operator or a pattern: a
search is folded into words and matched against the words the loader stored
(``_words``), an indexed lookup. The same query serves a list of articles
(the store evaluates it), a subscription's filter and an article's related
stories (``api.data.matcher`` evaluates it in memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from api.data.cursors import Ordering
from api.errors import ClientError
from core.config import MAX_SEARCH_CHARS, MAX_SEARCH_WORDS
from core.document import (
    ARTICLE,
    ARTICLE_FILTERS,
    RELATED,
    RELATED_FILTERS,
    Domain,
    Filter,
    Obj,
    domain_key,
    kind_at,
    search_words,
)

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


def article_query(flt: Any, *, admin: bool) -> dict[str, Any]:
    """One MongoDB filter for ``flt`` (the schema's ``ArticleFilter``) within
    what the request may see."""
    return merge([visible(admin), *conditions(ARTICLE_FILTERS, ARTICLE, flt)])


def related_query(flt: Any) -> dict[str, Any]:
    """One MongoDB filter for ``flt`` (the schema's ``RelatedFilter``), for the
    related stories an article lists (evaluated in memory: ``api.data.matcher``)."""
    return merge(list(conditions(RELATED_FILTERS, RELATED, flt)))


def conditions(filters: tuple[Filter, ...], shape: Obj, given: Any) -> Iterator[dict[str, Any]]:
    """A condition for each declared filter ``given`` (an input object) sets,
    on documents of ``shape``."""
    if given is None:
        return
    for f in filters:
        value = getattr(given, f.argument)
        if value is not None:
            if isinstance(kind_at(shape, f.path), Domain):
                value = [domain_key(v) for v in value] if f.test == "any" else domain_key(value)
            yield condition(f, value)


def condition(f: Filter, value: Any) -> dict[str, Any]:
    """The store's condition for one filter and the value a client gave it
    (normalized as the store holds it)."""
    if f.test == "words":
        return {f.path: {"$all": words(value)}}
    if f.test == "any":
        if f.most is not None and len(value) > f.most:
            raise ClientError(f"{f.argument} takes at most {f.most} values")
        return {f.path: {"$in": list(value)}}
    if f.test == "from":
        return {f.path: {"$gte": value}}
    if f.test == "before":
        return {f.path: {"$lt": value}}
    if f.test == "not":
        return {"$nor": [{f.path: value}]}
    if f.test == "filled":
        absent = [{f.path: None}, {f.path: []}]
        return {"$nor": absent} if value else {"$or": absent}
    return {f.path: value}


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
