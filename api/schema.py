"""The schema, with its limits and caches.

Objects are served straight from stored documents, so the default resolver
reads a dict's key (and falls back to an attribute for the connection types).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from api.compiled import compiled_execution
from api.cost import Budget, CostCache, QueryCostExtension
from api.errors import INTERNAL_MESSAGE, classify, should_mask
from api.persisted import NoPersistedQueries, PersistedQueries, PersistedQueryExtension
from api.query import Query
from api.scalars import DateTime
from core.config import Settings

log = logging.getLogger("newsgraph.api")


class Schema(strawberry.Schema):
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


def read_field(source: Any, name: str) -> Any:
    if type(source) is dict:
        return source.get(name)
    return getattr(source, name)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # The depth and alias limiters make a new validation-rule class each time
    # they are constructed, and ValidationCache keys on those classes: make
    # them once, so every request validates with the same rules and a repeated
    # query is validated once, not on every request.
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    # One registry per schema (so per app and worker), shared by all requests.
    persisted = (
        PersistedQueries(settings.persisted_queries_max)
        if settings.persisted_queries
        else NoPersistedQueries()
    )
    budget = Budget(settings.max_query_objects, settings.max_query_store_calls)
    costs = CostCache()
    # Factories, constructed per request; the parser and validation caches
    # are module-level in strawberry and shared across those instances.
    extensions: list[Any] = [
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: PersistedQueryExtension(persisted),
        # Its on_execute runs after validation, so an invalid query gets
        # validation errors and only a valid one is priced (and maybe refused).
        lambda: QueryCostExtension(budget, costs),
        compiled_execution(settings),  # after the cost extension: a refused query never runs
        lambda: MaskErrors(should_mask_error=should_mask, error_message=INTERNAL_MESSAGE),
    ]
    return Schema(
        query=Query,
        config=StrawberryConfig(default_resolver=read_field, scalar_map={datetime: DateTime}),
        extensions=extensions,
    )


def sdl() -> str:
    """The schema in GraphQL's schema definition language."""
    return build_schema().as_str() + "\n"
