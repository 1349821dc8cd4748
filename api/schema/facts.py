"""How each field of the schema is answered, declared on the field itself.

A field without a resolver reads the stored document's key of its own name
(``api.schema.resolvers.read_field``) and needs no declaration. A field whose
resolver does more says what, once, where the field is defined::

    @strawberry.field(metadata=answered(Kind.FACET_COUNT, PROVIDERS_FACET, Calls.BATCHED))

and everything that must know reads it from there: the cost analysis
(``api.operation.cost``: which fields ask the store, and how often; how long
a plain list may be), the planner (``api.execution.plan``: how to find the
field's value without its resolver), the projection (``api.schema.projection``:
which document key a field reads) and HTTP caching (``api.schema.caching``:
how long an answer holding the field may be kept, and by whom). A cache hint
may also be given to a whole object type (:func:`cached`), for every field
that returns it. A field with a resolver and no declaration
is priced as asking nothing and answered by ordinary execution, and a list
with no declared bound refuses every query that selects it, so forgetting one
shows at once (tests/api/test_facts.py).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import GraphQLField

from core.indexes import Facet

T = TypeVar("T")

#: strawberry's key, in a graphql-core field's extensions, for its own field.
STRAWBERRY = "strawberry-definition"
#: This module's key in a strawberry field's ``metadata``.
KEY = "newsgraph"


class Kind(enum.Enum):
    """How a field's value is found. The first group reads what the parent
    object holds; the second asks the store (see :mod:`api.execution.plan.fetch`)."""

    TYPENAME = "__typename"
    #: A key of a stored document, or an attribute of a page object.
    READ = "read"
    #: ``Article.id``: the document's ``_id``.
    ID = "id"
    #: ``Provider.id`` / ``Topic.id``: made from the key (``api.schema.nodes.row_id``).
    FACET_ID = "facet id"
    #: A list the document may lack (``images``, ``related``): empty then.
    LIST = "list"
    #: ``Article.related(first, filter)``: the document's stories, narrowed
    #: by arguments checked once per request (``api.schema.related.narrowing``);
    #: the planner's, for ``related`` declared a ``LIST`` and given arguments.
    RELATED = "related stories, narrowed"
    #: ``Article.topics``: names, served as ``Topic`` objects.
    TOPICS = "topics"
    #: A connection's ``totalCount``, counted with its page.
    TOTAL = "totalCount"
    #: A subscription's root field: the article it is sent (the root value).
    EVENT = "event"

    ARTICLE = "article by id"
    RELATED_ARTICLE = "related article"
    FACET = "provider or topic by key"
    FACET_COUNT = "articleCount"
    ARTICLES = "page of articles"
    FACETS = "page of providers or topics"


@dataclass(frozen=True, order=True)
class Cache:
    """How long an answer holding a field (or an object of a type) may be
    kept by caches, and by whom. An answer takes the shortest hint among the
    fields it selects, and is private if any of them is."""

    #: Seconds; None: no limit of its own (the settings' apply).
    max_age: int | None = None
    #: Only the client's own cache may keep it, never a shared one.
    private: bool = False


#: What changes only when the loader writes it: an article, a provider's or
#: topic's name. The loader's purge hook (``loaders.purge``) tells CDNs when it
#: does; the settings keep browsers, which nothing purges, to less.
LONG = Cache(max_age=86_400)
#: What every new article changes: lists, and counts.
SHORT = Cache(max_age=60)
#: What only the admin may see: never kept by a shared cache.
PRIVATE = Cache(private=True)
#: The attribute :func:`cached` gives a type's class.
TYPE_HINT = "__newsgraph_cache__"


def cached(hint: Cache) -> Callable[[type[T]], type[T]]:
    """A class decorator: ``hint`` holds for every field that returns the type."""

    def give(cls: type[T]) -> type[T]:
        setattr(cls, TYPE_HINT, hint)
        return cls

    return give


class Calls(enum.Enum):
    #: One store call for each parent object (the connections: no batching).
    PER_PARENT = "per parent"
    #: Gathered by a DataLoader: one store call per batch.
    BATCHED = "batched"
    #: An article from the worker's one poll for all subscriptions (api.live):
    #: no store call of its own. A subscription is priced per article it sends.
    SHARED = "shared"


@dataclass(frozen=True)
class Answered:
    """What one field's resolver does."""

    #: How the planner finds its value; None: only its resolver knows.
    kind: Kind | None = None
    #: The provider or topic collection it belongs to.
    facet: Facet | None = None
    #: How it asks the store; None: it does not.
    calls: Calls | None = None
    #: Batches one nesting level may form (``nodes`` loads each type it names
    #: through that type's own loader).
    batches: int = 1
    #: A plain list's most items (what the loader lets into the document).
    max_items: int | None = None
    #: A list as long as this argument's list, at most ``max_items``.
    items_argument: str | None = None
    #: The document key it reads, when not its own name (``id`` reads ``_id``).
    source: str | None = None
    #: How long an answer holding it may be cached; None: as its type says.
    cache: Cache | None = None


def answered(
    kind: Kind | None = None,
    facet: Facet | None = None,
    calls: Calls | None = None,
    **more: Any,
) -> dict[str, Answered]:
    """A field's ``metadata``, saying how it is answered."""
    return {KEY: Answered(kind, facet, calls, **more)}


def answered_by(field: Any) -> Answered | None:
    """What a field declared: given strawberry's field, or graphql-core's
    (which carries strawberry's in its extensions)."""
    if isinstance(field, GraphQLField):
        field = (field.extensions or {}).get(STRAWBERRY)
    metadata = getattr(field, "metadata", None) or {}
    found: Answered | None = metadata.get(KEY)
    return found
