"""``Article.related(first, filter)``: an article's related stories, narrowed.

The stories are embedded in the article (at most ``max_items`` of them, see
``core.document``), so they are filtered here, in the file's order, not by a
store query: the filter becomes a query (``api.data.filters``, from the filters
``core.document`` declares) evaluated on each story in memory
(``api.data.matcher``, as a subscription's filter is); only ``stored`` asks the
store, through the same batched lookup that ``RelatedStory.article`` uses: one
query per nesting level, however many articles and stories, and the lookup
``article`` then finds in its cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from api.data.filters import related_query
from api.data.matcher import compile_filter
from api.errors import ClientError
from api.schema.context import Context
from api.schema.resolvers import article_projection
from core.document import ARTICLE, article_id, max_items

Story = dict[str, Any]
#: An article lists at most this many (the loader refuses more).
RELATED_MAX = max_items(ARTICLE, "related")

#: A story's ``article`` selected below ``related``: the lookup ``stored``
#: shares, so both make one batch.
ARTICLE_PATH = "article"


@strawberry.input(description="Narrow an article's related stories; every field given must match.")
class RelatedFilter:
    providerDomain: str | None = None
    excludeProviderDomain: str | None = strawberry.field(
        default=None, description="Stories from any provider but this one."
    )
    type: str | None = None
    minQuality: int | None = None
    publishedAfter: datetime | None = strawberry.field(
        default=None, description="Published at or after this moment."
    )
    publishedBefore: datetime | None = strawberry.field(
        default=None, description="Published strictly before this moment."
    )
    hasImages: bool | None = None
    stored: bool | None = strawberry.field(
        default=None,
        description="Only stories that are (true) or are not (false) stored articles "
        "this request may see.",
    )


def related_stories(
    info: Info, stories: list[Story], first: int | None, flt: RelatedFilter | None
) -> list[Story] | Awaitable[list[Story]]:
    """The stories that match, at most ``first``, in the file's order; an
    awaitable only when ``stored`` must ask the store."""
    if flt is None or flt.stored is None:
        return narrowing(first, flt)(stories)
    most = _most(first)
    matches = compile_filter(related_query(flt))
    matching = [story for story in stories if matches(story)]
    return _by_storage(info, matching, flt.stored, most)


def narrowing(first: int | None, flt: RelatedFilter | None) -> Callable[[list[Story]], list[Story]]:
    """What ``first`` and a ``filter`` that does not ask the store (no
    ``stored``) keep of a list of stories; raises as the field does for a
    ``first`` it refuses. Compiled plans check the arguments once per request
    with it (``api.execution.plan.fetch``)."""
    most = _most(first)
    if flt is None:
        return lambda stories: stories[:most]
    if flt.stored is not None:
        raise ValueError("`stored` asks the store: related_stories answers it")
    matches = compile_filter(related_query(flt))
    return lambda stories: [s for s in stories if matches(s)][:most]


def _most(first: int | None) -> int:
    return RELATED_MAX if first is None else _checked_first(first)


async def _by_storage(info: Info, stories: list[Story], stored: bool, most: int) -> list[Story]:
    ctx: Context = info.context
    loader = ctx.articles_by_id(article_projection(info, ARTICLE_PATH))
    ids = [article_id(s["webUrl"]) if s.get("webUrl") else None for s in stories]
    found = await loader.load_many([i for i in ids if i is not None])
    visible = {i for i, doc in zip([i for i in ids if i], found, strict=True) if doc}
    return [s for s, i in zip(stories, ids, strict=True) if (i in visible) is stored][:most]


def _checked_first(first: int) -> int:
    if first < 0:
        raise ClientError(f"first must be zero or more, got {first}")
    if first > RELATED_MAX:
        raise ClientError(f"first may be at most {RELATED_MAX} (an article lists no more)")
    return first
