"""What the schema's list and lookup fields do: typed arguments in, one store
query out (two for ``RELEVANCE``, plus one count when ``totalCount`` is asked).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from strawberry.types import Info
from strawberry.types.base import StrawberryObjectDefinition

from api.context import Context
from api.errors import ClientError
from api.filters import ORDERINGS, ArticleFilter, ArticleOrder, article_query, merge, words
from api.pagination import (
    Connection,
    Ordering,
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
        selected: set[str] = set()
        for field in info.selected_fields:
            for sub_path in path_variants(path):
                selected |= fields_under(field.selections, *sub_path)
        ctx.memo[key] = projection(selected, article_keys(info), *always)
    fields: dict[str, int] = ctx.memo[key]
    return fields


def article_keys(info: Info) -> Mapping[str, str]:
    """The document key each field of the schema's article type reads."""
    definition = info.schema.get_type_by_name(ARTICLE_TYPE)
    assert isinstance(definition, StrawberryObjectDefinition), ARTICLE_TYPE
    return document_keys(definition, info.schema.config.name_converter)


def path_variants(path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """A connection's nodes are selected under ``edges.node`` or ``nodes``."""
    if path == ("nodes",):
        return [("edges", "node"), ("nodes",)]
    return [path]


async def list_articles(
    info: Info,
    flt: ArticleFilter | None,
    order: ArticleOrder,
    first: int | None,
    cursor: str | None,
    scope: dict[str, Any] | None = None,
) -> Connection[Any]:
    ctx: Context = info.context
    ordering = ORDERINGS[order]
    if order is ArticleOrder.RELEVANCE and (flt is None or flt.search is None):
        raise ClientError("orderBy: RELEVANCE ranks search results: give filter.search too")
    base = article_query(flt, admin=ctx.admin)
    size = page_size(first)
    if scope:
        base = merge([base, scope])
    position = decode_cursor(ordering, cursor) if cursor else None
    proj = article_projection(info, "nodes", always=(ordering.key,))

    if order is ArticleOrder.RELEVANCE:
        assert flt is not None and flt.search is not None
        in_title = {"_titleWords": {"$all": words(flt.search)}}
        tiers = [merge([base, in_title]), merge([base, {"$nor": [in_title]}])]
    else:
        tiers = [base]
    found: list[tuple[str, dict[str, Any]]] = []
    first_tier = position.tier if position else 0
    for tier in range(first_tier, len(tiers)):
        query = tiers[tier]
        if position and tier == position.tier:
            query = merge([query, after(ordering, position)])
        want = size + 1 - len(found)
        docs = await ctx.gateway.find(ARTICLES, query, proj, ordering.sort, want)
        found.extend((encode_cursor(ordering, d, tier), d) for d in docs)
        if len(found) > size:
            break

    async def count() -> int:
        return await ctx.gateway.count(ARTICLES, base)

    return connection(found[:size], len(found) > size, count)


async def find_article(info: Info, id: str | None, web_url: str | None) -> dict[str, Any] | None:
    if (id is None) == (web_url is None):
        raise ClientError("article takes exactly one of `id` or `webUrl`")
    key = id if id is not None else article_id(web_url or "")
    ctx: Context = info.context
    return await ctx.articles_by_id(article_projection(info)).load(key)


async def related_article(info: Info, web_url: str | None) -> dict[str, Any] | None:
    if not web_url:
        return None
    ctx: Context = info.context
    return await ctx.articles_by_id(article_projection(info)).load(article_id(web_url))


# -- providers and topics --------------------------------------------------------


async def list_facets(
    info: Info, facet: Facet, first: int | None, cursor: str | None, search: str | None
) -> Connection[Any]:
    ctx: Context = info.context
    size = page_size(first)
    field = facet.count_field(ctx.admin)
    ordering = Ordering(f"{facet.collection}.{field}", field, -1, id_direction=1, kind="int")
    base: dict[str, Any] = {field: {"$gt": 0}}
    if search is not None:
        if len(search) > MAX_FACET_SEARCH:
            raise ClientError(f"search may be at most {MAX_FACET_SEARCH} characters long")
        # Escaped: the client's text is matched literally, never as a pattern.
        pattern = {"$regex": re.escape(search.strip()), "$options": "i"}
        searched = facet.searchable(ctx.admin)
        base = merge([base, {"$or": [{name: pattern} for name in searched]}])
    query = merge([base, after(ordering, decode_cursor(ordering, cursor))]) if cursor else base
    docs = await ctx.gateway.find(facet.collection, query, None, ordering.sort, size + 1)
    items = [(encode_cursor(ordering, d), facet_node(facet, d, ctx.admin)) for d in docs]

    async def count() -> int:
        return await ctx.gateway.count(facet.collection, base)

    return connection(items[:size], len(items) > size, count)


async def find_facet(info: Info, facet: Facet, key: str) -> dict[str, Any] | None:
    ctx: Context = info.context
    row = await ctx.facet_by_id(facet).load(key)
    if row is None or not row.get(facet.count_field(ctx.admin)):
        return None
    return facet_node(facet, row, ctx.admin)


async def facet_count(info: Info, facet: Facet, root: dict[str, Any]) -> int:
    ctx: Context = info.context
    field = facet.count_field(ctx.admin)
    if field in root:
        count: int = root[field]
        return count
    key = root.get(facet.key)
    if not key:
        return 0
    row = await ctx.facet_by_id(facet).load(key)
    found: int = row.get(field, 0) if row else 0
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
