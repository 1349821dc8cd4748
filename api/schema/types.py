"""The public schema's object types. Their names and fields are a contract with
clients: add to them, never rename.

Each object is served straight from the stored document (a dict): field names
are the document's, read by the schema's default resolver (see ``api.operation.schema``),
so plain fields cost no code. Methods below are the fields that need work; in
them ``self`` is that dict.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, cast, overload

import strawberry
from strawberry.types import Info

from api.schema import nodes, resolvers
from api.schema.facts import LONG, SHORT, Calls, Kind, answered, cached
from api.schema.filters import ArticleFilter, ArticleOrder
from api.schema.pagination import Connection
from api.schema.related import RelatedFilter, related_stories
from core.config import DEFAULT_PAGE
from core.document import ARTICLE, RELATED, Doc, max_items
from core.indexes import PROVIDERS_FACET, TOPICS_FACET, Facet

T = TypeVar("T")


@overload
def served(doc: Doc, as_type: type[T]) -> T: ...
@overload
def served(doc: Doc | None, as_type: type[T]) -> T | None: ...
def served(doc: Doc | None, as_type: type[T]) -> T | None:
    """A stored document (or ``None``), served as the object type its field
    declares: the schema's default resolver (``api.schema.resolvers.read_field``) reads
    that type's fields from the dict's keys, so no object is built. The one
    place the dict stands in for the class, said once, for the type checker."""
    return cast(T | None, doc)


@strawberry.interface(
    description="An object with a stable, opaque id: fetch it again with `node(id:)`."
)
class Node:
    @strawberry.field(description="Opaque and stable: fetch the object again with `node(id:)`.")
    def id(self: Doc) -> strawberry.ID:
        raise NotImplementedError  # each type implementing Node says where its id comes from

    @classmethod
    def resolve_type(cls, obj: Doc, info: Any, abstract_type: Any) -> str:
        # Lookups by id mark each dict with its type (api.schema.nodes): a dict
        # cannot say which class it stands in for.
        type_name: str = obj[nodes.TYPE_KEY]
        return type_name


class Served:
    """Mixed into each type implementing :class:`Node`: what reaches its fields
    is the stored dict that stands in for it (see :func:`served`), never an
    instance, so strawberry's isinstance check must not refuse it. Each such
    type has cache keys (``core.cachekeys``), named by its class name."""

    @classmethod
    def is_type_of(cls, obj: Any, info: Any) -> bool:
        # Ordinary execution asks this of every object of the type it
        # completes: the one place it meets them all, so the answer's cache
        # keys are gathered here (``api.schema.caching``).
        keys = getattr(info.context, "keys", None)
        if keys is not None:
            keys.add_served(cls.__name__, obj)
        return True


@strawberry.type(description="A picture of a story.")
class Image:
    url: str
    width: int | None
    height: int | None
    title: str | None
    isCached: bool | None


def articles_field(facet: Facet | None, description: str) -> Any:
    """An ``articles(filter, orderBy, first, after)`` list; on a ``facet``'s
    object (a provider, a topic), narrowed to the articles that carry it."""

    async def resolve(
        self: Doc,
        info: Info,
        filter: ArticleFilter | None = None,
        orderBy: ArticleOrder = ArticleOrder.PUBLISHED_DESC,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
    ) -> Connection[Article]:
        narrowed = {facet.article_field: self.get(facet.key)} if facet else None
        return await resolvers.list_articles(info, filter, orderBy, first, after, narrowed)

    return strawberry.field(
        resolver=resolve,
        description=description,
        metadata=answered(Kind.ARTICLES, facet, Calls.PER_PARENT, cache=SHORT),
    )


@cached(LONG)
@strawberry.type(description="A publisher: the site articles come from.")
class Provider(Node, Served):
    name: str | None
    domain: str | None

    @strawberry.field(
        description="Opaque and stable: fetch the object again with `node(id:)`.",
        metadata=answered(Kind.FACET_ID, PROVIDERS_FACET),
    )
    def id(self: Doc) -> strawberry.ID:
        return strawberry.ID(nodes.row_id("Provider", self))

    @strawberry.field(
        description="Articles from this provider that the request may see.",
        metadata=answered(Kind.FACET_COUNT, PROVIDERS_FACET, Calls.BATCHED, cache=SHORT),
    )
    async def articleCount(self: Doc, info: Info) -> int:
        return await resolvers.facet_count(info, PROVIDERS_FACET, self)

    articles = articles_field(PROVIDERS_FACET, "This provider's articles.")


@cached(LONG)
@strawberry.type(description="A subject articles are tagged with.")
class Topic(Node, Served):
    name: str

    @strawberry.field(
        description="Opaque and stable: fetch the object again with `node(id:)`.",
        metadata=answered(Kind.FACET_ID, TOPICS_FACET),
    )
    def id(self: Doc) -> strawberry.ID:
        return strawberry.ID(nodes.row_id("Topic", self))

    @strawberry.field(
        description="Articles with this topic that the request may see.",
        metadata=answered(Kind.FACET_COUNT, TOPICS_FACET, Calls.BATCHED, cache=SHORT),
    )
    async def articleCount(self: Doc, info: Info) -> int:
        return await resolvers.facet_count(info, TOPICS_FACET, self)

    articles = articles_field(TOPICS_FACET, "Articles with this topic.")


@strawberry.type(description="A story elsewhere that an article links to, as the article lists it.")
class RelatedStory:
    title: str
    excerpt: str | None
    publishedDateTime: datetime | None
    webUrl: str
    ampWebUrl: str | None
    cdnAmpWebUrl: str | None
    type: str | None
    quality: int | None
    provider: Provider | None

    @strawberry.field(metadata=answered(Kind.LIST, max_items=max_items(RELATED, "images")))
    def images(self: Doc) -> list[Image]:
        return self.get("images") or []

    @strawberry.field(
        description="The stored article with this story's webUrl, if there is one.",
        metadata=answered(Kind.RELATED_ARTICLE, calls=Calls.BATCHED),
    )
    async def article(self: Doc, info: Info) -> Article | None:
        return served(await resolvers.related_article(info, self.get("webUrl")), Article)


@cached(LONG)
@strawberry.type(description="A news article.")
class Article(Node, Served):
    title: str
    excerpt: str | None
    body: str | None = strawberry.field(description="The Markdown after the front matter.")
    category: str | None
    type: str | None
    webUrl: str
    originalUrl: str | None
    ampWebUrl: str | None
    cdnAmpWebUrl: str | None
    publishedDateTime: datetime | None
    quality: int | None
    heat: int | None = strawberry.field(description="Popularity score; -1 means none.")
    published: bool
    provider: Provider | None

    @strawberry.field(metadata=answered(Kind.ID, source="_id"))
    def id(self: Doc) -> strawberry.ID:
        return strawberry.ID(self["_id"])

    @strawberry.field(metadata=answered(Kind.TOPICS, max_items=max_items(ARTICLE, "topics")))
    def topics(self: Doc) -> list[Topic]:
        return [served({"name": name}, Topic) for name in self.get("topics") or ()]

    @strawberry.field(metadata=answered(Kind.LIST, max_items=max_items(ARTICLE, "images")))
    def images(self: Doc) -> list[Image]:
        return self.get("images") or []

    @strawberry.field(
        description="Stories this article links to, in its order; `first` (at most 100) "
        "and `filter` narrow them.",
        # Filtered by `stored`, it asks the batched article lookup: see api.operation.cost.
        metadata=answered(Kind.LIST, max_items=max_items(ARTICLE, "related")),
    )
    def related(
        self: Doc, info: Info, first: int | None = None, filter: RelatedFilter | None = None
    ) -> list[RelatedStory]:
        stories = related_stories(info, self.get("related") or [], first, filter)
        return cast(list[RelatedStory], stories)  # dicts, or an awaitable of them
