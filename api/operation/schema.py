"""The schema every transport calls, with its pipeline.

Strawberry stays the schema (types, SDL, the validation rules it adds) and the
transports' front door (its HTTP view, its WebSocket protocol handler, which
call ``Schema.execute`` and ``Schema.stream``). Both of those go through
newsgraph's one pipeline (``api.operation.pipeline``), whose steps are listed
once, in order, in :func:`steps`; strawberry is given no extensions.

Objects are served straight from stored documents, so the default resolver
reads a dict's key (and falls back to an attribute for the connection types).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.execution.compiled import Plans
from api.operation.allowed import ChooseOperation, NameOperation, SubscriptionsOverWebSocket
from api.operation.budget import Budget, CostCache, Price, Report
from api.operation.caching import CacheHints
from api.operation.documents import DocumentCache, FindDocument
from api.operation.incremental import Deliver
from api.operation.masking import MaskErrors
from api.operation.persisted import (
    NoPersistedQueries,
    PersistedQueries,
    RegisterPersisted,
    ResolvePersisted,
)
from api.operation.pipeline import Outcome, Pipeline, Step
from api.operation.request import Request
from api.operation.run import Execute
from api.operation.selections import LimitSelections
from api.operation.validation import Validate, validation_rules
from api.schema.query import Query
from api.schema.resolvers import read_field
from api.schema.scalars import DateTime
from api.schema.subscription import Subscription
from core.config import Settings


@dataclass(frozen=True)
class Caches:
    """What the steps keep between requests, one of each per schema (so per
    app and worker), shared by all requests and bounded by bytes or count."""

    #: Parsed, validated documents by query text.
    documents: DocumentCache
    #: Automatic persisted queries by hash.
    persisted: PersistedQueries
    #: Prices by query text and the variables they read.
    costs: CostCache
    #: Plans by query text (None: compiled execution is off).
    plans: Plans | None

    @classmethod
    def for_settings(cls, settings: Settings) -> Caches:
        persisted = (
            PersistedQueries(settings.persisted_queries_max, settings.persisted_queries_max_bytes)
            if settings.persisted_queries
            else NoPersistedQueries()
        )
        plans = Plans() if settings.compiled else None
        return cls(DocumentCache(settings.query_cache_bytes), persisted, CostCache(), plans)


def steps(
    schema: strawberry.Schema, settings: Settings, caches: Caches, budget: Budget
) -> list[Step]:
    """The steps every operation takes before it is answered, in order."""
    rules = validation_rules(settings.max_query_depth, settings.max_aliases, settings.introspection)
    return [
        NameOperation(),
        ResolvePersisted(caches.persisted),
        # Cached, or parsed with the lexer stopping at the token limit.
        FindDocument(caches.documents, settings.max_tokens),
        ChooseOperation(),
        # Before validation: bounds what validation may cost.
        LimitSelections(settings.max_selections, settings.max_field_repeats),
        Validate(schema._schema, rules, caches.documents),
        RegisterPersisted(caches.persisted),
        SubscriptionsOverWebSocket(),
        # Only a valid operation is priced (and maybe refused).
        Price(schema._schema, budget, caches.costs),
        # After pricing: a deferred query costs what it would undeferred.
        Deliver(),
    ]


class Schema(strawberry.Schema):
    """Strawberry's schema, whose operations all run through :attr:`pipeline`."""

    pipeline: Pipeline
    caches: Caches

    @property
    def documents(self) -> DocumentCache:
        return self.caches.documents

    @property
    def persisted(self) -> PersistedQueries:
        return self.caches.persisted

    async def execute(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> Outcome:
        request = _request(
            query,
            variable_values,
            context_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        return await self.pipeline.execute(request)

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> AsyncGenerator[ExecutionResult, None]:
        request = _request(
            query,
            variable_values,
            context_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        return self.pipeline.stream(request)

    async def subscribe(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> AsyncGenerator[ExecutionResult, None]:
        return await self.stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            (OperationType.SUBSCRIPTION,),
        )


def _request(
    query: str | None,
    variables: dict[str, Any] | None,
    context: Any,
    operation_name: str | None,
    allowed: Iterable[OperationType] | None,
    extensions: dict[str, Any] | None,
) -> Request:
    return Request(
        query,
        variables,
        operation_name,
        extensions,
        context,
        frozenset(OperationType) if allowed is None else frozenset(allowed),
    )


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or Settings()
    schema = Schema(
        query=Query,
        subscription=Subscription,
        config=StrawberryConfig(
            default_resolver=read_field,
            scalar_map={datetime: DateTime},
            # @defer and @stream, delivered as multipart/mixed (api/operation/incremental.py).
            enable_experimental_incremental_execution=True,
        ),
    )
    caches = Caches.for_settings(settings)
    budget = Budget(settings.max_query_objects, settings.max_query_store_calls)
    schema.caches = caches
    schema.pipeline = Pipeline(
        steps(schema, settings, caches, budget),
        Execute(schema, caches.plans),
        [MaskErrors(), Report(budget), CacheHints(schema._schema)],
    )
    return schema


def sdl() -> str:
    """The schema in GraphQL's schema definition language."""
    return build_schema().as_str() + "\n"
