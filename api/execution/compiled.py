"""Compiled execution: an operation answered by a plan (:mod:`api.execution.plan`) rather
than by a resolver per field.

Plans are kept per query text (:class:`Plans`); :func:`answer` gives a plan's
answer, or None when the planner does not cover the operation
(introspection, a field it does not know, an error whose order only the
executor decides): ordinary execution (``api.execution.ordinary``) answers
it then. Each is counted:
``newsgraph_graphql_execution_total{mode="compiled"|"fallback"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import strawberry
from cachetools import LRUCache
from graphql import DocumentNode, ExecutionResult, OperationDefinitionNode, OperationType
from graphql.execution.values import VariableValues, get_variable_values
from graphql.utilities import get_operation_ast

from api.execution.incremental import is_incremental
from api.execution.plan import Fallback, Plan, Unplannable, build_plan, directive_variables, run
from api.schema.context import Context
from api.telemetry.stats import current_stats

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

    def clear(self) -> None:
        self._reads.clear()
        self._plans.clear()

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
            # them, which runs for a client reading no multipart (api.operation.incremental).
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
