"""The one request pipeline: every operation, whichever way it came in, takes
the same steps in the same order.

``steps`` lists them once. Each is a small object in a module of its own
that reads and fills in the :class:`~api.operation.request.Operation`, or
refuses it (:class:`~api.operation.request.Refused`); then one step answers
it (``api.operation.run``), and the answer passes the steps that finish it
(errors masked, ``extensions.cost``). A query seen before takes the same
steps: they find its document, price and plan in their caches. Every
transport calls the same two doors: :meth:`Pipeline.execute` (one answer:
HTTP POST and GET, a persisted hash, ``@defer`` as one answer or in parts)
and :meth:`Pipeline.stream` (a subscription's answers, over WebSocket).

A guard added to ``steps`` applies to every way in at once;
tests/api/test_pipeline.py plants one and checks that.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import ExperimentalIncrementalExecutionResults, GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from api.operation.masking import MaskErrors
from api.operation.request import Operation, Refused, Request
from api.operation.run import Execute

#: A step before execution: reads the operation, fills it in, or raises.
Step = Callable[[Operation], None]
#: A step on each answer (and each answer of a subscription).
Finish = Callable[[Operation, Any], Any]
#: Raised by the steps for a request that is not a GraphQL operation the
#: transport runs: strawberry's HTTP views answer these with 400.
NOT_AN_OPERATION = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)
Answer = ExecutionResult | ExperimentalIncrementalExecutionResults


class Pipeline:
    def __init__(self, steps: Sequence[Step], execute: Execute, finish: Sequence[Finish]) -> None:
        #: In order; a list, so a test can plant a step in it.
        self.steps = list(steps)
        self.run = execute
        self.finish = list(finish)

    async def execute(self, request: Request) -> Answer:
        """The answer to one operation. Raises strawberry's exceptions for a
        request that names no operation the transport runs (see
        :data:`NOT_AN_OPERATION`)."""
        op = Operation(request)
        try:
            self.prepare(op)
            result: Any = await self.run(op)
        except Refused as refused:
            result = PreExecutionError(data=None, errors=refused.errors)
        except NOT_AN_OPERATION:
            raise
        except Exception as exc:  # a step's own error: shown if the client's, else masked
            result = PreExecutionError(data=None, errors=[_as_graphql_error(exc)])
        if isinstance(result, ExperimentalIncrementalExecutionResults):
            return self._parts(op, result)
        return self.finished(op, result)

    async def stream(self, request: Request) -> AsyncGenerator[ExecutionResult, None]:
        """A subscription's answers (one per article it sends); the first is
        a :class:`PreExecutionError` if it never started."""
        op = Operation(request)
        try:
            self.prepare(op)
        except Refused as refused:
            yield self.finished(op, PreExecutionError(data=None, errors=refused.errors))
            return
        except Exception as exc:
            yield self.finished(op, PreExecutionError(data=None, errors=[_as_graphql_error(exc)]))
            return
        if op.kind is not OperationType.SUBSCRIPTION:  # a streaming transport's query
            yield self.finished(op, await self.run(op))
            return
        try:
            source = await self.run.subscribe(op)
        except Exception as exc:
            yield self.finished(op, GraphQLExecutionResult(None, [_as_graphql_error(exc)]))
            return
        if isinstance(source, GraphQLExecutionResult):  # it did not start
            yield self.finished(op, PreExecutionError(data=None, errors=source.errors))
            return
        async with aclosing(source):  # type: ignore[type-var]
            try:
                async for result in source:
                    yield self.finished(op, result)
                    # An answer may be megabytes: not kept while the next waits.
                    del result
            except Exception as exc:  # graphql-core does not catch what its source raises
                yield self.finished(op, GraphQLExecutionResult(None, [_as_graphql_error(exc)]))

    def prepare(self, op: Operation) -> None:
        for step in self.steps:
            step(op)

    def finished(self, op: Operation, result: Any) -> ExecutionResult:
        for step in self.finish:
            result = step(op, result)
        if isinstance(result, ExecutionResult):
            return result
        return ExecutionResult(result.data, result.errors, result.extensions)

    def _parts(
        self, op: Operation, result: ExperimentalIncrementalExecutionResults
    ) -> ExperimentalIncrementalExecutionResults:
        """An answer in parts: the first part's errors and each later part's
        go out as every other answer's do."""
        MaskErrors()(op, result.initial_result)

        async def later(parts: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
            async with aclosing(parts):  # type: ignore[type-var]
                async for part in parts:
                    yield MaskErrors.part(part)

        return ExperimentalIncrementalExecutionResults(
            initial_result=result.initial_result,
            subsequent_results=later(result.subsequent_results),
        )


def _as_graphql_error(error: Exception) -> GraphQLError:
    """An exception a step raised, as an error of the answer (strawberry's
    rule: shown if it is a client's error, masked with the others if not).
    Over a streaming transport, strawberry's refusals read as its views say."""
    if isinstance(error, GraphQLError):
        return error
    if isinstance(error, CannotGetOperationTypeError):
        return GraphQLError(error.as_http_error_reason(), original_error=error)
    if isinstance(error, InvalidOperationTypeError):
        kind = {
            OperationType.QUERY: "queries",
            OperationType.MUTATION: "mutations",
            OperationType.SUBSCRIPTION: "subscriptions",
        }[error.operation_type]
        return GraphQLError(f"{kind} are not allowed", original_error=error)
    return GraphQLError(str(error), original_error=error)
