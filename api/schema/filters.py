"""Typed filter and order inputs for lists of articles.

What they become in the store is ``api.data.filters``.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry


@strawberry.input(description="Narrow a list of articles; every field given must match.")
class ArticleFilter:
    topic: str | None = None
    topicsAny: list[str] | None = strawberry.field(
        default=None, description="Articles with at least one of these topics."
    )
    providerDomain: str | None = None
    category: str | None = None
    type: str | None = None
    publishedAfter: datetime | None = strawberry.field(
        default=None, description="Published at or after this moment."
    )
    publishedBefore: datetime | None = strawberry.field(
        default=None, description="Published strictly before this moment."
    )
    minQuality: int | None = None
    minHeat: int | None = None
    search: str | None = strawberry.field(
        default=None,
        description="Words that must all appear in the title or excerpt "
        "(case- and accent-insensitive, whole words).",
    )
    published: bool | None = strawberry.field(
        default=None, description="Unpublished articles need the admin token."
    )


@strawberry.enum(description="How a list of articles is sorted.")
class ArticleOrder(Enum):
    PUBLISHED_DESC = "PUBLISHED_DESC"
    PUBLISHED_ASC = "PUBLISHED_ASC"
    QUALITY_DESC = "QUALITY_DESC"
    HEAT_DESC = "HEAT_DESC"
    RELEVANCE = strawberry.enum_value(
        "RELEVANCE",
        description="With `search`: title matches first, then excerpt matches; newest first "
        "within each.",
    )
