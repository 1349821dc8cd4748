"""The step that answers: by the operation's plan, or by ordinary execution.

A query is offered to its plan first (``api.execution.compiled``, cached per
query text); what the planner does not cover, or a plan that falls back
after it began, is answered by ordinary execution (``api.execution.ordinary``)
of the same document, given what the plan fetched (``api.execution.replay``).
A subscription starts by ordinary execution, which then answers each article
it sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import ExperimentalIncrementalExecutionResults
from strawberry.types.graphql import OperationType

from api.execution import ordinary
from api.execution.compiled import Plans, answer
from api.execution.replay import Replay
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
        op.execution = "ordinary"
        return await ordinary.subscribe_to(
            self.schema, document, op.variables, op.name, op.context, op.request.extensions
        )
