"""Compiled execution: an operation answered by a plan (:mod:`api.execution.plan`) rather
than by a resolver per field.

Strawberry stays the front door (parsing, validation, limits, cost, persisted
queries, error masking): :class:`CompiledExecution` runs in ``on_execute``,
after the cost extension, and supplies ``execution_context.result``, which
makes strawberry skip graphql-core's ``execute``. An operation the planner
does not cover (introspection, a field it does not know, an error whose order
only the executor decides) is left to ordinary execution. Each is counted:
``newsgraph_graphql_execution_total{mode="compiled"|"fallback"}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import strawberry
from cachetools import LRUCache
from graphql import DocumentNode, ExecutionResult, OperationDefinitionNode, OperationType
from graphql.execution.values import VariableValues, get_variable_values
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from api.execution.incremental import is_incremental
from api.execution.plan import Fallback, Plan, Unplannable, build_plan, directive_variables, run
from api.schema.context import Context
from api.telemetry.stats import current_stats
from core.config import Settings

log = logging.getLogger("newsgraph.api")

#: graphql-core's ``execute`` default: so refused variables read the same.
MAX_COERCION_ERRORS = 50
#: Plans (and their failures) kept per schema; an entry is a few kB.
MAX_PLANS = 512


class Plans:
    """Plans by query text, operation and the values of the variables its
    directives read (the only ones that change a plan's fields): bounded, least
    recently used first out. A query that cannot be planned is remembered as
    such, so it is not planned again on every request."""

    def __init__(self, maxsize: int = MAX_PLANS) -> None:
        self._reads: LRUCache[tuple[str, str | None], frozenset[str]] = LRUCache(maxsize)
        self._plans: LRUCache[tuple[Any, ...], Plan | Unplannable] = LRUCache(maxsize)

    def plan(
        self,
        schema: strawberry.Schema,
        query: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: VariableValues,
    ) -> Plan:
        """The plan for this request; :class:`Unplannable` if there is none."""
        name = operation.name.value if operation.name else None
        reads = self._reads.get((query, name))
        if reads is None:
            reads = self._reads[(query, name)] = directive_variables(document)
        key = (query, name, *(variables.coerced.get(v) for v in sorted(reads)))
        found = self._plans.get(key) if query else None
        if found is None:
            try:
                found = build_plan(schema, document, operation, variables)
            except Unplannable as why:
                found = why
            if query:
                self._plans[key] = found
        if isinstance(found, Unplannable):
            raise found
        return found

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
            # them, which IncrementalDelivery runs for a client reading no multipart.
            raise Unplannable("@defer/@stream are delivered by ordinary execution")
        coerced = get_variable_values(
            schema._schema,
            operation.variable_definitions or (),
            dict(variables or {}),
            max_errors=MAX_COERCION_ERRORS,
        )
        if isinstance(coerced, list):  # refused variables: nothing runs
            return ExecutionResult(None, coerced)
        plan = self.plan(schema, query, document, operation, coerced)
        return await run(plan, schema, context, coerced)


#: Set while strawberry runs a request whose plan already ran and fell back
#: (api/operation/direct.py): its answer is ordinary execution's, counted once.
plan_tried: ContextVar[bool] = ContextVar("newsgraph_plan_tried", default=False)


class CompiledExecution(SchemaExtension):
    def __init__(self, plans: Plans) -> None:
        self.plans = plans

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.result is None and not plan_tried.get():  # not refused (cost), nor tried
            assert context.graphql_document is not None
            context.result = await answer(
                self.plans,
                context.schema,
                context.query or "",
                context.graphql_document,
                context.variables,
                context.operation_name,
                context.context,
            )
        yield


async def answer(
    plans: Plans,
    schema: strawberry.Schema,
    query: str,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    context: Any,
) -> ExecutionResult | None:
    """The plan's answer; None when ordinary execution must give it. Counted
    either way."""
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


def compiled_execution(settings: Settings, plans: Plans) -> Callable[[], SchemaExtension]:
    """The extension factory for ``build_schema`` (``plans``: the schema's
    one plan cache): one that does nothing when ``NEWSGRAPH_COMPILED`` is off."""

    def make() -> SchemaExtension:
        return CompiledExecution(plans) if settings.compiled else SchemaExtension()

    return make
