"""What a plan is made of: the fields of an operation, each with how its value
is read and what the store must be asked for it.

A :class:`Plan` is a tree of :class:`Selection` (the fields selected on one
object type, after fragments and ``@skip``/``@include``) and
:class:`PlanField` (one response key). It is built once per query text,
operation and directive variables (:mod:`api.execution.plan.build`) and run many times
(:mod:`api.execution.plan.run`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLField,
    OperationDefinitionNode,
)
from graphql.execution.values import VariableValues

from api.bounded import BoundedLRU, deep_size
from api.schema.facts import Kind
from api.schema.projection import projection
from core.indexes import Facet

#: Checked arguments kept per plan (an entry is a field's few arguments).
CHECKED_KEPT = 256
#: Their memory per plan (estimated): an entry takes 0.3–3 kB (a page's
#: store queries), so a plan keeps the last hundred or more. The plan cache
#: counts what each plan's entries hold (``api.execution.compiled``).
CHECKED_BYTES = 128_000
#: Longest text a kept entry is keyed by (ids, cursors and URLs are shorter):
#: longer ones are checked on every request, and never kept.
KEYED_TEXT_MAX = 512


class _Absent:
    """A variable the request left out (not the same as one given null)."""


_ABSENT = _Absent()
#: The variable values checked arguments are kept by: plain scalars, whose
#: equal values (of one type) are the same argument.
_KEYED = frozenset({str, int, bool, type(None), _Absent})

#: Reads a field's raw value from its parent object (before completion), given
#: the run's state (``api.execution.plan.state.State``, which holds plan fields
#: and so is not named here).
Getter = Callable[[Any, Any], Any]
#: Gets, completes and checks one field of a parent object at a response path
#: (nested ``(parent, key)`` pairs, ``None`` at the root), given the run's state.
Resolve = Callable[[Any, Any, Any], Any]


#: Kinds whose values come from a store call made before shaping.
STORE_KINDS = frozenset(
    {
        Kind.ARTICLE,
        Kind.RELATED_ARTICLE,
        Kind.FACET,
        Kind.FACET_COUNT,
        Kind.ARTICLES,
        Kind.FACETS,
    }
)


@dataclass(eq=False)
class PlanField:
    key: str
    name: str
    parent: str
    kind: Kind
    #: The merged field nodes: their first gives the arguments, all locate errors.
    nodes: list[FieldNode]
    definition: GraphQLField
    #: The attribute or document key a READ field reads.
    source: str = ""
    facet: Facet | None = None
    #: The selection on the field's object type (``None`` for a leaf).
    selection: Selection | None = None
    #: For fields that return articles: the article fields selected below
    #: them, as :func:`api.schema.resolvers.selected_under` finds them.
    selected: frozenset[str] = frozenset()
    #: For connections: whether ``totalCount`` is asked (one more store call),
    #: and whether any cursor is (``edges.cursor``, ``pageInfo``'s cursors).
    wants_total: bool = False
    wants_cursors: bool = False
    #: For connections: whether ``edges`` is asked (a page's edges, one
    #: object per item, are made only then).
    wants_edges: bool = True
    #: The variables its arguments read, sorted: with their values, they
    #: decide the checked arguments (:meth:`Plan.checked_key`).
    reads: tuple[str, ...] = ()
    #: Set once the tree is built (:mod:`api.execution.plan.shape`).
    get: Getter = field(default=lambda source, state: None, repr=False)
    resolve: Resolve = field(default=lambda source, state, path: None, repr=False)
    #: Completes the value ``get`` read (set with ``resolve``, which calls it).
    complete: Callable[[Any, Any, Any, str | int], Any] | None = field(default=None, repr=False)

    #: Whether the field's arguments are checked, and whether the store is
    #: asked for its value: said once here, read on every request. A list read
    #: from the document (``related``) is planned only without arguments,
    #: where its defaults narrow nothing (``api.execution.plan.fields``).
    arguments: bool = field(init=False, default=False)
    store: bool = field(init=False, default=False)
    #: For ``article`` whose only store call below is one ``related { article }``:
    #: that ``related`` field and its ``article``, the two finds asked as one
    #: job (``api.execution.plan.fetch``). Set by the planner.
    chain: tuple[PlanField, PlanField] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        # An event's arguments chose which articles are sent (its filter,
        # ``api.live.feed``), not what an answer holds.
        self.arguments = bool(self.definition.args) and self.kind not in (Kind.LIST, Kind.EVENT)
        self.store = self.kind in STORE_KINDS


@dataclass(eq=False)
class Selection:
    type_name: str
    fields: list[PlanField]
    #: Whether any field here or below needs a store call.
    fetches: bool = False
    #: The fields here that need a store call, or have one below them: the
    #: only ones the store calls are made for (``api.execution.plan.fetch``).
    fetching: list[PlanField] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.fetching = [
            f for f in self.fields if f.store or (f.selection is not None and f.selection.fetches)
        ]


class CheckedArguments:
    """A plan's checked arguments by :meth:`Plan.checked_key`, least recently
    used first out past :data:`CHECKED_KEPT` entries or :data:`CHECKED_BYTES`
    (each entry's key values and arguments measured as it is kept)."""

    def __init__(self) -> None:
        self._entries: BoundedLRU[tuple[Any, ...], tuple[Any, int]] = BoundedLRU(
            CHECKED_KEPT, CHECKED_BYTES, lambda entry: entry[1]
        )
        #: Entries kept so far: whoever counts the plan's bytes again when
        #: they may have changed compares this, not the bytes themselves.
        self.changes = 0

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self._entries

    def __getitem__(self, key: tuple[Any, ...]) -> Any:
        return self._entries[key][0]

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        # The key's field is the plan's own, counted with it.
        size = deep_size(key, lambda item: isinstance(item, PlanField)) + deep_size(value)
        self._entries[key] = (value, size)
        self.changes += 1

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._entries)

    @property
    def bytes(self) -> int:
        """The estimated bytes held now (never over :data:`CHECKED_BYTES`)."""
        return int(self._entries.currsize)


