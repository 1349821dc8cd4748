"""The schema, with its limits and caches.

Objects are served straight from stored documents, so the default resolver
reads a dict's key (and falls back to an attribute for the connection types).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
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

from api.errors import should_mask
from api.query import Query
from api.scalars import DateTime
from newsgraph.config import Settings


def read_field(source: Any, name: str) -> Any:
    if type(source) is dict:
        return source.get(name)
    return getattr(source, name)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # Factories, constructed per request; the parser and validation caches
    # are module-level in strawberry and shared across those instances.
    extensions: list[Any] = [
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: MaskErrors(should_mask_error=should_mask, error_message="internal error"),
    ]
    if not settings.introspection:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
    return strawberry.Schema(
        query=Query,
        config=StrawberryConfig(default_resolver=read_field, scalar_map={datetime: DateTime}),
        extensions=extensions,
    )


def sdl() -> str:
    """The schema in GraphQL's schema definition language."""
    return build_schema().as_str() + "\n"
