"""Direct execution: a query this worker has answered before, run without
strawberry's per-request machinery.

For every request strawberry makes a fresh instance of each of the schema's
extensions and enters each one's hooks around parsing, validation and
execution. Under compiled execution that machinery is most of a small query's
time (measured for the mobile query: two thirds). Yet for the common request,
a query whose document is cached as valid and whose plan is known, each
extension has one known thing to do. :class:`Direct` does those things itself,
in the order the extensions do them:

1. the persisted query for the request's hash (``PersistedQueryExtension``);
2. the document cached for the text under the token limit
   (``MaxTokensLimiter``, ``DocumentCacheExtension``: a cached document skips
   the selection limits and validation there too);
3. a query operation the transport allows (strawberry's own check);
4. the price, within budget (``QueryCostExtension``);
5. the answer, by the query's plan (``CompiledExecution``);
6. errors logged and given their codes (``Schema.process_errors``), then
   masked (``MaskErrors``);
7. ``extensions.cost`` (``QueryCostExtension`` again).

Any other request (one to refuse, a subscription, ``@defer``, an unplannable
query, a first sight of a query) is left to strawberry as before, so it is
answered exactly as it was. tests/api/test_direct.py compares the two ways'
answers, errors and extensions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

import strawberry
from graphql import GraphQLError, OperationType
from graphql.utilities import get_operation_ast
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperation

from api.execution.compiled import Plans, answer, plan_tried
from api.execution.incremental import is_incremental
from api.operation.budget import Budget, CostCache, report, store_calls_so_far
from api.operation.cost import Cost
from api.operation.documents import DocumentCache, cache_key
from api.operation.persisted import PersistedQueries
from api.schema.context import Context

#: Strawberry's execution of the request: of its own query text, or of the one given.
LongWay = Callable[..., Awaitable[ExecutionResult]]


class Request(NamedTuple):
    """What ``Schema.execute`` is given (a root value aside: newsgraph has none)."""

    query: str | None
    variables: dict[str, Any] | None
    context: Any
    operation_name: str | None
    #: Strawberry's operation types (by transport: a GET allows queries only).
    allowed: Iterable[StrawberryOperation] | None
    extensions: dict[str, Any] | None


class Direct:
    """The direct way for one schema: its caches and limits, shared with the
    extensions that do the same work on the long way."""

    def __init__(
        self,
        *,
        documents: DocumentCache,
        persisted: PersistedQueries,
        max_tokens: int,
        costs: CostCache,
        budget: Budget,
        plans: Plans,
        masker: MaskErrors,
    ) -> None:
        self.documents = documents
        self.persisted = persisted
        # What MaxTokensLimiter sets: the key the document was cached under.
        self.parse_options = {"max_tokens": max_tokens}
        self.costs = costs
        self.budget = budget
        self.plans = plans
        self.masker = masker

    async def execute(
        self,
        schema: strawberry.Schema,
        request: Request,
        long_way: LongWay,
    ) -> ExecutionResult:
        """The request's answer: the direct way's, or ``long_way()``'s."""
        query, variables, context, operation_name, allowed, extensions = request
        if not isinstance(context, Context):
            return await long_way()
        try:
            resolved = self.persisted.resolve(query, extensions)
        except Exception:  # a refused hash, or extensions that are no object: strawberry reports it
            return await long_way()
        query = resolved.query
        document = self.documents.get(cache_key(query, self.parse_options)) if query else None
        if query is None or document is None:  # never seen, or not valid
            return await long_way()
        operation = get_operation_ast(document, operation_name)
        if (
            operation is None
            or operation.operation is not OperationType.QUERY
            or (allowed is not None and StrawberryOperation.QUERY not in allowed)
            or is_incremental(document, query)
        ):
            return await long_way()
        try:
            cost = self.costs.cost(schema._schema, query, document, variables, operation_name)
        except Exception:  # strawberry reports it
            return await long_way()
        if self.budget.refusal(cost) is not None:
            return await long_way()
        if resolved.register is not None:
            self.persisted.register(resolved.register, query)
        calls_before = store_calls_so_far()
        result = await answer(
            self.plans, schema, query, document, variables, operation_name, context
        )
        if result is None:
            return await self._ordinarily(long_way, query, cost, calls_before)
        errors = result.errors
        if errors:
            schema._process_errors(errors)
            errors = [self._masked(error) for error in errors]
        data = result.data
        # The objects the builder counted, unless some root key goes unpriced.
        objects = None if cost.unmetered else getattr(result, "objects", None)
        extensions = report(cost, self.budget, data, calls_before, objects)
        return ExecutionResult(data, errors, extensions)

    async def _ordinarily(
        self,
        long_way: LongWay,
        query: str,
        cost: Cost,
        calls_before: int | None,
    ) -> ExecutionResult:
        """Strawberry's answer, by ordinary execution (the plan ran, and fell
        back: it is not run again), with the plan's store calls reported too.
        It gets the query text already found: a hash looked up again could
        have been evicted from the registry while the plan ran."""
        token = plan_tried.set(True)
        try:
            result = await long_way(query)
        finally:
            plan_tried.reset(token)
        if result.extensions and "cost" in result.extensions:
            result.extensions.update(report(cost, self.budget, result.data, calls_before))
        return result

    def _masked(self, error: GraphQLError) -> GraphQLError:
        masker = self.masker
        return masker.anonymise_error(error) if masker.should_mask_error(error) else error
