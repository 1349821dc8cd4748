"""The step that answers: by the operation's plan, or by ordinary execution.

A query is offered to its plan first (``api.execution.compiled``, cached per
query text); what the planner does not cover, or a plan that falls back
after it began, is answered by ordinary execution (``api.execution.ordinary``)
of the same document, given what the plan fetched (``api.execution.replay``).
A subscription is started by ``api.execution.subscription``, which answers
each article once for all the subscriptions identical to it; each subscriber
is handed a :class:`Payload` per article, which the pipeline makes only once
it has drawn that payload's price from the client's budget
(``api.operation.pipeline.Pipeline.stream``), a copy of its own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import ExperimentalIncrementalExecutionResults
from strawberry.types.graphql import OperationType

from api.execution import ordinary, subscription
from api.execution.compiled import Plans, answer
from api.execution.plan.nodes import Answer
from api.execution.replay import Replay
from api.live.feed import Events, Shared
from api.operation.answered import AnswerCache
from api.operation.cost import count_objects
from api.operation.request import Operation, gateway_of


class Execute:
    """Step: the operation's answer: kept from an identical operation
    (``api.operation.answered``), else made. ``plans`` None: ordinary
    execution only (``NEWSGRAPH_COMPILED=false``); ``answers`` None: none kept."""

    def __init__(
        self, schema: strawberry.Schema, plans: Plans | None, answers: AnswerCache | None = None
    ) -> None:
        self.schema = schema
        self.plans = plans
        self.answers = answers

    async def __call__(
        self, op: Operation
    ) -> GraphQLExecutionResult | ExperimentalIncrementalExecutionResults:
        answers = self.answers
        if answers is None:
            return await self.make(op)
        lookup = answers.find(op, gateway_of(op))
        if lookup.answer is not None:
            return lookup.answer
        made = await self.make(op)
        if lookup.key is not None:
            answers.keep(lookup, op, made)
        return made

    async def make(
        self, op: Operation
    ) -> GraphQLExecutionResult | ExperimentalIncrementalExecutionResults:
        """The answer made: by the operation's plan, else ordinarily."""
        document = op.executed or op.document
        assert document is not None
        context = op.context
        if self.plans is not None and op.kind is not OperationType.SUBSCRIPTION:
            replay = Replay()
            planned = await answer(
                self.plans,
                self.schema,
                op.query or "",
                document,
                op.variables,
                op.name,
                context,
                replay,
            )
            if planned is not None:
                op.execution = "compiled"
                return planned
            op.execution = "fallback"
            # What the plan asked before it fell back is not asked again.
            context = replay.replay(context)
        else:
            op.execution = "ordinary"
        return await ordinary.execute(
            self.schema, document, op.variables, op.name, context, op.request.extensions
        )

    async def subscribe(self, op: Operation) -> AsyncIterator[Any] | GraphQLExecutionResult:
        """A subscription's results, or the errors that kept it from starting."""
        document = op.executed or op.document
        assert document is not None
        # Each article is answered for the identical subscriptions at once,
        # by plan or ordinarily (``api.execution.subscription``).
        op.execution = "shared"
        source = await subscription.subscribe(
            self.schema,
            self.plans,
            op.query or "",
            document,
            op.variables,
            op.name,
            op.context,
            op.request.extensions,
        )
        if isinstance(source, GraphQLExecutionResult):
            return source
        # Started: its group answers it by the first member's document, so
        # this one's own parse (if not the cached one) is not kept while it
        # runs: identical subscriptions hold one document (api.live.allowance).
        op.document = op.executed = op.definition = None
        return _delivered(op, source)


class Payload:
    """One article's answer for one subscriber, not made yet: the pipeline
    draws its price from the client's budget first (a refusal is sent in its
    place, and nothing is computed for it), then :meth:`make` awaits the
    answer shared with the identical subscriptions and gives it in a copy of
    its own (the steps that finish an answer write into it)."""

    __slots__ = ("shared",)

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def make(self) -> Answer:
        answer = await self.shared.answer()
        if answer.objects is None and not answer.errors:
            answer.objects = count_objects(answer.data)  # once, for all
        errors = list(answer.errors) if answer.errors else None
        return Answer(answer.data, errors, answer.objects)


async def _delivered(op: Operation, events: Events) -> AsyncGenerator[Payload, None]:
    """One subscriber's payloads, one per article it is sent.

    One payload of a connection's at a time is made and written (its
    ``writing`` lock, held from the moment it is handed out until the
    transport has written it and asks for the next): a client that reads
    slowly keeps one answer waiting for it, not one per subscription."""
    owner = op.context.owner
    async with aclosing(events):
        async for shared in events:
            async with owner.writing:
                yield Payload(shared)
            # Written: an answer may be megabytes, not kept while the next waits.
            del shared
