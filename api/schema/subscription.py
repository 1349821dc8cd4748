"""The root ``Subscription`` type: articles as they become news.

Served over WebSocket at ``/graphql`` (protocol ``graphql-transport-ws``,
``api.http.websocket``); news comes from the worker's one poll of the store
(``api.live.feed``). A subscription's filter is checked, and the subscription
counted against the worker's limit, before it is acknowledged: a mistake is
the operation's ``error``, never a stream that ends at once. It joins the
subscriptions identical to it (``Context.answers``, set by
``api.execution.subscription``), which share each article's answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import strawberry
from strawberry.types import Info

from api.data.filters import article_query
from api.data.matcher import compile_filter
from api.errors import ClientError
from api.live.feed import Events
from api.schema.context import Context
from api.schema.facts import Calls, Kind, answered
from api.schema.filters import ArticleFilter
from api.schema.types import Article


def over_http() -> ClientError:
    return ClientError(
        "subscriptions are served over WebSocket (protocol graphql-transport-ws) or over "
        "Server-Sent Events (graphql-sse: a POST with Accept: text/event-stream) at /graphql"
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        metadata=answered(Kind.EVENT, calls=Calls.SHARED),
        description="Each article that becomes news from now on and matches `filter`: one "
        "that arrives, or is published after being held back. Unpublished articles only "
        "for the admin (who gets an article when it arrives and again when it is "
        "published). Over WebSocket, protocol graphql-transport-ws, at /graphql.",
    )
    async def articlePublished(
        self, info: Info, filter: ArticleFilter | None = None
    ) -> AsyncIterator[Article]:
        ctx: Context = info.context
        if ctx.feed is None or ctx.owner is None:
            raise over_http()
        assert ctx.answers is not None, "subscriptions run by api.execution.subscription"
        matches = compile_filter(article_query(filter, admin=ctx.admin))
        subscriber = ctx.feed.join(matches, ctx.owner, ctx.answers, ctx.identity.key)
        # Its group answers with the first member's: this one's own way of
        # answering (and the document it holds) is not kept while it runs.
        ctx.answers = None
        # Each article's shared answer (api.live.feed.Shared), which
        # api.execution.subscription awaits: not an Article, said once here.
        return cast(AsyncIterator[Article], Events(subscriber))
