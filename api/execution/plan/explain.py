"""A plan in words: the store calls an operation compiles to, then how the
response is shaped from what they return (``newsgraph explain``).

Nothing is sent to any store: the calls are printed as they would be sent for
these variables. Calls below the root depend on what the calls above return
(the ids of related stories, the providers of a page): their varying part is
shown in angle brackets.
"""

from __future__ import annotations

from typing import Any

import orjson
import strawberry
from graphql import GraphQLError, parse, validate
from graphql.execution.values import get_variable_values
from graphql.utilities import get_operation_ast

from api.data.articles import ArticlePage, article_page
from api.data.facets import FacetPage
from api.execution.plan.build import build_plan
from api.execution.plan.fetch import arguments, check
from api.execution.plan.nodes import Plan, PlanField, Selection, Unplannable
from api.schema.context import by_ids
from api.schema.facts import Kind
from core.indexes import ARTICLES


def explain(
    schema: strawberry.Schema,
    query: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
    admin: bool = False,
) -> str:
    """The plan for ``query`` in words, or why there is none."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return f"not a GraphQL document: {error.message}"
    errors = validate(schema._schema, document)
    operation = get_operation_ast(document, operation_name)
    if errors or operation is None:
        return "\n".join(["invalid:", *(f"  {e.message}" for e in errors or [])])
    coerced = get_variable_values(
        schema._schema, operation.variable_definitions or (), variables or {}
    )
    if isinstance(coerced, list):
        return "\n".join(["variables refused:", *(f"  {e.message}" for e in coerced)])
    try:
        plan = build_plan(schema, document, operation, coerced)
    except Unplannable as why:
        return f"not compiled: ordinary execution answers it ({why})"
    lines = ["store calls:"]
    for f in plan.walk():
        if f.store:
            try:
                bound = check(f, arguments(schema, f, coerced), admin) if f.arguments else None
            except Exception as refused:  # what the client would be told
                lines.append(f"  {_where(f)}: refused: {refused}")
                continue
            lines += [f"  {_where(f)}:", *(f"    {c}" for c in _calls(plan, f, bound, admin))]
    if len(lines) == 1:
        lines.append("  none")
    lines.append("shaping:")
    lines += _shaping(plan.root, "  ")
    return "\n".join(lines)


def _where(f: PlanField) -> str:
    return f"{f.parent}.{f.name} as {f.key!r} ({f.kind.value})"


def _calls(plan: Plan, f: PlanField, bound: Any, admin: bool) -> list[str]:
    """The store calls ``f`` makes, as sent."""
    facet = f.facet
    if f.kind is Kind.ARTICLE:
        return [_find(ARTICLES, by_ids([bound]), {**plan.projection(f), "published": 1})]
    if f.kind is Kind.RELATED_ARTICLE:
        ids = {"_id": {"$in": "<the ids of this level's related webUrls>"}}
        return [_find(ARTICLES, ids, {**plan.projection(f), "published": 1}) + "  (one call)"]
    if f.kind is Kind.FACET:
        assert facet is not None
        return [_find(facet.collection, by_ids([bound]))]
    if f.kind is Kind.FACET_COUNT:
        assert facet is not None
        keys = {"_id": {"$in": f"<each {facet.key} without its count, once>"}}
        return [_find(facet.collection, keys) + "  (one call, none if every count is held)"]
    if f.kind is Kind.FACETS:
        rows: FacetPage = bound
        collection = rows.facet.collection
        calls = [_find(collection, rows.query, None, rows.ordering.sort, rows.size + 1)]
        return calls + ([f"count {collection} {_json(rows.base)}"] if f.wants_total else [])
    if facet is not None:  # a page per parent provider or topic
        flt, order, first, after = bound
        scope = {facet.article_field: f"<the {facet.key}>"}
        bound = article_page(flt, order, first, after, scope, admin=admin)
    page: ArticlePage = bound
    proj = plan.projection(f, page.ordering.key)
    calls = [
        _find(ARTICLES, query, proj, page.ordering.sort, page.size + 1)
        if n == 0
        else _find(ARTICLES, query, proj, page.ordering.sort, f"<{page.size + 1} - found>")
        + f"  (tier {tier}, if the page is not full yet)"
        for n, (tier, query) in enumerate(page.queries())
    ]
    if f.wants_total:
        calls.append(f"count {ARTICLES} {_json(page.base)}")
    if facet is not None:
        calls.append(f"(for each {facet.key} of the parents, once)")
    return calls


def _find(collection: str, query: Any, proj: Any = None, sort: Any = None, limit: Any = 0) -> str:
    text = f"find {collection} {_json(query)}"
    if proj:
        text += f" projection {_json(proj)}"
    if sort:
        text += f" sort {_json(sort)}"
    if limit:
        text += f" limit {limit}"
    return text


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _shaping(selection: Selection, indent: str) -> list[str]:
    lines = []
    for f in selection.fields:
        source = {
            Kind.READ: f"<- {f.source}",
            Kind.TYPENAME: f'= "{f.parent}"',
            Kind.ID: "<- _id",
            Kind.FACET_ID: "<- id made from the key",
            Kind.LIST: f"<- {f.source} (or [])",
            Kind.TOPICS: "<- topics (each name an object)",
            Kind.TOTAL: "<- the count above",
            Kind.EVENT: "<- the article the subscription is sent",
        }.get(f.kind, f"<- {f.kind.value} above")
        name = f.key if f.key == f.name else f"{f.key}: {f.name}"
        lines.append(f"{indent}{name}: {f.definition.type} {source}")
        if f.selection is not None:
            lines += _shaping(f.selection, indent + "  ")
    return lines
