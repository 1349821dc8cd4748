"""The step that answers: by the operation's plan, or by ordinary execution.

A query is offered to its plan first (``api.execution.compiled``, cached per
query text); what the planner does not cover, or a plan that falls back
after it began, is answered by ordinary execution (``api.execution.ordinary``)
of the same document. A subscription is started by
``api.execution.subscription``, which answers each article once for all the
subscriptions identical to it; each subscriber then draws the payload's price
from its client's budget (its connection's ``charge``) and is sent a copy of
its own.
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
from api.live.feed import Events
from api.operation.cost import count_objects
from api.operation.request import Operation


class Execute:
    """Step: the operation's answer. ``plans`` None: ordinary execution only
    (``NEWSGRAPH_COMPILED=false``)."""

    def __init__(self, schema: strawberry.Schema, plans: Plans | None) -> None:
        self.schema = schema
        self.plans = plans

    async def __call__(
        self, op: Operation
    ) -> GraphQLExecutionResult | ExperimentalIncrementalExecutionResults:
        document = op.executed or op.document
        assert document is not None
        if self.plans is not None and op.kind is not OperationType.SUBSCRIPTION:
            planned = await answer(
                self.plans, self.schema, op.query or "", document, op.variables, op.name, op.context
            )
            if planned is not None:
                return planned
        return await ordinary.execute(
            self.schema, document, op.variables, op.name, op.context, op.request.extensions
        )

    async def subscribe(self, op: Operation) -> AsyncIterator[Any] | GraphQLExecutionResult:
        """A subscription's results, or the errors that kept it from starting."""
        document = op.executed or op.document
        assert document is not None
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
        return _delivered(op, source)


async def _delivered(op: Operation, events: Events) -> AsyncGenerator[GraphQLExecutionResult, None]:
    """One subscriber's answers: for each article its price drawn first (a
    refusal is sent in its place, and nothing is computed for it), then the
    answer shared with the identical subscriptions, in a copy of its own (the
    steps that finish an answer write into it).

    One payload of a connection's at a time is answered and written (its
    ``writing`` lock, held until the transport has written the payload and
    asks for the next): a client that reads slowly keeps one answer waiting
    for it, not one per subscription."""
    owner = op.context.owner
    unmetered = op.cost.unmetered if op.cost is not None else frozenset()
    async with aclosing(events):
        async for shared in events:
            async with owner.writing:
                refused = owner.charge(op.cost)
                if refused is not None:
                    yield GraphQLExecutionResult(None, [refused])
                    continue
                answer = await shared.answer()
                if answer.objects is None and not answer.errors:
                    answer.objects = count_objects(answer.data, unmetered)  # once, for all
                errors = list(answer.errors) if answer.errors else None
                yield Answer(answer.data, errors, answer.objects)
            # Written: an answer may be megabytes, not kept while the next waits.
            del shared, answer
