"""Query cost: the most a query can make the API do, known before it runs.

Depth, alias and token limits bound a query's text, not its work: a 150-byte
query nesting ``articles`` / ``topics`` / ``articles`` asks for millions of
objects. So every list gets a bound and the bounds multiply down the tree,
as in GitHub's node limit:

- a connection holds at most its ``first`` (the schema's default when not
  given; values over the cap count as the cap: the resolver refuses them);
- a plain list (``topics``, ``images``, ``related``) holds at most the
  ``max_items`` that ``core.document`` declares and the loader enforces.

From those, :func:`query_cost` computes two worst cases:

- **objects**: JSON objects in the answer's ``data`` (connections, edges,
  page infos and items alike), each counted once per parent that can hold it;
- **store calls**: a connection asks the store once per parent object (twice
  when ordered by ``RELEVANCE``: title matches, then the rest), ``totalCount``
  once per connection; batched lookups (``article``, ``provider``, ``topic``,
  ``RelatedStory.article``, ``articleCount``) once per batch, and a batch
  forms per nesting level, or per store call above it when their parents
  arrive from separate calls.

Delivered in parts (``@defer``, ``@stream``), an answer has more objects than
its ``data``: each deferred fragment is a part of its own on each parent
object it applies to, announced (``pending``), sent (``incremental``, with its
``data``) and closed (``completed``): :data:`PART_OBJECTS` objects per fragment
per parent, priced at the path ``….@defer``. Where a fragment selects under a
field that another part selects too (``provider { id } ... @defer { provider
{ name } }``), what it adds there comes as an entry of its own on each object
of that field (:data:`ENTRY_OBJECTS`): 6 one-field fragments under the 100
related stories of 100 articles, priced 12,501 objects when only the articles
counted, make about 131,000. A streamed list is announced and
closed on each parent, and each item after ``initialCount`` comes in an entry
of its own. So 238 one-field deferred fragments on 100 articles, 101 objects
undeferred and 1.5 MB of parts, are priced 95,301 objects. A client that reads
no parts gets the whole answer at once (``api.operation.incremental``), priced
the same: the document asked for the parts.

Introspection (``__schema``, ``__type``) is answered from memory, but not for
free: graphql-core's ordinary execution takes about 20 µs an object, and 30
aliases of ``__schema { types { fields { type { fields { type { name } } } } } }``
(13,200 objects, 275 kB) took 280 ms; priced nothing, one address sending
them eight at a time held a two-core server's honest queries 2.3 s each
(10 points each). The schema is fixed, so its answer is known exactly: the
walk counts the objects it will hold by calling the introspection types' own
resolvers on the schema, each distinct selection on each distinct value once
(:meth:`_Walk.introspected`), in at most :data:`INTROSPECTION_STEPS` steps.
The full introspection query GraphiQL sends holds 559 objects. The analysis
is a pure function of the document, its variables and the schema;
:mod:`api.operation.budget` applies it to each request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    value_from_ast_untyped,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.utilities import get_operation_ast

from api.schema.facts import Calls, answered_by
from api.schema.pagination import is_connection
from core.config import DEFAULT_PAGE, MAX_PAGE

#: The part a selection is delivered in: the deferred fragment innermost
#: around it (numbered as the walk meets it), or None for the first part.
Part = int | None

#: JSON objects a deferred fragment adds on each parent when delivered in
#: parts: its ``pending`` entry, its ``incremental`` entry and that entry's
#: ``data``, its ``completed`` entry.
PART_OBJECTS = 4
#: And on each object under a field that more than one part selects (the
#: fragment's field also selected outside it, or in another fragment): an
#: ``incremental`` entry and its ``data`` for each group of the fields there
#: that one set of parts delivers (graphql-core's deferred grouped field sets,
#: sent with a ``subPath``).
ENTRY_OBJECTS = 2
#: And a streamed list on each parent: its ``pending`` and ``completed`` entries
#: (each streamed item adds its ``incremental`` entry besides).
STREAM_OBJECTS = 2

#: Most steps the count of a query's introspection may take (a resolver
#: called, or an item counted, each one step; about 1 µs a step): past them
#: its price is over any budget. The full introspection query GraphiQL and
#: the code generators send takes 3,525 (559 objects) on this schema; 10,000
#: take 6-10 ms, where executing 30 aliases of one selection (13,200 objects)
#: took 66 ms and a walk as long as the object budget (50,000) would take
#: about 50 ms, for a query refused at 10 points.
INTROSPECTION_STEPS = 10_000

#: Costs saturate here: a hostile query can ask for 100^12 objects, and the
#: figures must stay exact JSON numbers for any client (JavaScript's safe range).
CAP = 2**53 - 1


@dataclass(frozen=True)
class PathCost:
    """What one field of the query adds, over all the parents that hold it."""

    objects: int = 0
    store_calls: int = 0


@dataclass(frozen=True)
class Cost:
    objects: int
    store_calls: int
    #: Each field by its response path (aliases, not field names: ``a.nodes.topics``).
    paths: Mapping[str, PathCost] = field(default_factory=dict)
    #: The variables whose values the cost depends on: any other may change freely.
    variables: frozenset[str] = frozenset()

    def heaviest(self, measure: str) -> tuple[str, int]:
        """The path adding most to ``measure`` ("objects" or "store_calls")."""
        if not self.paths:
            return "", 0
        path = max(self.paths, key=lambda p: getattr(self.paths[p], measure))
        return path, getattr(self.paths[path], measure)


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> Cost:
    """The worst case of the operation ``operation_name`` of ``document``
    (which must be valid for ``schema``) with the request's raw ``variables``."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        raise ValueError(f"no operation {operation_name!r} in the document")
    root = schema.get_root_type(operation.operation)
    if root is None:
        raise ValueError(f"the schema has no {operation.operation.value} type")
    walk = _Walk(
        schema,
        {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)},
        _with_defaults(operation, variables),
    )
    walk.fields(root, [(operation.selection_set, None)], "", count=1, batches=1, page=0)
    paths = walk.paths
    return Cost(
        objects=min(sum(p.objects for p in paths.values()), CAP),
        store_calls=min(sum(p.store_calls for p in paths.values()), CAP),
        paths=paths,
        variables=frozenset(walk.read),
    )


