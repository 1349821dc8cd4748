"""The planner: a validated operation (and the variables its ``@skip`` and
``@include`` read) made into a :class:`~api.execution.plan.nodes.Plan`.

Fields are collected by graphql-core's own ``collect_fields`` and
``collect_subfields``, so aliases, fragments, merged fields and directives
group exactly as execution groups them; each field is then classified
(:mod:`api.execution.plan.fields`). Introspection, and any field whose resolver the
planner does not know, raise :class:`~api.execution.plan.nodes.Unplannable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    is_leaf_type,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues
from graphql.language import (
    DirectiveNode,
    ListValueNode,
    ObjectValueNode,
    ValueNode,
    VariableNode,
    Visitor,
    visit,
)
from graphql.type.introspection import TypeNameMetaFieldDef
from strawberry.types.nodes import convert_selections

from api.execution.plan.nodes import STORE_KINDS, Plan, PlanField, Selection, Unplannable
from api.execution.plan.shape import prepare
from api.schema.facts import STRAWBERRY, Kind, answered_by
from api.schema.resolvers import article_keys, selected_under

#: Where a field's articles are selected below it: a page's under its nodes.
ARTICLE_PATHS = {Kind.ARTICLES: ("nodes",), Kind.ARTICLE: (), Kind.RELATED_ARTICLE: ()}


def build_plan(
    schema: strawberry.Schema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: VariableValues,
) -> Plan:
    # A subscription's plan answers one article it is sent (``Kind.EVENT``).
    root_type = {
        OperationType.QUERY: schema._schema.query_type,
        OperationType.SUBSCRIPTION: schema._schema.subscription_type,
    }.get(operation.operation)
    if root_type is None:
        raise Unplannable(f"{operation.operation.value} operations are not planned")
    definitions = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if any(d.variable_definitions for d in definitions.values()):
        raise Unplannable("fragment variables are not planned")
    planner = _Planner(schema, definitions, operation, variables)
    grouped = collect_fields(
        schema._schema, planner.fragments, variables, root_type, operation
    ).grouped_field_set
    root = planner.selection(root_type, grouped)
    prepare(root)
    for f in root.fields:
        f.chain = _chain(f)
    plan = Plan(operation, root, article_keys(schema))
    plan.nested_arguments = [f for f in plan.walk() if f.arguments and f.parent != "Query"]
    return plan


def directive_variables(document: DocumentNode) -> frozenset[str]:
    """The variables that ``@skip``/``@include`` read anywhere in ``document``:
    the only ones that change which fields a plan has."""
    names: set[str] = set()

    class Directives(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            for argument in node.arguments or ():
                if isinstance(argument.value, VariableNode):
                    names.add(argument.value.name.value)

    visit(document, Directives())
    return frozenset(names)


def _chain(f: PlanField) -> tuple[PlanField, PlanField] | None:
    """``related`` and its ``article`` below a root ``article`` whose only
    store call below is theirs, one level deep: the shape whose second find
    may be made in the first's worker thread (``api.data.gateway.Chain``),
    which runs only pure code between them (``related``'s getter, the
    related stories' ids). Any other shape asks level by level on the loop."""
    if f.kind is not Kind.ARTICLE or f.selection is None or len(f.selection.fetching) != 1:
        return None
    (r,) = f.selection.fetching
    if (
        (r.parent, r.name) != ("Article", "related")
        or r.kind not in (Kind.LIST, Kind.RELATED)
        or r.selection is None
        or len(r.selection.fetching) != 1
    ):
        return None
    (h,) = r.selection.fetching
    if h.kind is not Kind.RELATED_ARTICLE or (h.selection is not None and h.selection.fetching):
        return None
    return r, h


class _Planner:
    def __init__(
        self,
        schema: strawberry.Schema,
        definitions: dict[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: VariableValues,
    ) -> None:
        self.schema = schema
        self.fragments = {name: FragmentDetails(d) for name, d in definitions.items()}
        self.operation = operation
        self.variables = variables
        # What strawberry's ``info.selected_fields`` reads: fragments and variables.
        self.info = SimpleNamespace(fragments=definitions, variable_values=variables.coerced)

    def selection(
        self, parent: GraphQLObjectType, grouped: dict[str, list[FieldDetails]]
    ) -> Selection:
        fields = [self.field(parent, key, details) for key, details in grouped.items()]
        fetches = any(
            f.kind in STORE_KINDS or (f.selection is not None and f.selection.fetches)
            for f in fields
        )
        return Selection(parent.name, fields, fetches)

    def field(self, parent: GraphQLObjectType, key: str, details: list[FieldDetails]) -> PlanField:
        nodes = [d.node for d in details]
        name = nodes[0].name.value
        if name == "__typename":
            return PlanField(key, name, parent.name, Kind.TYPENAME, nodes, TypeNameMetaFieldDef)
        if name.startswith("__"):
            raise Unplannable(f"introspection ({name}) is answered by ordinary execution")
        definition = parent.fields[name]
        own = definition.extensions.get(STRAWBERRY)
        if own is None:
            raise Unplannable(f"{parent.name}.{name} is not a strawberry field")
        facet = None
        declared = answered_by(own)
        if own.base_resolver is None:
            kind = Kind.READ
        elif declared is not None and declared.kind is not None:
            kind, facet = declared.kind, declared.facet
        else:
            raise Unplannable(f"{parent.name}.{name} has a resolver the planner does not know")
        if kind is Kind.LIST and nodes[0].arguments:
            # related(first, filter): narrowed as its resolver narrows (api/schema/related.py).
            if (parent.name, name) != ("Article", "related"):
                raise Unplannable(f"{parent.name}.{name} with arguments is not planned")
            kind = Kind.RELATED
        f = PlanField(key, name, parent.name, kind, nodes, definition, own.python_name, facet)
        f.reads = tuple(
            sorted({name for a in nodes[0].arguments or () for name in _variables(a.value)})
        )
        target = get_named_type(definition.type)
        if isinstance(target, GraphQLObjectType):
            sub = collect_subfields(
                self.schema._schema, self.fragments, self.variables, self.operation, target, details
            ).grouped_field_set
            f.selection = self.selection(target, sub)
            f.wants_total = any(x.kind is Kind.TOTAL for x in f.selection.fields)
            f.wants_cursors = _reads_cursors(f.selection)
            f.wants_edges = any(x.name == "edges" for x in f.selection.fields)
        elif not is_leaf_type(target):
            raise Unplannable(f"{parent.name}.{name} returns an abstract type")
        if kind in ARTICLE_PATHS:
            selected = convert_selections(self.info, nodes)  # type: ignore[arg-type]
            f.selected = frozenset(selected_under(selected, ARTICLE_PATHS[kind]))
        return f


def _reads_cursors(connection: Selection) -> bool:
    """Whether a page's selection reads a cursor: an edge's, or ``pageInfo``'s."""
    for f in connection.fields:
        below = f.selection.fields if f.selection is not None else []
        if f.name == "edges" and any(x.name == "cursor" for x in below):
            return True
        if f.name == "pageInfo" and any(x.name.endswith("Cursor") for x in below):
            return True
    return False


def _variables(value: ValueNode) -> Iterator[str]:
    """The variables a value written in the query holds, anywhere in it."""
    if isinstance(value, VariableNode):
        yield value.name.value
    elif isinstance(value, ListValueNode):
        for v in value.values:
            yield from _variables(v)
    elif isinstance(value, ObjectValueNode):
        for f in value.fields:
            yield from _variables(f.value)
