"""Subscriptions: each article answered once for all identical subscriptions,
by a plan where the planner covers the selection, else by ordinary execution.

graphql-core's ``subscribe`` answers every event once per subscriber, a
resolver per field. Here its parts are put together instead:
``Executor.build`` (the variables coerced, or the errors that keep the
subscription from starting), ``create_source_event_stream`` (the root
field's resolver, ``api.schema.subscription``, which joins the feed), and,
for each article, the answer :class:`Payloads` gives. The resolver finds a
:class:`Payloads` on the operation's context and joins the group of
subscriptions with the same key (``api.live.feed``): the same query text,
operation, variables and visibility (the admin's or anyone's). Those are
answered alike, so the group answers each article once and every member is
sent that answer, as Hasura multiplexes its live queries.

An answer's selection is that of ``article(id:)`` on a document already in
hand: the planner plans the subscription's root field as the event's article
(``Kind.EVENT``) and a plan runs with the article as its root value. What the
planner does not cover, or a plan that falls back, is answered by
graphql-core's ``execute_subscription_event`` on the same article, as
``subscribe`` would, given what the plan fetched (``api.execution.replay``).
tests/api/test_subscription_payloads.py holds the two to the same answers.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Hashable, Mapping
from typing import Any

import orjson
import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    create_source_event_stream,
    execute_subscription_event,
)
from graphql.execution import Executor
from strawberry.execution import optimized_is_awaitable
from strawberry.utils.await_maybe import await_maybe

from api.bounded import deep_size, document_size
from api.data.gateway import Gateway
from api.execution.compiled import Plans
from api.execution.plan import Fallback, Plan, Unplannable, run
from api.execution.plan.nodes import Answer
from api.execution.replay import Replay
from api.live.feed import Event, Events
from api.schema.context import Context

log = logging.getLogger("newsgraph.api")


def share_key(
    query: str, operation_name: str | None, variables: Mapping[str, Any] | None, admin: bool
) -> Hashable:
    """What makes two subscriptions identical: the query text, the operation,
    the variables it declares as sent (their JSON, keys sorted; the pipeline
    dropped any other) and whether the admin asks. A subscription without a
    text, or with variables that are not JSON, is identical to no other."""
    if not query:
        return object()
    try:
        values = orjson.dumps(dict(variables or {}), option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return object()
    return (query, operation_name, values, admin)


class Payloads:
    """How one subscription answers each article it is sent: a plan, or the
    executor graphql-core's ``subscribe`` would use (``api.live.feed.Answers``).
    A group keeps its first member's; its members' are equal."""

    def __init__(
        self,
        key: Hashable,
        schema: strawberry.Schema,
        plans: Plans | None,
        query: str,
        document: DocumentNode,
        executor: Executor[Any],
        gateway: Gateway,
        admin: bool,
    ) -> None:
        self.key = key
        self.schema = schema
        self.plans = plans
        self.query = query
        self.document = document
        # A copy: the subscriber's context (its connection) is not kept alive
        # by a group that outlives it; each answer gets a context of its own.
        self.executor = executor.build_per_event_executor(None)
        self.executor.context_value = None
        self.gateway = gateway
        self.admin = admin
        self._plan: Plan | Unplannable | None = None

    def size(self) -> int:
        """Estimated bytes the group answering alike holds for all its
        members: its plan, made now (it would be at the first article),
        which holds the document; else the document; the coerced variables
        and the key (``api.live.allowance``). Work (a plan, and a walk of
        what it holds), not a lookup: the feed asks once per group."""
        try:
            plan = self.plan()
        except Exception:  # answered (and logged) at the first article, as it was
            plan = None
        held = plan.bytes if plan is not None else document_size(self.query, self.document)
        return held + deep_size(self.executor.variable_values.coerced) + deep_size(self.key)

    @property
    def own(self) -> int:
        """Estimated bytes each member holds of its own: its text (the
        transport's copy; its document is let go once it has started,
        ``api.operation.run``)."""
        return sys.getsizeof(self.query)

    async def answer(self, event: Event) -> Answer:
        """``event`` answered: by the plan, or by ordinary execution. Never
        raises: a failure is the answer's (masked) error."""
        # Fresh batch answers for each article: a group lives long.
        context = Context(self.gateway, self.admin)
        try:
            if isinstance(event, dict):
                plan = self.plan()
                if plan is not None:
                    replay = Replay()
                    try:
                        return await self.by_plan(plan, event, replay.record(context))
                    except Fallback as why:
                        log.info("compiled plan fell back to ordinary execution: %s", why)
                        # What the plan asked before it fell back is not asked again.
                        context = replay.replay(context)
            return await self.ordinarily(event, context)
        except Exception as exc:
            log.exception("a subscription's answer failed")
            return Answer(None, [GraphQLError(str(exc), original_error=exc)])

    def plan(self) -> Plan | None:
        """The plan, made once (and kept with the queries' plans, by text);
        None when the planner does not cover the selection."""
        if self.plans is None:
            return None
        if self._plan is None:
            executor = self.executor
            try:
                self._plan = self.plans.plan(
                    self.schema,
                    self.query,
                    self.document,
                    executor.operation,
                    executor.variable_values,
                )
            except Unplannable as why:
                log.debug("subscription answered by ordinary execution: %s", why)
                self._plan = why
        return None if isinstance(self._plan, Unplannable) else self._plan

    async def by_plan(self, plan: Plan, article: dict[str, Any], context: Context) -> Answer:
        result = await run(plan, self.schema, context, self.executor.variable_values, article)
        return result if isinstance(result, Answer) else Answer(result.data, result.errors)

    async def ordinarily(self, event: Event, context: Context) -> Answer:
        executor = self.executor.build_per_event_executor(event)
        executor.context_value = context
        result = await await_maybe(execute_subscription_event(executor))
        return Answer(result.data, result.errors)


async def subscribe(
    schema: strawberry.Schema,
    plans: Plans | None,
    query: str,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: Context,
    extensions: dict[str, Any] | None,
) -> Events | ExecutionResult:
    """The subscription's source stream (a shared answer to await per
    article), or the errors that kept it from starting."""
    executor = schema.execution_context_class.build(
        schema._schema,
        document,
        context_value=context,
        raw_variable_values=variables,
        operation_name=operation_name,
        is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
        operation_extensions=extensions,
    )
    if isinstance(executor, list):  # refused variables, or no such operation
        return ExecutionResult(None, executor)
    key = share_key(query, operation_name, variables, context.admin)
    context.answers = Payloads(
        key, schema, plans, query, document, executor, context.gateway, context.admin
    )
    source = await await_maybe(create_source_event_stream(executor))
    if isinstance(source, ExecutionResult):  # the resolver refused it
        return source
    assert isinstance(source, Events), source  # what the resolver returns
    return source