def _with_defaults(
    operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The request's variables over the operation's declared defaults. Not
    coerced: execution does that, and refuses what does not fit."""
    values = {
        d.variable.name.value: value_from_ast_untyped(d.default_value)
        for d in operation.variable_definitions or ()
        if d.default_value is not None
    }
    if isinstance(variables, Mapping):
        values.update(variables)
    return values


def _mul(a: int, b: int) -> int:
    return min(a * b, CAP)


@dataclass
class _Walk:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    paths: dict[str, PathCost] = field(default_factory=dict)
    #: What the introspection fields' walk counted (:meth:`introspected`).
    seen: _Seen = field(init=False)
    read: set[str] = field(default_factory=set)
    #: Deferred fragments met so far, each a part of its own (graphql-core
    #: makes a part for each time it meets one, even the same node twice).
    parts: int = 0

    def __post_init__(self) -> None:
        self.seen = _Seen(INTROSPECTION_STEPS, _SchemaInfo(self.schema))

    def fields(
        self,
        parent: GraphQLObjectType,
        selections: list[tuple[SelectionSetNode, Part]],
        path: str,
        count: int,
        batches: int,
        page: int,
    ) -> None:
        """Price the fields selected on ``count`` objects of type ``parent``,
        which arrive in at most ``batches`` separate store answers; ``page`` is
        the enclosing connection's ``first``, which bounds its lists. Each
        selection comes with the part its parent field was selected in."""
        fields, deferred = self.collect(parent, selections)
        in_parts = _in_parts(selections, fields, deferred)
        if in_parts:
            self.add(f"{path}.@defer" if path else "@defer", _mul(count, in_parts), 0)
        for key, selected_as in fields.items():
            nodes = [node for node, _ in selected_as]
            node = nodes[0]  # validation made same-key fields the same field
            name = node.name.value
            here = f"{path}.{key}" if path else key
            if name in ("__schema", "__type"):  # the schema's own answer, counted
                meta = SchemaMetaFieldDef if name == "__schema" else TypeMetaFieldDef
                try:
                    found = self.introspected(meta, None, selected_as, self.seen)
                except _Over:
                    found = CAP
                self.add(here, _mul(count, found), 0)
                continue
            if name == "__typename":  # a leaf
                continue
            definition = parent.fields[name]
            calls = self.calls(parent, node, count, batches)
            target = get_named_type(definition.type)
            if is_leaf_type(target):
                if calls:  # most leaves cost nothing; the breakdown lists what costs
                    self.add(here, 0, calls)
                continue
            objects = count
            if is_list_type(get_nullable_type(definition.type)):
                bound = self.bound(parent, node, page)
                objects = _mul(count, bound)
                streamed = self.streamed(nodes, bound)
                if streamed is not None:  # announced, closed, and an entry per later item
                    self.add(f"{here}.@stream", _mul(count, STREAM_OBJECTS + streamed), 0)
            self.add(here, objects, calls)
            selected = [(n.selection_set, part) for n, part in selected_as if n.selection_set]
            # An interface (Node) may be any of its types: each is priced as if
            # all the objects were of it, an upper bound however they mix.
            targets = (
                self.schema.get_possible_types(target) if is_abstract_type(target) else [target]
            )
            for concrete in targets:
                assert isinstance(concrete, GraphQLObjectType), concrete
                inner_page = self.page(node, definition.args) if is_connection(concrete) else 0
                self.fields(concrete, selected, here, objects, calls or batches, inner_page)

    def introspected(
        self,
        definition: GraphQLField,
        source: Any,
        selected_as: list[tuple[FieldNode, Part]],
        seen: _Seen,
    ) -> int:
        """The objects an introspection field of ``source`` answers with, found
        by its own resolver, as execution would (``includeDeprecated`` not
        known counts as true). Raises :class:`_Over` past ``seen.limit`` steps."""
        return self._answered(self._introspection(definition, selected_as, seen), source, seen)

    def _introspection(
        self, definition: GraphQLField, selected_as: list[tuple[FieldNode, Part]], seen: _Seen
    ) -> _Introspection:
        """What an introspection field's count needs of its selection, worked
        out once however many values it is selected on."""
        nodes = [node for node, _ in selected_as]
        key = (id(definition), *(id(node) for node in nodes))
        known = seen.fields.get(key)
        if known is not None:
            return known
        arguments = {}
        for name in definition.args:
            value = self.argument(nodes[0], name)
            if value is not Undefined:
                arguments[name] = value is not False if name == "includeDeprecated" else value
        target = get_named_type(definition.type)
        field = _Introspection(
            resolve=definition.resolve,
            arguments=arguments,
            listed=is_list_type(get_nullable_type(definition.type)),
            streamed=self.streamed(nodes, 0) is not None,
            key=key,
        )
        seen.fields[key] = field  # (it holds the nodes' ids: they live as long as the walk)
        if not is_leaf_type(target):
            assert isinstance(target, GraphQLObjectType), target  # the introspection types
            selections = [(n.selection_set, part) for n, part in selected_as if n.selection_set]
            fields, deferred = self.collect(target, selections)
            field.in_parts = _in_parts(selections, fields, deferred)
            field.inner = [
                self._introspection(target.fields[inner[0][0].name.value], inner, seen)
                for inner in fields.values()
                if inner[0][0].name.value != "__typename"
            ]
        return field

    def _answered(self, field: _Introspection, source: Any, seen: _Seen) -> int:
        try:
            result = field.resolve(source, seen.info, **field.arguments)
        except Exception:  # arguments execution refuses
            return 0
        items = [
            r
            for r in (result if field.listed and result is not None else [result])
            if r is not None
        ]
        seen.step(1 + len(items))
        found = STREAM_OBJECTS + len(items) if field.streamed else 0
        if field.inner is None:  # a leaf
            return found
        for item in items:
            known = seen.counted.get((id(item), *field.key))
            if known is None:
                under = field.in_parts
                for inner in field.inner:
                    under += self._answered(inner, item, seen)
                known = seen.counted[(id(item), *field.key)] = (min(under, CAP), item)
            found = min(found + 1 + known[0], CAP)
        return found

    def add(self, path: str, objects: int, calls: int) -> None:
        known = self.paths.get(path, PathCost())
        self.paths[path] = PathCost(
            min(known.objects + objects, CAP), min(known.store_calls + calls, CAP)
        )

    def calls(self, parent: GraphQLObjectType, node: FieldNode, count: int, batches: int) -> int:
        field = answered_by(parent.fields[node.name.value])
        kind = field.calls if field else None
        batches_a_level = field.batches if field else 1
        if (parent.name, node.name.value) == ("Article", "related"):
            # Filtered by `stored`, it asks the batched article lookup.
            kind = Calls.BATCHED if self.argument(node, "filter") is not Undefined else None
        if kind is Calls.PER_PARENT:
            finds = 2 if self.argument(node, "orderBy") == "RELEVANCE" else 1
            return _mul(count, finds)
        if kind is Calls.BATCHED:
            return _mul(min(count, batches), batches_a_level)
        return 0

    def bound(self, parent: GraphQLObjectType, node: FieldNode, page: int) -> int:
        name = node.name.value
        if is_connection(parent):
            return page  # edges and nodes: one page
        field = answered_by(parent.fields[name])
        most = field.max_items if field else None
        if field is not None and most is not None and field.items_argument is not None:
            given = self.argument(node, field.items_argument)
            return min(len(given), most) if isinstance(given, list) else most
        if most is not None:
            first = self.argument(node, "first")  # related(first:)
            if isinstance(first, int) and not isinstance(first, bool) and 0 <= first < most:
                return first
            return most
        # Fail closed: an unbounded list would make every bound above meaningless.
        raise LookupError(
            f"{parent.name}.{name} is a list with no bound: declare its max_items "
            "where the field is defined (api.schema.facts.answered)"
        )

    def page(self, node: FieldNode, args: Mapping[str, Any]) -> int:
        """A connection's ``first``, as ``api.data.cursors.page_size`` reads it."""
        first = self.argument(node, "first")
        if first is Undefined and "first" in args:
            first = args["first"].default_value
        if first is None or first is Undefined:
            return DEFAULT_PAGE
        if isinstance(first, float) and first.is_integer():
            first = int(first)
        if isinstance(first, bool) or not isinstance(first, int):
            return MAX_PAGE  # execution refuses it; count the most it could be
        return min(max(first, 0), MAX_PAGE)

    def argument(self, node: FieldNode | Any, name: str) -> Any:
        """An argument's raw value; ``Undefined`` when absent or an unset variable."""
        for argument in node.arguments or ():
            if argument.name.value == name:
                if isinstance(argument.value, VariableNode):
                    self.read.add(argument.value.name.value)
                return value_from_ast_untyped(argument.value, self.variables)
        return Undefined

    def streamed(self, nodes: list[FieldNode], bound: int) -> int | None:
        """Items of a list of at most ``bound`` that come after its first part,
        if ``@stream`` delivers it in parts (on any of the merged nodes, as
        execution reads it; a condition not known here counts as streamed)."""
        for node in nodes:
            for directive in node.directives or ():
                if directive.name.value != "stream" or self.argument(directive, "if") is False:
                    continue
                initial = self.argument(directive, "initialCount")
                if isinstance(initial, float) and initial.is_integer():
                    initial = int(initial)
                if isinstance(initial, bool) or not isinstance(initial, int):
                    initial = 0  # the default; execution refuses anything else
                return max(bound - max(initial, 0), 0)
        return None

    def deferred(self, node: Any) -> bool:
        """Whether a fragment is delivered as a part of its own: ``@defer``
        whose condition is not known to be false."""
        return any(
            directive.name.value == "defer" and self.argument(directive, "if") is not False
            for directive in node.directives or ()
        )

    def part(self) -> int:
        self.parts += 1
        return self.parts

    def included(self, node: Any) -> bool:
        """@skip and @include; a condition not known here counts as included."""
        for directive in node.directives or ():
            condition = self.argument(directive, "if")
            if directive.name.value == "skip" and condition is True:
                return False
            if directive.name.value == "include" and condition is False:
                return False
        return True

    def collect(
        self, parent: GraphQLObjectType, selections: list[tuple[SelectionSetNode, Part]]
    ) -> tuple[dict[str, list[tuple[FieldNode, Part]]], int]:
        """Fields by response key, through fragments, as execution groups them,
        each with the part it is selected in; and how many of those fragments
        are deferred."""
        found: dict[str, list[tuple[FieldNode, Part]]] = {}
        deferred: list[int] = []
        seen: set[str] = set()
        for selection_set, part in selections:
            for node, in_part in self._selected(parent, selection_set, part, seen, deferred):
                key = node.alias.value if node.alias else node.name.value
                found.setdefault(key, []).append((node, in_part))
        return found, len(deferred)

    def _selected(
        self,
        parent: GraphQLObjectType,
        selection_set: SelectionSetNode,
        part: Part,
        seen: set[str],
        deferred: list[int],
    ) -> Iterator[tuple[FieldNode, Part]]:
        for node in selection_set.selections:
            if not self.included(node):
                continue
            if isinstance(node, FieldNode):
                yield node, part
            elif isinstance(node, InlineFragmentNode):
                if self._applies(node, parent):
                    inner = part
                    if self.deferred(node):
                        deferred.append(1)
                        inner = self.part()
                    yield from self._selected(parent, node.selection_set, inner, seen, deferred)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if name in seen or fragment is None or not self._applies(fragment, parent):
                    continue
                inner = part
                if self.deferred(node):
                    # Each deferred spread is a part of its own: graphql-core
                    # tells them apart by their @defer, not by the fragment's
                    # name, so `...F @defer` twice is two parts on each parent.
                    # (No cycle to end: validation refused any, and the
                    # expansion is bounded by LimitSelections.)
                    deferred.append(1)
                    inner = self.part()
                else:
                    seen.add(name)  # once per level, as execution does
                yield from self._selected(parent, fragment.selection_set, inner, seen, deferred)

    def _applies(self, fragment: Any, parent: GraphQLObjectType) -> bool:
        condition = fragment.type_condition
        if condition is None:
            return True
        type_ = self.schema.get_type(condition.name.value)
        if type_ is parent:
            return True
        return is_abstract_type(type_) and self.schema.is_sub_type(type_, parent)


class _Over(Exception):
    """The introspection walk took more steps than it may."""


@dataclass
class _Seen:
    """The introspection walk's memory: what each selection counted on each
    value (with the value, so that its id is not reused while the walk
    runs), each selection worked out once, and the steps taken, at most
    ``limit``: a walk of more (a resolver called, or an item counted, each
    one step) prices the query over any budget. The walk takes about 1 µs a
    step, execution 5-20 µs an object."""

    limit: int
    info: _SchemaInfo
    steps: int = 0
    counted: dict[tuple[int, ...], tuple[int, Any]] = field(default_factory=dict)
    fields: dict[tuple[int, ...], _Introspection] = field(default_factory=dict)

    def step(self, n: int) -> None:
        self.steps += n
        if self.steps > self.limit:
            raise _Over


@dataclass(frozen=True)
class _SchemaInfo:
    """What graphql-core's introspection resolvers read of their ``info``."""

    schema: GraphQLSchema


@dataclass
class _Introspection:
    """An introspection field as a query selects it: its resolver and
    arguments, whether it is a list (streamed), and, unless it is a leaf,
    the fields selected under it (``inner``) and what parts add there."""

    resolve: Any
    arguments: dict[str, Any]
    listed: bool
    streamed: bool
    key: tuple[int, ...]
    in_parts: int = 0
    inner: list[_Introspection] | None = None


def _in_parts(
    selections: list[tuple[SelectionSetNode, Part]],
    fields: Mapping[str, list[tuple[FieldNode, Part]]],
    deferred: int,
) -> int:
    """The objects an answer in parts adds on each object these fields are
    selected on: each deferred fragment here is a part of its own on each of
    them. And where the parent field was selected in more than one part
    (`provider { id } ... @defer { provider { name } }`), graphql-core sends
    what each set of parts selects here as an entry of its own on each of
    these objects (`subPath`): 6 such fragments on 100 articles' 100 related
    stories each make 20,000 entries a fragment, where PART_OBJECTS a fragment
    on the articles priced 400."""
    entries = 0
    if len({part for _, part in selections}) > 1:
        groups = {frozenset(part for _, part in nodes) for nodes in fields.values()}
        entries = sum(None not in group for group in groups)
    return PART_OBJECTS * deferred + ENTRY_OBJECTS * entries


def count_objects(data: Any) -> int:
    """JSON objects in an answer's ``data``, beside the root: what
    :attr:`Cost.objects` bounds."""
    if not isinstance(data, dict):
        return 0
    stack = list(data.values())
    total = 0
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            total += 1
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return total
