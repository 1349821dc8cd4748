"""HTTP caching as the schema decides it: how long an answer may be kept, by
whom, and which objects it holds.

How long and by whom (:func:`policy`) comes from the hints declared on the
fields and types themselves (``api.schema.facts``: ``cache=`` on a field,
:func:`~api.schema.facts.cached` on a type): an answer takes the shortest hint
among every field its operation selects, the type each returns included, and
is private if any is. It depends on the document alone, so it is worked out
once per query text (``api.operation.caching``) by a walk of the document:
every field, whatever ``@skip``/``@include`` decide, so a hint is never missed
(at worst an answer is kept for less than it could be).

Which objects (:class:`Keys`) is found while the answer is made, by both ways
of making it: every object of a keyed type (``core.cachekeys``) that ordinary
execution completes passes its type's ``is_type_of`` (``api.schema.types``),
and every one a plan shapes passes its object completion
(``api.execution.plan.shape``); every id looked up, found or not, passes the
request's context (``api.schema.context``). So the keys name exactly what the
answer holds, however it was made. Lists are known from the document: a
connection of a keyed type adds that type's list key.

Keys are gathered only for a request whose answer may go to a shared cache
(an anonymous GET): ``api.http.caching`` opens :func:`collecting` around it,
and the request's context picks it up when made (:func:`current_keys`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)
from graphql.utilities import get_operation_ast

from api.schema.facts import STRAWBERRY, TYPE_HINT, Cache, answered_by
from core.cachekeys import ARTICLE, PROVIDER, TOPIC

#: The key of the served dict that holds each keyed type's id: an article's
#: ``_id``, a provider's domain, a topic's name (as ``api.data.facets`` serves them).
ID_FIELDS = {ARTICLE: "_id", PROVIDER: "domain", TOPIC: "name"}


@dataclass(frozen=True)
class AnswerPolicy:
    """What an operation's hints say about every answer to it."""

    #: Seconds; None: no field limits it (the settings do).
    max_age: int | None = None
    private: bool = False
    #: The keyed types it selects lists (connections) of.
    lists: frozenset[str] = frozenset()


def policy(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> AnswerPolicy | None:
    """The policy of a valid document's query; None for no single query
    (a subscription's answers are never cached)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    root = schema.query_type
    assert root is not None
    walk = _Walk(schema, document)
    walk.selections(operation.selection_set, root)
    ages = [h.max_age for h in walk.hints if h.max_age is not None]
    return AnswerPolicy(
        min(ages) if ages else None, any(h.private for h in walk.hints), frozenset(walk.lists)
    )


class _Walk:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.seen: set[str] = set()
        self.hints: set[Cache] = set()
        self.lists: set[str] = set()

    def selections(self, selection_set: SelectionSetNode, parent: GraphQLNamedType) -> None:
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                self.field(node, parent)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                if on is not None:
                    self.selections(node.selection_set, on)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in self.seen:
                    continue  # a fragment's hints are the same wherever it is spread
                self.seen.add(name)
                on = self.schema.get_type(fragment.type_condition.name.value)
                if on is not None:
                    self.selections(fragment.selection_set, on)

    def field(self, node: FieldNode, parent: GraphQLNamedType) -> None:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return  # a union's only field is __typename
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return  # __typename, or introspection: no hints
        declared = answered_by(definition)
        if declared is not None and declared.cache is not None:
            self.hints.add(declared.cache)
        returned = get_named_type(definition.type)
        self.hints.update(type_hints(self.schema, returned))
        if isinstance(returned, GraphQLObjectType) and "pageInfo" in returned.fields:
            item = get_named_type(returned.fields["nodes"].type)
            if item.name in ID_FIELDS:
                self.lists.add(item.name)
        if node.selection_set is not None:
            self.selections(node.selection_set, returned)


def type_hints(schema: GraphQLSchema, named: GraphQLNamedType) -> list[Cache]:
    """The hints a type declares (:func:`api.schema.facts.cached`); for an
    interface or union, those of every type it may be."""
    if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
        return [h for t in schema.get_possible_types(named) for h in type_hints(schema, t)]
    definition = (named.extensions or {}).get(STRAWBERRY)
    hint = getattr(getattr(definition, "origin", None), TYPE_HINT, None)
    return [hint] if isinstance(hint, Cache) else []


# -- the objects an answer holds -----------------------------------------------


@dataclass(eq=False)
class Keys:
    """What one answer holds, gathered as it is made: ``(type, id)`` of every
    keyed object in it or looked up for it; and, once it is made, the policy
    of its operation (``api.operation.caching``)."""

    #: None: not gathered (no header lists them; only the policy is wanted).
    objects: set[tuple[str, str]] | None = field(default_factory=set)
    policy: AnswerPolicy | None = None
    #: Whether the answer may be kept by shared caches (CDNs, proxies) and
    #: so given to other clients: decided once, by the pipeline's finish
    #: step (``api.operation.caching``), which then keeps every client's own
    #: state (its budget) out of it; the HTTP layer's headers follow it.
    shared: bool = False

    def add(self, type_name: str, ident: Any) -> None:
        if self.objects is not None and type(ident) is str and ident:
            self.objects.add((type_name, ident))

    def add_served(self, type_name: str, served: Any) -> None:
        """A served object (a dict: ``api.schema.types.served``) of ``type_name``."""
        if type(served) is dict:
            self.add(type_name, served.get(ID_FIELDS[type_name]))


_collecting: ContextVar[Keys | None] = ContextVar("newsgraph_cache_keys", default=None)


@contextmanager
def collecting(keys: Keys) -> Iterator[Keys]:
    """Gather into ``keys`` the keys of the answer made within (one request's)."""
    token = _collecting.set(keys)
    try:
        yield keys
    finally:
        _collecting.reset(token)


def current_keys() -> Keys | None:
    """Where the current request's answer gathers its keys; None: nowhere
    (its answer is not for a shared cache)."""
    return _collecting.get()
