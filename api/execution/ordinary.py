"""Ordinary execution: graphql-core's executor, a resolver per field.

What plans do not answer runs here: introspection, ``@defer``/``@stream``
delivered in parts, subscriptions, and any query a plan declines or falls
back from. It is graphql-core's ``execute`` (incrementally, so ``@defer``
can be delivered in parts) and ``subscribe`` over strawberry's schema, with
strawberry's execution context (which hands resolvers strawberry's ``Info``):
what strawberry's own ``Schema.execute`` calls, without its per-request
extension machinery (newsgraph's pipeline does that work once, for every way
in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExperimentalIncrementalExecutionResults,
    experimental_execute_incrementally,
    subscribe,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.execution import optimized_is_awaitable
from strawberry.utils.await_maybe import await_maybe


async def execute(
    schema: strawberry.Schema,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: Any,
    extensions: dict[str, Any] | None,
) -> GraphQLExecutionResult | ExperimentalIncrementalExecutionResults:
    result: GraphQLExecutionResult | ExperimentalIncrementalExecutionResults = await await_maybe(
        experimental_execute_incrementally(
            schema._schema,
            document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            executor_class=schema.execution_context_class,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            operation_extensions=extensions,
        )
    )
    return result


async def subscribe_to(
    schema: strawberry.Schema,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: Any,
    extensions: dict[str, Any] | None,
) -> AsyncIterator[GraphQLExecutionResult] | GraphQLExecutionResult:
    """The subscription's results, or the errors that kept it from starting."""
    result: AsyncIterator[GraphQLExecutionResult] | GraphQLExecutionResult = await await_maybe(
        subscribe(
            schema._schema,
            document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            executor_class=schema.execution_context_class,
            operation_extensions=extensions,
        )
    )
    return result