@dataclass(eq=False)
class Plan:
    operation: OperationDefinitionNode
    root: Selection
    #: The document key each article field reads (``api.schema.resolvers.article_keys``).
    keys: Mapping[str, str]
    #: Checked arguments that passed, by :meth:`checked_key`: the same for
    #: every request with that key, so not coerced and checked again (a
    #: field's literals on every request; the same article's id, request
    #: after request). Bounded: a variable may take any number of values.
    checked: CheckedArguments = field(default_factory=CheckedArguments)
    #: Fields below the root that take arguments (checked once per request).
    nested_arguments: list[PlanField] = field(default_factory=list)
    #: Projections by field and the sort key a page adds, made on first use.
    projections: dict[tuple[PlanField, str], dict[str, int]] = field(default_factory=dict)
    #: Estimated bytes the plan holds besides :attr:`checked` (set by whoever
    #: keeps it: ``api.execution.compiled``).
    held: int = 0

    @property
    def bytes(self) -> int:
        """Estimated bytes the plan holds now, its checked arguments included."""
        return self.held + self.checked.bytes

    def checked_key(
        self, f: PlanField, admin: bool, variables: VariableValues
    ) -> tuple[Any, ...] | None:
        """What ``f``'s checked arguments depend on: the field, whether the
        request is the admin's, and the values of the variables it reads;
        ``None`` when one is not a plain scalar (an input object, a date),
        whose equal values need not check alike: those are not kept."""
        if not f.reads:
            return (f, admin)
        coerced = variables.coerced
        values = []
        for name in f.reads:
            value = coerced.get(name, _ABSENT)
            # The type too: 1 and True are equal keys, but not the same argument.
            if type(value) not in _KEYED:
                return None
            if type(value) is str and len(value) > KEYED_TEXT_MAX:
                # Kept, a client's megabyte-long URLs would fill the memory.
                return None
            values.append((type(value), value))
        return (f, admin, *values)

    def projection(self, f: PlanField, sort_key: str = "") -> dict[str, int]:
        """What the store is asked to return for the articles ``f`` serves:
        the same projection ``api.schema.resolvers.article_projection`` makes."""
        key = (f, sort_key)
        found = self.projections.get(key)
        if found is None:
            always = (sort_key,) if sort_key else ()
            found = self.projections[key] = projection(f.selected, self.keys, *always)
        return found

    def walk(self) -> list[PlanField]:
        """Every field of the plan, depth first, in response order."""
        found: list[PlanField] = []

        def visit(selection: Selection) -> None:
            for plan_field in selection.fields:
                found.append(plan_field)
                if plan_field.selection is not None:
                    visit(plan_field.selection)

        visit(self.root)
        return found


class Answer(ExecutionResult):
    """A plan's answer, with the JSON objects its ``data`` holds below the
    root when the builder counted them (None: not counted, as when a field
    error nulled objects already made)."""

    __slots__ = ("objects",)

    def __init__(
        self,
        data: dict[str, Any] | None,
        errors: list[GraphQLError] | None,
        objects: int | None = None,
    ) -> None:
        super().__init__(data, errors)
        self.objects = objects


class Unplannable(Exception):
    """The operation has a field or shape the planner does not know: it is run
    by ordinary execution."""


class Fallback(Exception):
    """Something at run time the plan does not answer exactly as ordinary
    execution would (an error whose order the executor's scheduling decides, a
    value of an unexpected type): the operation is run by ordinary execution."""


class Failure(Exception):
    """A field error on the way to the response: ``raw`` is what execution
    would have caught at ``path``; it propagates to the nearest nullable field."""

    def __init__(self, raw: Exception, nodes: list[FieldNode], path: Any):
        super().__init__(str(raw))
        self.raw = raw
        self.nodes = nodes
        self.path = path
