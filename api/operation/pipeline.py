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
and :meth:`Pipeline.stream` (a subscription's answers, over WebSocket or
Server-Sent Events).
What a step holds while an operation runs (a slot of the client's
concurrency) is let go when its answer is made (``Operation.close``); each
answer of a subscription first passes the ``each`` steps (:meth:`Pipeline.draw`),
before it is made where its source can wait (a :class:`~api.operation.run.Payload`).

A guard added to ``steps`` applies to every way in at once;
tests/api/test_pipeline.py plants one and checks that.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import ExperimentalIncrementalExecutionResults, GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from api.errors import ClientError
from api.operation import traced
from api.operation.cost import count_objects
from api.operation.masking import MaskErrors
from api.operation.request import Operation, Refused, Request
from api.operation.run import Execute, Payload
from api.telemetry import tracing

#: A step before execution: reads the operation, fills it in, or raises; one
#: that must ask the store returns an awaitable doing so (see Pipeline.prepare).
Step = Callable[[Operation], Awaitable[None] | None]
#: A step on each answer (and each answer of a subscription).
Finish = Callable[[Operation, Any], Any]
#: Raised by the steps for a request that is not a GraphQL operation the
#: transport runs: strawberry's HTTP views answer these with 400.
NOT_AN_OPERATION = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)
Outcome = ExecutionResult | ExperimentalIncrementalExecutionResults


