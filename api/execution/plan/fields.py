"""How each field of the schema is found, for the planner.

A field without a resolver reads its parent's key of the same name, as the
schema's default resolver (``api.schema.resolvers.read_field``) does: the planner
handles every such field, including any added later. A field with a resolver
is planned only if it declares what its resolver does (``api.schema.facts``,
on the fields of ``api.schema.types`` and ``api.schema.query``); any other makes
the operation fall back to ordinary execution. The differential tests (tests/api/test_compiled*.py)
hold the two to the same answers.
"""

from __future__ import annotations

from typing import Any

from api.data.facets import count_held, row_count
from api.execution.plan.nodes import Getter, PlanField
from api.execution.plan.state import State
from api.schema.facts import Kind
from api.schema.nodes import row_id
from api.schema.related import RELATED_MAX
from api.schema.resolvers import read_field


def getter(f: PlanField) -> Getter:
    """The function reading ``f``'s raw value from its parent, once whatever
    the store was asked for it is in the state."""
    kind, name, key = f.kind, f.source, f.key
    if kind is Kind.READ:
        return lambda source, state: read_field(source, name)
    if kind is Kind.TYPENAME:
        parent = f.parent
        return lambda source, state: parent
    if kind is Kind.EVENT:  # as strawberry resolves it: the event is the value
        return lambda source, state: source
    if kind is Kind.ID:
        return lambda source, state: source["_id"]
    if kind is Kind.FACET_ID:
        parent = f.parent
        return lambda source, state: row_id(parent, source)
    # ``related``'s two getters run in a worker thread for a chained plan
    # (``api.execution.plan.fetch``): they must stay pure (read, never write).
    if kind is Kind.LIST:
        if (f.parent, f.name) == ("Article", "related"):
            # As ``related`` without arguments answers (api/schema/related.py).
            return lambda source, state: (source.get(name) or [])[:RELATED_MAX]
        return lambda source, state: source.get(name) or []
    if kind is Kind.RELATED:  # narrowed by its checked arguments (api.execution.plan.fetch)
        return lambda source, state: state.args[f](source.get(name) or [])
    if kind is Kind.TOPICS:
        return lambda source, state: topic_objects(source.get(TOPICS))
    if kind is Kind.TOTAL:
        return lambda source, state: state.totals[id(source)]
    if kind in (Kind.ARTICLE, Kind.FACET):
        return lambda source, state: state.found[f][state.args[f]]
    if kind is Kind.RELATED_ARTICLE:
        return _related_article(f)
    if kind is Kind.FACET_COUNT:
        return _facet_count(f)
    if kind is Kind.ARTICLES and f.facet is not None:
        facet_key_name = f.facet.key
        return lambda source, state: state.pages[f][source.get(facet_key_name)]
    assert kind in (Kind.ARTICLES, Kind.FACETS), (kind, key)
    return lambda source, state: state.pages[f][None]


def document_read(f: PlanField) -> str | None:
    """What :func:`getter` reads from a stored document (a dict named
    ``value``) written as an expression, for the completers written out per
    selection (``api.execution.plan.shape``), where it reads nothing but the
    document; else None (the getter is called). It calls ``value.get``
    itself: no bound method is made for each document."""
    kind, name = f.kind, f.source
    if kind is Kind.READ:  # read_field's own reading of a dict
        return f"value.get({name!r})"
    if kind is Kind.LIST:
        if (f.parent, f.name) == ("Article", "related"):
            return f"(value.get({name!r}) or [])[:{RELATED_MAX!r}]"
        return f"(value.get({name!r}) or [])"
    if kind is Kind.TOPICS:
        return f"[{{'name': n}} for n in value.get({TOPICS!r}) or ()]"
    return None


#: The stored article's key of its topics' names (``Article.topics``).
TOPICS = "topics"


def topic_objects(stored: Any) -> list[dict[str, Any]]:
    """The ``Topic`` objects ``Article.topics`` serves from the names stored."""
    return [{"name": n} for n in stored or ()]


def _related_article(f: PlanField) -> Getter:
    def get(source: Any, state: State) -> Any:
        web_url = source.get("webUrl")
        if not web_url:
            return None
        return state.found[f][state.article_id(web_url)]

    return get


def _facet_count(f: PlanField) -> Getter:
    facet = f.facet
    assert facet is not None

    def get(source: Any, state: State) -> Any:
        known = count_held(facet, source, admin=state.admin)
        if known is not None:
            return known
        return row_count(facet, state.found[f][source[facet.key]], admin=state.admin)

    return get
