"""Lists and lookups of articles as store queries: typed arguments in, one
store query out (two for ``RELEVANCE``, plus one count when ``totalCount`` is
asked). Every argument is checked before any store call, so a client's
mistake costs none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api.data.cursors import Ordering, Position, after, decode_cursor, encode_cursor, page_size
from api.data.filters import ORDERINGS, article_query, merge, words
from api.data.gateway import Gateway
from api.errors import ClientError
from core.document import article_id
from core.indexes import ARTICLES


@dataclass(frozen=True)
class ArticlePage:
    """One page of a list of articles, checked and turned into store queries
    before any is sent (so a client's mistake costs no store call)."""

    ordering: Ordering
    #: The whole list, as ``totalCount`` counts it.
    base: dict[str, Any]
    #: One query per ranked tier (RELEVANCE has two), each walked in turn.
    tiers: list[dict[str, Any]]
    position: Position | None
    size: int

    def queries(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The tiers this page reads from, each after the cursor's position."""
        position = self.position
        for tier in range(position.tier if position else 0, len(self.tiers)):
            query = self.tiers[tier]
            if position and tier == position.tier:
                query = merge([query, after(self.ordering, position)])
            yield tier, query


def article_page(
    flt: Any,
    order: str,
    first: int | None,
    cursor: str | None,
    scope: dict[str, Any] | None,
    *,
    admin: bool,
) -> ArticlePage:
    """The page ``articles(...)`` asks for; :class:`ClientError` for a request
    it refuses."""
    ordering = ORDERINGS[order]
    if order == "RELEVANCE" and (flt is None or flt.search is None):
        raise ClientError("orderBy: RELEVANCE ranks search results: give filter.search too")
    base = article_query(flt, admin=admin)
    size = page_size(first)
    if scope:
        base = merge([base, scope])
    position = decode_cursor(ordering, cursor) if cursor else None
    if order == "RELEVANCE":
        assert flt is not None and flt.search is not None
        in_title = {"_titleWords": {"$all": words(flt.search)}}
        tiers = [merge([base, in_title]), merge([base, {"$nor": [in_title]}])]
    else:
        tiers = [base]
    return ArticlePage(ordering, base, tiers, position, size)


async def fetch_page(
    gateway: Gateway, page: ArticlePage, proj: dict[str, int], cursors: bool = True
) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """A page's ``(cursor, document)`` pairs, and whether more follow: one
    find per tier read, each asking for one more than is still missing.
    Without ``cursors`` (a compiled plan whose query reads none) each is ""."""
    found: list[tuple[str, dict[str, Any]]] = []
    for tier, query in page.queries():
        want = page.size + 1 - len(found)
        docs = await gateway.find(ARTICLES, query, proj, page.ordering.sort, want)
        if cursors:
            found.extend((encode_cursor(page.ordering, d, tier), d) for d in docs)
        else:
            found.extend(("", d) for d in docs)
        if len(found) > page.size:
            break
    return found[: page.size], len(found) > page.size


def article_key(id: str | None, web_url: str | None) -> str:
    """The ``_id`` that ``article(id:, webUrl:)`` looks up."""
    if (id is None) == (web_url is None):
        raise ClientError("article takes exactly one of `id` or `webUrl`")
    return id if id is not None else article_id(web_url or "")