class Pipeline:
    def __init__(
        self,
        steps: Sequence[Step],
        execute: Execute,
        finish: Sequence[Finish],
        each: Sequence[Step] = (),
    ) -> None:
        #: In order; a list, so a test can plant a step in it.
        self.steps = list(steps)
        self.run = execute
        self.finish = list(finish)
        #: Steps on each answer of a subscription, before it is sent (its
        #: price drawn from the client's budget): see :meth:`draw`.
        self.each = list(each)

    async def execute(self, request: Request) -> Outcome:
        """The answer to one operation. Raises strawberry's exceptions for a
        request that names no operation the transport runs (see
        :data:`NOT_AN_OPERATION`)."""
        op = Operation(request)
        with tracing.operation() as span:  # its span: the steps, the answer
            answer = await self._execute(op)
            if span.recording:
                first = getattr(answer, "initial_result", answer)
                traced.describe(span, op, first)
            return answer

    async def _execute(self, op: Operation) -> Outcome:
        in_parts = False
        try:
            try:
                waiting = self.start(op)
                if waiting is not None:  # a step asks the store
                    await waiting
                result: Any = await self.run(op)
            except Refused as refused:
                result = PreExecutionError(data=None, errors=refused.errors)
            except NOT_AN_OPERATION:
                raise
            except Exception as exc:  # a step's own error: shown if the client's, else masked
                result = PreExecutionError(data=None, errors=[_as_graphql_error(exc)])
            if isinstance(result, ExperimentalIncrementalExecutionResults):
                in_parts = True  # closed when its last part is made
                return self._parts(op, result)
            return self.finished(op, result)
        finally:
            if not in_parts:
                op.close()

    async def stream(self, request: Request) -> Stream:
        """A subscription's answers (one per article it sends), started
        before it returns: its steps run (and may refuse it) while the
        transport can still answer as it likes, say with an HTTP status
        (``api.http.sse``). If it did not start as a subscription (refused,
        or a streaming transport's query), ``Stream.answer`` is its one
        answer, which is also all it yields."""
        op = Operation(request)
        # The span covers the start (steps, price, the source set up), or the
        # one answer of a refusal or a query; it closes before the first
        # answer of a subscription is awaited, so no context is held across them.
        with tracing.operation() as span:
            answer, source = await self._start(op)
            if span.recording:
                traced.describe(span, op, answer)
        return Stream(answer, self._answers(op, answer, source))

    async def _answers(
        self, op: Operation, answer: ExecutionResult | None, source: Any
    ) -> AsyncGenerator[ExecutionResult, None]:
        if source is None:
            assert answer is not None
            yield answer
            return
        async with aclosing(source):
            try:
                async for result in source:
                    refused = self.draw(op)
                    if refused:
                        result = GraphQLExecutionResult(None, refused)
                    elif isinstance(result, Payload):  # made once it is paid for
                        result = await result.make()
                    yield self.finished(op, result)
                    # An answer may be megabytes: not kept while the next waits.
                    del result
            except Exception as exc:  # graphql-core does not catch what its source raises
                yield self.finished(op, GraphQLExecutionResult(None, [_as_graphql_error(exc)]))

    async def _start(self, op: Operation) -> tuple[ExecutionResult | None, Any]:
        """A streamed operation up to its start: the one answer it gets (it was
        refused, or is not a subscription), or the subscription's source.
        What the steps held for it is let go once it has started."""
        try:
            try:
                await self.prepare(op)
            except Refused as refused:
                return self.finished(op, PreExecutionError(data=None, errors=refused.errors)), None
            except Exception as exc:
                error = _as_graphql_error(exc)
                return self.finished(op, PreExecutionError(data=None, errors=[error])), None
            if op.kind is not OperationType.SUBSCRIPTION:  # a streaming transport's query
                return self.finished(op, await self.run(op)), None
            try:
                source = await self.run.subscribe(op)
            except Exception as exc:
                error = _as_graphql_error(exc)
                return self.finished(op, GraphQLExecutionResult(None, [error])), None
            if isinstance(source, GraphQLExecutionResult):  # it did not start
                return self.finished(op, PreExecutionError(data=None, errors=source.errors)), None
            return None, source
        finally:
            op.close()

    async def prepare(self, op: Operation) -> None:
        waiting = self.start(op)
        if waiting is not None:
            await waiting

    def start(self, op: Operation) -> Awaitable[None] | None:
        """The steps, at once as far as memory answers them; from the first
        that must ask the store on, what to await (None: all were taken).
        Most steps need nothing but memory and return None; one that may ask
        the store (a persisted query other workers registered, a budget kept
        in the store) returns what to await, only when it must. So an
        operation that waits for nothing is not made to await anything."""
        steps = self.steps
        for i, step in enumerate(steps):
            waiting = step(op)
            if waiting is not None:
                return self._rest(op, waiting, i + 1)
        return None

    async def _rest(self, op: Operation, waiting: Awaitable[None], after: int) -> None:
        """``waiting`` awaited, then the steps from ``after`` on, as ``prepare``."""
        await waiting
        for step in self.steps[after:]:
            more = step(op)
            if more is not None:
                await more

    def draw(self, op: Operation) -> list[GraphQLError]:
        """Before each answer of a subscription ``op``: its ``each`` steps
        (the answer's price drawn from the client's budget). The errors to
        send instead of the answer if a step refused it, else none. Whatever
        makes a subscription's answers calls this once per answer, per
        subscriber, before making it where it can."""
        try:
            for step in self.each:
                step(op)
        except Refused as refused:
            return refused.errors
        return []

    def finished(self, op: Operation, result: Any) -> ExecutionResult:
        for step in self.finish:
            result = step(op, result)
        if isinstance(result, ExecutionResult):
            return result
        return ExecutionResult(result.data, result.errors, result.extensions)

    def _settle(self, op: Operation, objects: int) -> None:
        """An answer in parts is made: the finish steps that settle on its
        size (the client's budget given back what it did not use) do."""
        for step in self.finish:
            settle = getattr(step, "settle", None)
            if settle is not None:
                settle(op, objects)

    def _parts(
        self, op: Operation, result: ExperimentalIncrementalExecutionResults
    ) -> ExperimentalIncrementalExecutionResults:
        """An answer in parts: the first part's errors and each later part's
        go out as every other answer's do. The operation is closed when the
        last part is made, or when the parts are dropped unread (a client
        that left before they began)."""
        MaskErrors()(op, result.initial_result)
        initial = result.initial_result
        # The parts are paid as they are priced (api.operation.cost), each
        # announced in a `pending` entry; see _part_objects.
        objects = [count_objects(initial.data) + len(getattr(initial, "pending", None) or ())]

        async def later(parts: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
            try:
                async with aclosing(parts):  # type: ignore[type-var]
                    async for part in parts:
                        objects.append(_part_objects(part))
                        yield MaskErrors.part(part)
            finally:
                self._settle(op, sum(objects))
                op.close()

        subsequent = later(result.subsequent_results)
        weakref.finalize(subsequent, op.close)
        return ExperimentalIncrementalExecutionResults(
            initial_result=result.initial_result,
            subsequent_results=subsequent,
        )


class Stream(AsyncGenerator[ExecutionResult, None]):
    """A started stream of answers (:meth:`Pipeline.stream`): the generator
    it wraps, and ``answer``, its one answer if it did not start as a
    subscription, else None."""

    def __init__(
        self,
        answer: ExecutionResult | None,
        answers: AsyncGenerator[ExecutionResult, None],
    ) -> None:
        self.answer = answer
        self._answers = answers

    @property
    def subscription(self) -> bool:
        """Whether it started as a subscription (answers follow, one per article)."""
        return self.answer is None

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> ExecutionResult:
        return await self._answers.__anext__()

    async def asend(self, value: None) -> ExecutionResult:
        return await self._answers.asend(value)

    async def athrow(self, *args: Any) -> ExecutionResult:
        return await self._answers.athrow(*args)

    async def aclose(self) -> None:
        await self._answers.aclose()


def _part_objects(part: Any) -> int:
    """The objects a later part of an answer adds, counted as the cost
    analysis prices them (``PART_OBJECTS``, ``STREAM_OBJECTS``): its
    ``pending`` and ``completed`` entries, each ``incremental`` entry and what
    it holds (a deferred fragment's ``data`` object and the objects in it, a
    streamed list's items). Counted from ``data`` and ``items`` alone, an
    answer in parts paid what it did whole: 119 one-field fragments on 100
    articles, priced 47,701 objects, made 23,900 entries (832 kB) and paid 121
    points. What is counted here never costs more than was drawn for it
    (``ReportBudget`` gives back, never takes)."""
    found = len(getattr(part, "pending", None) or ()) + len(getattr(part, "completed", None) or ())
    for payload in getattr(part, "incremental", None) or ():
        found += 1  # the entry
        data = getattr(payload, "data", None)
        if data is not None:  # its data object (the fields' owner was counted already)
            found += 1 + count_objects(data)
        else:  # a streamed list's items
            found += count_objects({"items": getattr(payload, "items", None)})
    return found


def _as_graphql_error(error: Exception) -> GraphQLError:
    """An exception a step raised, as an error of the answer (strawberry's
    rule: shown if it is a client's error, masked with the others if not).
    Over a streaming transport, strawberry's refusals read as its views say."""
    if isinstance(error, GraphQLError):
        return error
    if isinstance(error, CannotGetOperationTypeError):
        return _refusal(error.as_http_error_reason())
    if isinstance(error, InvalidOperationTypeError):
        kind = {
            OperationType.QUERY: "queries",
            OperationType.MUTATION: "mutations",
            OperationType.SUBSCRIPTION: "subscriptions",
        }[error.operation_type]
        return _refusal(f"{kind} are not allowed here")
    return GraphQLError(str(error), original_error=error)


def _refusal(message: str) -> GraphQLError:
    """The client's mistake (no operation, or not one the transport runs):
    shown as it is, not masked as an internal error."""
    error = ClientError(message)
    return GraphQLError(message, original_error=error, extensions=error.extensions)
