"""A plan's store calls: each field's arguments checked as its resolver checks
them, then the store asked level by level, every lookup of a level in one
call (one ``_id $in`` per nesting level of ``RelatedStory.article``).

The calls are the resolvers' own (``api.data.gateway``, ``api.operation.schema.context``): the
same queries, projections, visibility rules and gateway, so store-call
counting and what a request may see are the same whichever way it runs.

A root ``article`` whose only lookup below is ``related { article }`` (the
mobile query; ``PlanField.chain``) asks its two finds as one worker-thread
job (:func:`_fetch_chained`, ``api.data.gateway.Chain``): the same two finds,
counted, traced and recorded as two, for one thread hop instead of two.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.types.arguments import convert_arguments

from api.data.articles import ArticlePage, article_key, article_page, fetch_page
from api.data.facets import count_held, facet_page, fetch_facet_page, served_facet
from api.data.gateway import Chain, Find
from api.execution.plan.nodes import Plan, PlanField
from api.execution.plan.state import State
from api.schema.context import article_fields, by_ids
from api.schema.facts import STRAWBERRY, Kind
from api.schema.pagination import connection
from api.schema.related import narrowing
from core.document import Doc
from core.indexes import ARTICLES


def arguments(schema: strawberry.Schema, f: PlanField, variables: VariableValues) -> dict[str, Any]:
    """``f``'s arguments as its resolver receives them: coerced by graphql-core
    (which raises for a bad one, as execution does), converted by strawberry."""
    node = f.nodes[0]
    if not (f.definition.args or node.arguments):
        return {}
    raw = get_argument_values(f.definition, node, variables)
    own = f.definition.extensions[STRAWBERRY]
    converted: dict[str, Any] = convert_arguments(
        raw, own.arguments, schema.schema_converter.scalar_registry, schema.config
    )
    return converted


def check(f: PlanField, args: dict[str, Any], admin: bool) -> Any:
    """What the state keeps for ``f``: its resolver's checks made (raising its
    :class:`~api.errors.ClientError`) before any store call."""
    facet = f.facet
    if f.kind is Kind.ARTICLE:
        return article_key(args["id"], args["webUrl"])
    if f.kind is Kind.RELATED:
        return narrowing(args["first"], args["filter"])
    if f.kind is Kind.FACET:
        assert facet is not None
        return facet.key_of(args[facet.key])
    if f.kind is Kind.FACETS:
        assert facet is not None
        return facet_page(facet, args["first"], args["after"], args["search"], admin=admin)
    assert f.kind is Kind.ARTICLES, f.kind
    flt, order, first, after = args["filter"], args["orderBy"].value, args["first"], args["after"]
    page = article_page(flt, order, first, after, None, admin=admin)
    return page if facet is None else (flt, order, first, after)


async def fetch(plan: Plan, f: PlanField, sources: list[Any], state: State) -> None:
    """Ask the store for everything ``f`` needs on ``sources``, then for the
    fields below it, on what came back."""
    if f.chain is not None and state.ctx.gateway.can_chain():
        return await _fetch_chained(plan, f, state)
    if f.store:
        await _fetch(plan, f, sources, state)
    selection = f.selection
    if selection is not None and selection.fetching:
        children = list(_children(f, sources, state))
        for below in selection.fetching:  # the others ask nothing, here or below
            await fetch(plan, below, children, state)


def _children(f: PlanField, sources: list[Any], state: State) -> Iterable[Any]:
    """The objects ``f`` holds on each source: what its selection applies to.
    A source the getter cannot read is left out: shaping reports it."""
    for source in sources:
        try:
            value = f.get(source, state)
        except Exception:  # shaping meets the same error and reports it
            continue
        if type(value) is list:
            yield from (v for v in value if v is not None)
        elif value is not None:
            yield value


async def _fetch(plan: Plan, f: PlanField, sources: list[Any], state: State) -> None:
    ctx, admin, facet = state.ctx, state.admin, f.facet
    if f.kind is Kind.ARTICLE:
        key = state.args[f]
        (doc,) = await ctx.articles([key], plan.projection(f))
        state.found[f] = {key: doc}
    elif f.kind is Kind.RELATED_ARTICLE:
        ids = _related_ids(sources, state)
        docs = await ctx.articles(ids, plan.projection(f)) if ids else []
        state.found[f] = dict(zip(ids, docs, strict=True))
    elif f.kind is Kind.FACET:
        assert facet is not None
        key = state.args[f]
        (row,) = await ctx.facet_rows(facet, [key])
        state.found[f] = {key: served_facet(facet, row, admin=admin)}
    elif f.kind is Kind.FACET_COUNT:
        assert facet is not None
        wanted = [
            s[facet.key]
            for s in sources
            if type(s) is dict and count_held(facet, s, admin=admin) is None
        ]
        keys = list(dict.fromkeys(wanted))
        rows = await ctx.facet_rows(facet, keys) if keys else []
        state.found[f] = dict(zip(keys, rows, strict=True))
    elif f.kind is Kind.FACETS:
        page = state.args[f]
        items, more = await fetch_facet_page(ctx.gateway, page)
        total = await ctx.gateway.count(page.facet.collection, page.base) if f.wants_total else 0
        state.pages[f] = {None: _page(state, items, more, total, f.wants_edges)}
    elif facet is None:
        state.pages[f] = {None: await _articles(plan, f, state.args[f], state)}
    else:
        flt, order, first, after = state.args[f]
        pages = {}
        for value in dict.fromkeys(s.get(facet.key) for s in sources if type(s) is dict):
            scope = {facet.article_field: value}
            page = article_page(flt, order, first, after, scope, admin=admin)
            pages[value] = await _articles(plan, f, page, state)
        state.pages[f] = pages


def _related_ids(stories: list[Any], state: State) -> list[str]:
    """The ids of the articles related ``stories`` name, each once, in order."""
    urls = [s.get("webUrl") for s in stories if type(s) is dict]
    return list(dict.fromkeys(state.article_id(u) for u in urls if u))


async def _fetch_chained(plan: Plan, f: PlanField, state: State) -> None:
    """``f`` (a root ``article``) and its ``related { article }`` (``f.chain``)
    as :func:`fetch` asks them, the second find made in the first's worker
    thread (``api.data.gateway.Chain``): the same finds, counts, cache keys
    and answers, for one thread hop instead of two.

    What runs in the thread (``then``) reads only what no one writes during
    the run (the checked arguments, the plan's fields, ``ctx.admin``) and
    writes only its own ``found``: ``state`` is written here, on the loop."""
    assert f.chain is not None
    related, below = f.chain
    ctx, key = state.ctx, state.args[f]
    # Projections on the loop: the plan's memo of them is shared.
    first = Find(ARTICLES, by_ids([key]), article_fields(plan.projection(f)))
    fields = article_fields(plan.projection(below))
    ctx.note_articles([key])
    found: dict[str, Any] = {}

    def then(docs: list[Doc]) -> Find | None:  # in the worker thread
        found["doc"] = doc = ctx.visible([key], docs)[0]
        stories = list(_children(related, [] if doc is None else [doc], state))
        ids = found["ids"] = _related_ids(stories, state)
        return Find(ARTICLES, by_ids(ids), fields) if ids else None

    chain = Chain(first, then)
    try:
        await ctx.gateway.chain(chain)
    finally:
        if "doc" in found and chain.first_seen:
            state.found[f] = {key: found["doc"]}
        if chain.began:  # as a second call notes them before it is made
            ctx.note_articles(found["ids"])
    if chain.pending is not None:  # handed back to the loop: asked as any lookup
        ids = found["ids"]
        docs = await ctx.articles(ids, plan.projection(below))
        state.found[below] = dict(zip(ids, docs, strict=True))
    elif chain.began:
        ids = found["ids"]
        state.found[below] = dict(zip(ids, ctx.visible(ids, chain.second_docs), strict=True))
    else:  # no related story to look up
        state.found[below] = {}


async def _articles(plan: Plan, f: PlanField, page: ArticlePage, state: State) -> Any:
    """One page of articles (and its total, if asked), as ``list_articles``."""
    proj = plan.projection(f, page.ordering.key)
    items, more = await fetch_page(state.ctx.gateway, page, proj, f.wants_cursors)
    total = await state.ctx.gateway.count(ARTICLES, page.base) if f.wants_total else 0
    return _page(state, items, more, total, f.wants_edges)


def _page(state: State, items: list[tuple[str, Any]], more: bool, total: int, edges: bool) -> Any:
    async def unused() -> int:  # the plan counted already, if asked
        return total

    page = connection(items, more, unused, edges)
    state.totals[id(page)] = total
    return page
