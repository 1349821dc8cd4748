"""Running a plan: arguments, store calls, then the response, with the errors
ordinary execution gives.

Ordinary execution starts the root fields in order: graphql-core coerces each
one's arguments as it starts it (a refusal there is reported at once), and
each resolver runs its checks before its first store call, all before any
store answers. So a refused root field is reported with the same message,
path and code here, in the same order; a non-nullable one (``articles``)
nulls the whole response, reported after the nullable ones (``article``), and
of several only the first is reported, as the executor cancels the rest. (A
non-nullable one refused beside a root field that started is left to ordinary
execution: where the store answers at once, the other may fail first.)

A store that fails (``STORE_UNAVAILABLE``) is not asked again: the error is
reported at the root field whose calls failed (ordinary execution reports it
at each field that asked, in the order the calls fail).

Below the root a refusal depends on the data (a nested page is refused once
per parent, and not at all without one), and several errors are ordered by the
executor's scheduling: those run by ordinary execution (:class:`Fallback`).
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import ExecutionResult, GraphQLError, GraphQLNonNull, located_error
from graphql.execution.values import VariableValues

from api.errors import ClientError
from api.execution.plan.fetch import arguments, check, fetch
from api.execution.plan.nodes import Answer, Failure, Fallback, Plan, PlanField
from api.execution.plan.state import State
from api.schema.context import Context


async def run(
    plan: Plan,
    schema: strawberry.Schema,
    ctx: Context,
    variables: VariableValues,
    root: Any = None,
) -> ExecutionResult:
    """The plan's answer; ``root`` is the root value (a subscription's article)."""
    state = State(ctx)
    refused = _start_root(plan, schema, variables, state)
    if isinstance(refused, ExecutionResult):
        return refused
    for f in plan.nested_arguments:
        key = plan.checked_key(f, ctx.admin, variables)
        if key is not None and key in plan.checked:
            state.args[f] = plan.checked[key]
            continue
        try:
            state.args[f] = check(f, arguments(schema, f, variables), ctx.admin)
        except Exception as error:
            raise Fallback(f"{f.parent}.{f.name} refuses its arguments") from error
        if key is not None:
            plan.checked[key] = state.args[f]
    for f in plan.root.fields:
        if f in refused:
            continue
        try:
            await fetch(plan, f, [root], state)
        except ClientError as error:  # the store failed: not asked again
            located = located_error(error, f.nodes, [f.key])
            if _required(f):
                return ExecutionResult(None, [*state.errors, located])
            state.errors.append(located)
            refused |= {f}
    data: dict[str, Any] | None = {}
    try:
        data = {
            f.key: None if f in refused else f.resolve(root, state, None) for f in plan.root.fields
        }
    except Failure as failure:  # a non-nullable root field failed: no data at all
        state.fail(failure)
        data = None
    if state.failures and len(state.errors) > 1:
        raise Fallback("several field errors: ordinary execution orders them")
    if state.errors:  # objects may have been made, then nulled: not counted
        return Answer(data, state.errors)
    return Answer(data, None, state.objects)


def _start_root(
    plan: Plan, schema: strawberry.Schema, variables: VariableValues, state: State
) -> frozenset[PlanField] | ExecutionResult:
    """Check the root fields' arguments in execution's order: the refused
    nullable fields, or the answer when a non-nullable one is refused."""
    refused: set[PlanField] = set()
    given: dict[PlanField, dict[str, Any]] = {}
    keys: dict[PlanField, tuple[Any, ...] | None] = {}
    # graphql-core coerces arguments while starting each field, synchronously.
    for f in plan.root.fields:
        if not f.arguments:
            continue
        key = keys[f] = plan.checked_key(f, state.admin, variables)
        if key is not None and key in plan.checked:  # the same arguments passed before
            state.args[f] = plan.checked[key]
            continue
        try:
            given[f] = arguments(schema, f, variables)
        except Exception as raw:
            error = located_error(raw, f.nodes, [f.key])
            if _required(f):
                return ExecutionResult(None, [*state.errors, error])
            state.errors.append(error)
            refused.add(f)
    # Then each started resolver runs until its first store call.
    first_required: GraphQLError | None = None
    for f, args in given.items():
        try:
            state.args[f] = check(f, args, state.admin)
            key = keys[f]
            if key is not None:
                plan.checked[key] = state.args[f]
        except Exception as raw:
            error = located_error(raw, f.nodes, [f.key])
            if not _required(f):
                state.errors.append(error)
                refused.add(f)
            elif first_required is None:
                first_required = error
    if first_required is not None:
        if any(f in state.args for f in plan.root.fields):
            # Another root field started too: where its store calls answer at
            # once (the embedded engine), its own errors may come first.
            raise Fallback("a refused root field beside others that started")
        return ExecutionResult(None, [*state.errors, first_required])
    return frozenset(refused)


def _required(f: PlanField) -> bool:
    return isinstance(f.definition.type, GraphQLNonNull)
