"""Lists and lookups of providers and topics (the loader's count rows) as
store queries, and the object each row is served as.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from api.data.cursors import Ordering, after, decode_cursor, encode_cursor, page_size
from api.data.filters import merge
from api.data.gateway import Gateway
from api.errors import ClientError
from core.config import MAX_FACET_SEARCH
from core.indexes import Facet


@dataclass(frozen=True)
class FacetPage:
    """One page of providers or topics, checked before any store call."""

    facet: Facet
    ordering: Ordering
    #: The whole list, as ``totalCount`` counts it.
    base: dict[str, Any]
    query: dict[str, Any]
    size: int
    #: Whether the client is the admin: which count and name it sees.
    admin: bool


def order_name(facet: Facet, admin: bool) -> str:
    """The name of a provider or topic list's order, as a cursor carries it and
    an error names it to the client (the admin's counts include unpublished
    articles: another order, whose cursors do not fit anyone else's list)."""
    name = f"{facet.collection} by article count"
    return f"{name}, unpublished included" if admin else name


def facet_page(
    facet: Facet, first: int | None, cursor: str | None, search: str | None, *, admin: bool
) -> FacetPage:
    size = page_size(first)
    field = facet.count_field(admin)
    ordering = Ordering(order_name(facet, admin), field, -1, id_direction=1, kind="int")
    base: dict[str, Any] = {field: {"$gt": 0}}
    if search is not None:
        if len(search) > MAX_FACET_SEARCH:
            raise ClientError(f"search may be at most {MAX_FACET_SEARCH} characters long")
        # Escaped: the client's text is matched literally, never as a pattern.
        pattern = {"$regex": re.escape(search.strip()), "$options": "i"}
        searched = facet.searchable(admin)
        base = merge([base, {"$or": [{name: pattern} for name in searched]}])
    query = merge([base, after(ordering, decode_cursor(ordering, cursor))]) if cursor else base
    return FacetPage(facet, ordering, base, query, size, admin)


async def fetch_facet_page(
    gateway: Gateway, page: FacetPage
) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """A page's ``(cursor, node)`` pairs, and whether more follow."""
    sort = page.ordering.sort
    docs = await gateway.find(page.facet.collection, page.query, None, sort, page.size + 1)
    items = [(encode_cursor(page.ordering, d), facet_node(page.facet, d, page.admin)) for d in docs]
    return items[: page.size], len(items) > page.size


def served_facet(facet: Facet, row: dict[str, Any] | None, *, admin: bool) -> dict[str, Any] | None:
    """A provider or topic looked up by key: none unless it has articles the
    request may see."""
    if row is None or not row.get(facet.count_field(admin)):
        return None
    return facet_node(facet, row, admin)


def count_held(facet: Facet, root: dict[str, Any], *, admin: bool) -> int | None:
    """A provider's or topic's article count when ``root`` answers it alone (a
    count row holds it; without a key there is none): ``None`` means its row
    must be looked up by ``root[facet.key]``."""
    field = facet.count_field(admin)
    if field in root:
        count: int = root[field]
        return count
    return None if root.get(facet.key) else 0


def row_count(facet: Facet, row: dict[str, Any] | None, *, admin: bool) -> int:
    found: int = row.get(facet.count_field(admin), 0) if row else 0
    return found


def facet_node(facet: Facet, row: dict[str, Any], admin: bool) -> dict[str, Any]:
    """The object served for a count row: its ``_id`` under the facet's key, and
    the name this client may see under the facet's name (rows written before
    ``nameAll`` existed give the admin the public name)."""
    node = {**row, facet.key: row["_id"]}
    if facet.name:
        shown = facet.name_field(admin)
        node[facet.name] = row.get(shown or facet.name) or row.get(facet.name) or row["_id"]
    return node
