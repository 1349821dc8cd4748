"""The root ``Query`` type."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.schema import resolvers
from api.schema.facts import SHORT, Calls, Kind, answered
from api.schema.nodes import find_nodes
from api.schema.pagination import Connection
from api.schema.types import Article, Node, Provider, Topic, articles_field, served
from core.config import DEFAULT_PAGE, MAX_NODE_IDS
from core.indexes import FACETS, PROVIDERS_FACET, TOPICS_FACET

#: Batches ``node``/``nodes`` may form at once: articles', and each facet's.
NODE_BATCHES = 1 + len(FACETS)


@strawberry.type
class Query:
    @strawberry.field(
        description="One article, by `id` or by `webUrl`.",
        metadata=answered(Kind.ARTICLE, calls=Calls.BATCHED),
    )
    async def article(
        self, info: Info, id: strawberry.ID | None = None, webUrl: str | None = None
    ) -> Article | None:
        return served(await resolvers.find_article(info, id, webUrl), Article)

    articles = articles_field(None, "Articles, filtered and ordered; `first` is at most 100.")

    @strawberry.field(
        description="The article, provider or topic with this `id`; null if none.",
        # Each type it may name is looked up by that type's own loader.
        metadata=answered(calls=Calls.BATCHED, batches=NODE_BATCHES),
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        (found,) = await find_nodes(info, [id])
        return served(found, Node)

    @strawberry.field(
        description="The objects with these ids (at most 100), in order; null where none.",
        metadata=answered(
            calls=Calls.BATCHED, batches=NODE_BATCHES, items_argument="ids", max_items=MAX_NODE_IDS
        ),
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        return [served(found, Node) for found in await find_nodes(info, ids)]

    @strawberry.field(
        description="Providers, most articles first.",
        metadata=answered(Kind.FACETS, PROVIDERS_FACET, Calls.PER_PARENT, cache=SHORT),
    )
    async def providers(
        self,
        info: Info,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
        search: str | None = None,
    ) -> Connection[Provider]:
        return await resolvers.list_facets(info, PROVIDERS_FACET, first, after, search)

    @strawberry.field(metadata=answered(Kind.FACET, PROVIDERS_FACET, Calls.BATCHED))
    async def provider(self, info: Info, domain: str) -> Provider | None:
        facet = await resolvers.find_facet(info, PROVIDERS_FACET, PROVIDERS_FACET.key_of(domain))
        return served(facet, Provider)

    @strawberry.field(
        description="Topics, most articles first.",
        metadata=answered(Kind.FACETS, TOPICS_FACET, Calls.PER_PARENT, cache=SHORT),
    )
    async def topics(
        self,
        info: Info,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
        search: str | None = None,
    ) -> Connection[Topic]:
        return await resolvers.list_facets(info, TOPICS_FACET, first, after, search)

    @strawberry.field(metadata=answered(Kind.FACET, TOPICS_FACET, Calls.BATCHED))
    async def topic(self, info: Info, name: str) -> Topic | None:
        return served(await resolvers.find_facet(info, TOPICS_FACET, name), Topic)
