"""What the schema's list and lookup fields do: typed arguments in, one store
query out (two for ``RELEVANCE``, plus one count when ``totalCount`` is asked).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import strawberry
from strawberry.types import Info
from strawberry.types.base import StrawberryObjectDefinition

from api.context import Context
from api.data import Gateway
from api.errors import ClientError
from api.filters import ORDERINGS, ArticleFilter, ArticleOrder, article_query, merge, words
from api.pagination import (
    Connection,
    Ordering,
    Position,
    after,
    connection,
    decode_cursor,
    encode_cursor,
    page_size,
)
from api.projection import document_keys, fields_under, projection
from core.document import article_id
from core.indexes import ARTICLES, Facet

#: The schema type articles are served as: ``api.types.Article``, named here
#: because that module imports this one. A contract name, never renamed.
ARTICLE_TYPE = "Article"
MAX_FACET_SEARCH = 100


def article_projection(info: Info, *path: str, always: tuple[str, ...] = ()) -> dict[str, int]:
    """The projection for the articles a field returns, computed once per query
    field (every related story's ``article`` shares one)."""
    ctx: Context = info.context
    key = (id(info._raw_info.field_nodes[0]), path)
    if key not in ctx.memo:
        selected = selected_under(info.selected_fields, path)
        ctx.memo[key] = projection(selected, article_keys(info.schema), *always)
    fields: dict[str, int] = ctx.memo[key]
    return fields


def selected_under(fields: Iterable[Any], path: tuple[str, ...]) -> set[str]:
    """The field names selected at ``path`` below a field's selections
    (strawberry's ``SelectedField``s): what an article projection is made of."""
    selected: set[str] = set()
    for field in fields:
        for sub_path in path_variants(path):
            selected |= fields_under(field.selections, *sub_path)
    return selected


def article_keys(schema: strawberry.Schema) -> Mapping[str, str]:
    """The document key each field of the schema's article type reads."""
    definition = schema.get_type_by_name(ARTICLE_TYPE)
    assert isinstance(definition, StrawberryObjectDefinition), ARTICLE_TYPE
    return document_keys(definition, schema.config.name_converter)


def path_variants(path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """A connection's nodes are selected under ``edges.node`` or ``nodes``."""
    if path == ("nodes",):
        return [("edges", "node"), ("nodes",)]
    return [path]


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
    flt: ArticleFilter | None,
    order: ArticleOrder,
    first: int | None,
    cursor: str | None,
    scope: dict[str, Any] | None,
    *,
    admin: bool,
) -> ArticlePage:
    """The page ``articles(...)`` asks for; :class:`ClientError` for a request
    it refuses."""
    ordering = ORDERINGS[order]
    if order is ArticleOrder.RELEVANCE and (flt is None or flt.search is None):
        raise ClientError("orderBy: RELEVANCE ranks search results: give filter.search too")
    base = article_query(flt, admin=admin)
    size = page_size(first)
    if scope:
        base = merge([base, scope])
    position = decode_cursor(ordering, cursor) if cursor else None
    if order is ArticleOrder.RELEVANCE:
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


async def list_articles(
    info: Info,
    flt: ArticleFilter | None,
    order: ArticleOrder,
    first: int | None,
    cursor: str | None,
    scope: dict[str, Any] | None = None,
) -> Connection[Any]:
    ctx: Context = info.context
    page = article_page(flt, order, first, cursor, scope, admin=ctx.admin)
    proj = article_projection(info, "nodes", always=(page.ordering.key,))
    items, more = await fetch_page(ctx.gateway, page, proj)

    async def count() -> int:
        return await ctx.gateway.count(ARTICLES, page.base)

    return connection(items, more, count)


def article_key(id: str | None, web_url: str | None) -> str:
    """The ``_id`` that ``article(id:, webUrl:)`` looks up."""
    if (id is None) == (web_url is None):
        raise ClientError("article takes exactly one of `id` or `webUrl`")
    return id if id is not None else article_id(web_url or "")


async def find_article(info: Info, id: str | None, web_url: str | None) -> dict[str, Any] | None:
    key = article_key(id, web_url)
    ctx: Context = info.context
    return await ctx.articles_by_id(article_projection(info)).load(key)


async def related_article(info: Info, web_url: str | None) -> dict[str, Any] | None:
    if not web_url:
        return None
    ctx: Context = info.context
    return await ctx.articles_by_id(article_projection(info)).load(article_id(web_url))


# -- providers and topics --------------------------------------------------------


@dataclass(frozen=True)
class FacetPage:
    """One page of providers or topics, checked before any store call."""

    facet: Facet
    ordering: Ordering
    #: The whole list, as ``totalCount`` counts it.
    base: dict[str, Any]
    query: dict[str, Any]
    size: int
    #: Whether the client is the admin: which count and name it sees.
    admin: bool


def facet_page(
    facet: Facet, first: int | None, cursor: str | None, search: str | None, *, admin: bool
) -> FacetPage:
    size = page_size(first)
    field = facet.count_field(admin)
    ordering = Ordering(f"{facet.collection}.{field}", field, -1, id_direction=1, kind="int")
    base: dict[str, Any] = {field: {"$gt": 0}}
    if search is not None:
        if len(search) > MAX_FACET_SEARCH:
            raise ClientError(f"search may be at most {MAX_FACET_SEARCH} characters long")
        # Escaped: the client's text is matched literally, never as a pattern.
        pattern = {"$regex": re.escape(search.strip()), "$options": "i"}
        searched = facet.searchable(admin)
        base = merge([base, {"$or": [{name: pattern} for name in searched]}])
    query = merge([base, after(ordering, decode_cursor(ordering, cursor))]) if cursor else base
    return FacetPage(facet, ordering, base, query, size, admin)


async def fetch_facet_page(
    gateway: Gateway, page: FacetPage
) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """A page's ``(cursor, node)`` pairs, and whether more follow."""
    sort = page.ordering.sort
    docs = await gateway.find(page.facet.collection, page.query, None, sort, page.size + 1)
    items = [(encode_cursor(page.ordering, d), facet_node(page.facet, d, page.admin)) for d in docs]
    return items[: page.size], len(items) > page.size


async def list_facets(
    info: Info, facet: Facet, first: int | None, cursor: str | None, search: str | None
) -> Connection[Any]:
    ctx: Context = info.context
    page = facet_page(facet, first, cursor, search, admin=ctx.admin)
    items, more = await fetch_facet_page(ctx.gateway, page)

    async def count() -> int:
        return await ctx.gateway.count(facet.collection, page.base)

    return connection(items, more, count)


async def find_facet(info: Info, facet: Facet, key: str) -> dict[str, Any] | None:
    ctx: Context = info.context
    return served_facet(facet, await ctx.facet_by_id(facet).load(key), admin=ctx.admin)


def served_facet(facet: Facet, row: dict[str, Any] | None, *, admin: bool) -> dict[str, Any] | None:
    """A provider or topic looked up by key: none unless it has articles the
    request may see."""
    if row is None or not row.get(facet.count_field(admin)):
        return None
    return facet_node(facet, row, admin)


async def facet_count(info: Info, facet: Facet, root: dict[str, Any]) -> int:
    ctx: Context = info.context
    known = count_held(facet, root, admin=ctx.admin)
    if known is not None:
        return known
    row = await ctx.facet_by_id(facet).load(root[facet.key])
    return row_count(facet, row, admin=ctx.admin)


def count_held(facet: Facet, root: dict[str, Any], *, admin: bool) -> int | None:
    """A provider's or topic's article count when ``root`` answers it alone (a
    count row holds it; without a key there is none): ``None`` means its row
    must be looked up by ``root[facet.key]``."""
    field = facet.count_field(admin)
    if field in root:
        count: int = root[field]
        return count
    return None if root.get(facet.key) else 0


def row_count(facet: Facet, row: dict[str, Any] | None, *, admin: bool) -> int:
    found: int = row.get(facet.count_field(admin), 0) if row else 0
    return found


def facet_node(facet: Facet, row: dict[str, Any], admin: bool) -> dict[str, Any]:
    """The object served for a count row: its ``_id`` under the facet's key, and
    the name this client may see under the facet's name (rows written before
    ``nameAll`` existed give the admin the public name)."""
    node = {**row, facet.key: row["_id"]}
    if facet.name:
        shown = facet.name_field(admin)
        node[facet.name] = row.get(shown or facet.name) or row.get(facet.name) or row["_id"]
    return node
