"""Relay-style connections: a page of a list, its edges and where it ends.

The cursors themselves, and the store queries they turn into, are
``api.data.cursors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLObjectType

from api.schema.facts import SHORT, Calls, Kind, answered

T = TypeVar("T")


# -- connection types ----------------------------------------------------------


@strawberry.type(description="Where a page ends, and whether more follow.")
class PageInfo:
    hasNextPage: bool
    endCursor: str | None
    hasPreviousPage: bool = strawberry.field(
        default=False, description="Always false: pages are walked forwards with `after`."
    )
    startCursor: str | None = None


@strawberry.type(description="An item of a list, with the cursor that points at it.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list, Relay-style.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    pageInfo: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="How many items the whole list has, across all pages.",
        # A count query for each page, counted with it.
        metadata=answered(Kind.TOTAL, calls=Calls.PER_PARENT, cache=SHORT),
    )
    async def totalCount(self) -> int:
        return await self.count()


def connection(
    items: list[tuple[str, Any]],
    has_next: bool,
    count: Callable[[], Awaitable[int]],
    with_edges: bool = True,
) -> Connection[Any]:
    """A page from ``(cursor, node)`` pairs. Without ``with_edges`` its
    ``edges`` are left empty, for a reader that never reads them (a plan
    whose selection has none: an edge is an object per item)."""
    edges = [Edge(cursor=c, node=n) for c, n in items] if with_edges else []
    return Connection(
        edges=edges,
        nodes=[n for _, n in items],
        pageInfo=PageInfo(
            hasNextPage=has_next,
            endCursor=items[-1][0] if items else None,
            startCursor=items[0][0] if items else None,
        ),
        count=count,
    )


def is_connection(type_: GraphQLObjectType) -> bool:
    """Whether a schema type is a page of a list (it has a ``pageInfo``)."""
    return "pageInfo" in type_.fields
