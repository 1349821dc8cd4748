"""The schema, with its limits and caches.

Objects are served straight from stored documents, so the default resolver
reads a dict's key (and falls back to an attribute for the connection types).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.extensions import (
    MaskErrors as StrawberryMaskErrors,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from api.errors import INTERNAL_MESSAGE, classify, should_mask
from api.execution.compiled import Plans, compiled_execution
from api.operation.budget import Budget, CostCache, QueryCostExtension
from api.operation.direct import Direct, Request
from api.operation.documents import DocumentCache, DocumentCacheExtension
from api.operation.incremental import IncrementalDelivery
from api.operation.persisted import NoPersistedQueries, PersistedQueries, PersistedQueryExtension
from api.operation.selections import SelectionLimiter
from api.schema.query import Query
from api.schema.scalars import DateTime
from api.schema.subscription import OverWebSocketOnly, Subscription
from core.config import Settings

log = logging.getLogger("newsgraph.api")


class Schema(strawberry.Schema):
    #: Parsed, validated documents by query text (one cache per schema).
    documents: DocumentCache
    #: Automatic persisted queries by hash.
    persisted: PersistedQueries

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors with their traceback; a client's mistakes in
        one short line (strawberry would log the whole query document, which a
        hostile client could make a megabyte long). Strawberry calls this with
        the errors as graphql-core made them, before MaskErrors sees them: the
        place to give refused variables their code."""
        for error in errors:
            classify(error)
            if should_mask(error):
                log.error("error resolving %s", error.path, exc_info=error.original_error)
            else:
                log.info("client error: %s", error.message[:200])

    #: The direct way for a known query (api/operation/direct.py); None: always strawberry's.
    direct: Direct | None = None

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # Tested for membership by both ways: an iterator would be used up.
        allowed = None if allowed_operation_types is None else frozenset(allowed_operation_types)

        async def long_way(resolved: str | None = query) -> ExecutionResult:
            return await super(Schema, self).execute(
                resolved,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed,
                operation_extensions,
            )

        if self.direct is None or root_value is not None:
            return await long_way()
        request = Request(
            query, variable_values, context_value, operation_name, allowed, operation_extensions
        )
        return await self.direct.execute(self, request, long_way)


class MaskErrors(StrawberryMaskErrors):
    def _process_result(self, result: object) -> None:
        # Strawberry's test, ``isinstance(result, _ResultWithErrors)`` against
        # a runtime-checkable Protocol, cost 3% of a small query's time; this
        # one passes the same results on (those with errors to mask).
        if getattr(result, "errors", None):
            super()._process_result(result)


def read_field(source: Any, name: str) -> Any:
    if type(source) is dict:
        return source.get(name)
    return getattr(source, name)


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or Settings()
    # The depth and alias limiters make a new validation-rule class each time
    # they are constructed: make them once, so every request of this schema
    # validates with the same rules and a document valid once stays valid (the
    # document cache relies on it).
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    # One document cache and one registry per schema (so per app and worker),
    # shared by all requests and bounded by bytes.
    documents = DocumentCache(settings.query_cache_bytes)
    persisted = (
        PersistedQueries(settings.persisted_queries_max, settings.persisted_queries_max_bytes)
        if settings.persisted_queries
        else NoPersistedQueries()
    )
    budget = Budget(settings.max_query_objects, settings.max_query_store_calls)
    costs = CostCache()
    plans = Plans()

    def masker() -> MaskErrors:
        return MaskErrors(should_mask_error=should_mask, error_message=INTERNAL_MESSAGE)

    # Factories, constructed per request. The token limit stops graphql-core's
    # lexer at the limit; a cached document skips parsing and validation; the
    # selection limiter refuses what would make validation costly before any
    # rule runs (it must come after the cache, which marks documents known valid).
    extensions: list[Any] = [
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: DocumentCacheExtension(documents),
        lambda: SelectionLimiter(settings.max_selections, settings.max_field_repeats),
        lambda: PersistedQueryExtension(persisted),
        OverWebSocketOnly,
        # Its on_execute runs after validation, so an invalid query gets
        # validation errors and only a valid one is priced (and maybe refused).
        lambda: QueryCostExtension(budget, costs),
        # After pricing, so a deferred query costs what it would undeferred;
        # before any extension that supplies the result, so that one sees the
        # document as it will run (see api/operation/incremental.py).
        IncrementalDelivery,
        # After the cost extension (a refused query never runs) and after
        # IncrementalDelivery (it plans the document that will run).
        compiled_execution(settings, plans),
        masker,
    ]
    schema = Schema(
        query=Query,
        subscription=Subscription,
        config=StrawberryConfig(
            default_resolver=read_field,
            scalar_map={datetime: DateTime},
            # @defer and @stream, delivered as multipart/mixed (api/operation/incremental.py).
            enable_experimental_incremental_execution=True,
        ),
        extensions=extensions,
    )
    schema.documents, schema.persisted = documents, persisted
    if settings.compiled:
        schema.direct = Direct(
            documents=documents,
            persisted=persisted,
            max_tokens=settings.max_tokens,
            costs=costs,
            budget=budget,
            plans=plans,
            masker=masker(),
        )
    return schema


def sdl() -> str:
    """The schema in GraphQL's schema definition language."""
    return build_schema().as_str() + "\n"
