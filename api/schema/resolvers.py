"""What the schema's list and lookup fields do, by ordinary (per-field)
execution: the request's context and selections in, the store queries of
``api.data.gateway`` out. Compiled plans (``api.execution.plan``) do the same from a
plan, with the same queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import strawberry
from strawberry.types import Info
from strawberry.types.base import StrawberryObjectDefinition

from api.data.articles import article_key, article_page, fetch_page
from api.data.facets import count_held, facet_page, fetch_facet_page, row_count, served_facet
from api.schema.context import Context
from api.schema.filters import ArticleFilter, ArticleOrder
from api.schema.pagination import Connection, connection
from api.schema.projection import document_keys, fields_under, projection
from core.document import article_id
from core.indexes import ARTICLES, Facet

#: The schema type articles are served as: ``api.operation.schema.types.Article``, named here
#: because that module imports this one. A contract name, never renamed.
ARTICLE_TYPE = "Article"


def read_field(source: Any, name: str) -> Any:
    """The schema's default resolver: objects are served straight from stored
    documents, so a field reads the dict's key of its own name (the page, edge
    and page-info objects are instances: an attribute then)."""
    if type(source) is dict:
        return source.get(name)
    return getattr(source, name)


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


async def list_articles(
    info: Info,
    flt: ArticleFilter | None,
    order: ArticleOrder,
    first: int | None,
    cursor: str | None,
    scope: dict[str, Any] | None = None,
) -> Connection[Any]:
    ctx: Context = info.context
    page = article_page(flt, order.value, first, cursor, scope, admin=ctx.admin)
    proj = article_projection(info, "nodes", always=(page.ordering.key,))
    items, more = await fetch_page(ctx.gateway, page, proj)

    async def count() -> int:
        return await ctx.gateway.count(ARTICLES, page.base)

    return connection(items, more, count)


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


async def facet_count(info: Info, facet: Facet, root: dict[str, Any]) -> int:
    ctx: Context = info.context
    known = count_held(facet, root, admin=ctx.admin)
    if known is not None:
        return known
    row = await ctx.facet_by_id(facet).load(root[facet.key])
    return row_count(facet, row, admin=ctx.admin)
