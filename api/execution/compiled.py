"""Compiled execution: an operation answered by a plan (:mod:`api.execution.plan`) rather
than by a resolver per field.

Plans are kept per query text (:class:`Plans`), bounded by the memory they
hold as well as by count: a plan holds about 2 kB per field, its checked
arguments, and the whole parsed document its fields' nodes reach (a
2.8 KB document of 28 one-article pages made a plan of 1.1 MB with its
document, so 512 of them were over half a gigabyte). :func:`answer` gives a plan's
answer, or None when the planner does not cover the operation
(introspection, a field it does not know, an error whose order only the
executor decides): ordinary execution (``api.execution.ordinary``) answers
it then, without asking the store again what the plan asked
(:mod:`api.execution.replay`). Each is counted:
``newsgraph_graphql_execution_total{mode="compiled"|"fallback"}``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLBoolean,
    GraphQLError,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
)
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import VariableValues, VariableValueSource, get_variable_values
from graphql.pyutils import Undefined
from graphql.utilities import get_operation_ast

from api.bounded import ENTRY_BYTES, BoundedLRU, document_size
from api.execution.incremental import is_incremental
from api.execution.plan import Fallback, Plan, Unplannable, build_plan, directive_variables, run
from api.execution.replay import Replay
from api.schema.context import Context
from api.telemetry.stats import current_stats

log = logging.getLogger("newsgraph.api")

#: graphql-core's ``execute`` default: so refused variables read the same.
MAX_COERCION_ERRORS = 50
#: Entries (plans, failures to plan, and what directives read) kept per schema.
MAX_PLANS = 512
#: Their memory per schema, by default (``NEWSGRAPH_PLAN_CACHE_BYTES``).
PLAN_CACHE_BYTES = 16_000_000
#: Share of that one plan may take; larger ones are built for each request.
MAX_SHARE = 16
#: Memory of a plan per field, measured with tracemalloc (tests/api/test_cache_memory.py):
#: 1.3–1.8 kB (the field, its getter and resolver closures, its selection,
#: projections), rounded up; and of the plan itself (its root, caches, key).
BYTES_PER_FIELD = 2000
BYTES_PER_PLAN = 4000


@dataclass(frozen=True)
class _Reads:
    """The variables the directives of one operation's text read, and the
    signatures of its variables when each is one :func:`_quick_variables`
    coerces (else None)."""

    names: frozenset[str]
    size: int
    signatures: tuple[GraphQLVariableSignature, ...] | None = None
    #: ``names`` in the order a plan's key holds their values.
    order: tuple[str, ...] = ()


#: Built-in scalars whose coercion of a value of an exact Python type is that
#: value (an Int within 32 bits): by the scalar, those types.
QUICK_SCALARS: dict[Any, tuple[type, ...]] = {
    GraphQLString: (str,),
    GraphQLID: (str,),
    GraphQLBoolean: (bool,),
    GraphQLInt: (int,),
}
INT32_MIN, INT32_END = -(2**31), 2**31


def _quick_signatures(
    schema: GraphQLSchema, operation: OperationDefinitionNode
) -> tuple[GraphQLVariableSignature, ...] | None:
    """The signatures of ``operation``'s variables, if each is a built-in
    scalar of :data:`QUICK_SCALARS` (or one required) without a default."""
    found = []
    for node in operation.variable_definitions or ():
        signature = get_variable_signature(schema, node)
        if isinstance(signature, GraphQLError) or signature.default is not None:
            return None
        type_ = signature.type
        named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if named not in QUICK_SCALARS:
            return None
        found.append(signature)
    return tuple(found)


def _quick_variables(
    signatures: tuple[GraphQLVariableSignature, ...], inputs: Mapping[str, Any]
) -> VariableValues | None:
    """The variables as graphql-core's ``get_variable_values`` coerces them,
    where each value given is of the exact type its scalar passes on as it
    is (a text for a String or ID, a bool, an int within 32 bits), and each
    left out may be; None for anything else (a null, another type, a value
    missing where one is required), which that function coerces, or refuses
    in its own words."""
    sources: dict[str, VariableValueSource] = {}
    coerced: dict[str, Any] = {}
    for signature in signatures:
        name, type_ = signature.name, signature.type
        value = inputs.get(name, Undefined)
        required = isinstance(type_, GraphQLNonNull)
        if value is Undefined:
            if required:
                return None
            sources[name] = VariableValueSource(signature)  # omitted, as there
            continue
        named: Any = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if type(value) not in QUICK_SCALARS[named]:
            return None
        if named is GraphQLInt and not INT32_MIN <= value < INT32_END:
            return None
        sources[name] = VariableValueSource(signature, value)
        coerced[name] = value
    return VariableValues(sources, coerced)


@dataclass(frozen=True)
class _Declined:
    """Why an operation cannot be planned (kept as words: an exception kept
    would hold its traceback's frames, and through them the document)."""

    reason: str
    size: int


class Plans:
    """Plans by query text, operation and the values of the variables its
    directives read (the only ones that change a plan's fields): bounded by
    entries and by estimated bytes, least recently used first out. A query
    that cannot be planned is remembered as such, so it is not planned again
    on every request. What the directives read is kept in the same cache, so
    one bound covers every query text it holds."""

    def __init__(self, maxsize: int = MAX_PLANS, max_bytes: int = PLAN_CACHE_BYTES) -> None:
        self._entries: BoundedLRU[tuple[Any, ...], Plan | _Declined | _Reads] = BoundedLRU(
            maxsize, max_bytes, _entry_size, max_bytes // MAX_SHARE
        )

    @property
    def bytes(self) -> int:
        """The estimated bytes held now (never over the bound)."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def plans(self) -> list[Plan]:
        """The plans kept now."""
        return [entry for entry in self._entries.values() if isinstance(entry, Plan)]

    def clear(self) -> None:
        self._entries.clear()

    def plan(
        self,
        schema: strawberry.Schema,
        query: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: VariableValues,
    ) -> Plan:
        """The plan for this request; :class:`Unplannable` if there is none."""
        return self._plan(schema, query, document, operation, variables)[1]

    def _reads(
        self,
        schema: strawberry.Schema,
        query: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
    ) -> _Reads:
        """What the directives of ``operation`` of ``query`` read, and its
        variables' signatures if they are quick to coerce; kept per text."""
        name = operation.name.value if operation.name else None
        reads_key = ("reads", query, name)
        reads = self._entries.get(reads_key)
        if not isinstance(reads, _Reads):
            names = directive_variables(document)
            signatures = _quick_signatures(schema._schema, operation)
            size = sys.getsizeof(query) + 100 * (len(names) + len(signatures or ()))
            reads = _Reads(names, size + ENTRY_BYTES, signatures, tuple(sorted(names)))
            if query:
                self._entries[reads_key] = reads
        return reads

    def _plan(
        self,
        schema: strawberry.Schema,
        query: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: VariableValues,
        reads: _Reads | None = None,
    ) -> tuple[tuple[Any, ...], Plan]:
        """The plan and the key it is kept under."""
        name = operation.name.value if operation.name else None
        if reads is None:
            reads = self._reads(schema, query, document, operation)
        coerced = variables.coerced
        key = ("plan", query, name, *[coerced.get(v) for v in reads.order])
        found = self._entries.get(key) if query else None
        if not isinstance(found, (Plan, _Declined)):
            text = sys.getsizeof(query) + ENTRY_BYTES  # the key holds the text
            try:
                found = build_plan(schema, document, operation, variables)
                # Its fields' nodes hold the whole document.
                fields = len(found.walk())
                found.held = (
                    text
                    + document_size(query, document)
                    + BYTES_PER_PLAN
                    + BYTES_PER_FIELD * fields
                )
            except Unplannable as why:
                reason = str(why)
                found = _Declined(reason, text + sys.getsizeof(reason))
            if query:
                self._entries[key] = found
        if isinstance(found, _Declined):
            raise Unplannable(found.reason)
        return key, found

    def account(self, key: tuple[Any, ...], plan: Plan) -> None:
        """Count again what ``plan`` holds (its checked arguments changed),
        if it is still kept under ``key``."""
        if self._entries.get(key) is plan:
            self._entries[key] = plan

    async def execute(
        self,
        schema: strawberry.Schema,
        query: str,
        document: DocumentNode,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> ExecutionResult:
        """The operation's answer, as ordinary execution would give it;
        :class:`Unplannable` or :class:`Fallback` when that is not known."""
        operation = get_operation_ast(document, operation_name)
        if operation is None or not isinstance(context, Context):
            raise Unplannable("no single operation, or not newsgraph's context")
        if operation.operation is not OperationType.QUERY:
            # A subscription runs once per article (strawberry subscribes,
            # whatever result is set here); plans answer queries only.
            raise Unplannable(f"{operation.operation.value} operations are not planned")
        if is_incremental(document, query):
            # Delivered in parts by ordinary execution. Never planned, so the
            # plan cached under this text is always that of the copy without
            # them, which runs for a client reading no multipart (api.operation.incremental).
            raise Unplannable("@defer/@stream are delivered by ordinary execution")
        reads = self._reads(schema, query, document, operation)
        inputs = variables or {}
        quick = None if reads.signatures is None else _quick_variables(reads.signatures, inputs)
        coerced = quick or get_variable_values(
            schema._schema,
            operation.variable_definitions or (),
            dict(inputs),
            max_errors=MAX_COERCION_ERRORS,
        )
        if isinstance(coerced, list):  # refused variables: nothing runs
            return ExecutionResult(None, coerced)
        key, plan = self._plan(schema, query, document, operation, coerced, reads)
        changes = plan.checked.changes
        try:
            return await run(plan, schema, context, coerced)
        finally:
            if plan.checked.changes != changes:  # its checked arguments grew or changed
                self.account(key, plan)


def _entry_size(entry: Plan | _Declined | _Reads) -> int:
    return entry.bytes if isinstance(entry, Plan) else entry.size


async def answer(
    plans: Plans,
    schema: strawberry.Schema,
    query: str,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    context: Any,
    replay: Replay | None = None,
) -> ExecutionResult | None:
    """The plan's answer; None when ordinary execution must give it. Counted
    either way. With ``replay``, the plan's store calls are recorded in it:
    ordinary execution answering in its place is given ``replay.replay(context)``,
    so that it does not ask the store again what the plan already asked."""
    if replay is not None:
        context = replay.record(context)
    try:
        result = await plans.execute(schema, query, document, variables, operation_name, context)
    except Unplannable as why:
        log.debug("ordinary execution: %s", why)
    except Fallback as why:
        log.info("compiled plan fell back to ordinary execution: %s", why)
    except Exception:  # a bug here must not cost the client its answer
        log.exception("compiled plan failed; ordinary execution answers")
    else:
        count("compiled")
        return result
    count("fallback")
    return None


def count(mode: str) -> None:
    """Counts how the request's operation ran: "compiled" or "fallback"."""
    stats = current_stats()
    if stats is not None:
        stats.executions.append(mode)
