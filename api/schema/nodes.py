"""Relay's Global Object Identification: every object with an ``id`` can be
fetched again by it, with ``node(id:)`` and ``nodes(ids:)``.

An article's id stays its ``_id`` (24 hex digits), so the links and client caches
made before this existed keep working. A provider's or topic's id is opaque:
the URL-safe base64 of ``Provider:<domain>`` or ``Topic:<name>``, which can
never be 24 hex digits (its first characters are not hex), so the two kinds of
id cannot be mistaken for each other. An id that is malformed, unknown or not
visible to the request is answered ``null``, never an error: a client asking
for an id it kept from a while ago learns the object is gone.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Sequence
from typing import Any

from strawberry.types import Info

from api.data.facets import facet_node
from api.errors import ClientError
from api.schema.context import Context
from api.schema.resolvers import article_projection
from core.config import MAX_NODE_ID, MAX_NODE_IDS
from core.indexes import PROVIDERS_FACET, TOPICS_FACET, Facet

#: The key a node's dict carries its GraphQL type under (see ``types.Node``).
TYPE_KEY = "_node"

_ARTICLE_ID = re.compile(r"[0-9a-f]{24}")
FACETS_BY_TYPE: dict[str, Facet] = {"Provider": PROVIDERS_FACET, "Topic": TOPICS_FACET}


def facet_id(type_name: str, key: str) -> str:
    """The id of a provider (by domain) or topic (by name)."""
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def row_id(type_name: str, row: dict[str, Any]) -> str:
    """``Provider.id`` / ``Topic.id``: the id of a served provider or topic."""
    return facet_id(type_name, row.get(FACETS_BY_TYPE[type_name].key) or "")


def parse_id(node_id: str) -> tuple[str, str] | None:
    """``(type name, key)`` that an id names, or ``None`` for no id of ours."""
    if len(node_id) > MAX_NODE_ID:
        return None
    if _ARTICLE_ID.fullmatch(node_id):
        return "Article", node_id
    try:
        raw = base64.urlsafe_b64decode(node_id + "=" * (-len(node_id) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    type_name, sep, key = raw.partition(":")
    if not sep or not key or type_name not in FACETS_BY_TYPE or facet_id(type_name, key) != node_id:
        return None  # the last check refuses other spellings of the same bytes
    return type_name, key


async def find_nodes(info: Info, ids: Sequence[str]) -> list[dict[str, Any] | None]:
    """The objects ``ids`` name, in order, ``None`` where there is none to see.

    All of one type are gathered into one store call by the request's batch
    loaders (the same ones ``article`` and ``provider`` use)."""
    if len(ids) > MAX_NODE_IDS:
        raise ClientError(f"nodes takes at most {MAX_NODE_IDS} ids, got {len(ids)}")
    ctx: Context = info.context
    parsed = [parse_id(i) for i in ids]
    articles = ctx.articles_by_id(article_projection(info))
    pending: list[Awaitable[dict[str, Any] | None] | None] = []
    for found in parsed:
        if found is None:
            pending.append(None)
        elif found[0] == "Article":
            pending.append(articles.load(found[1]))
        else:
            pending.append(ctx.facet_by_id(FACETS_BY_TYPE[found[0]]).load(found[1]))
    nodes: list[dict[str, Any] | None] = []
    for found, future in zip(parsed, pending, strict=True):
        row = await future if future is not None else None
        nodes.append(None if found is None or row is None else _node(ctx, found[0], row))
    return nodes


def _node(ctx: Context, type_name: str, row: dict[str, Any]) -> dict[str, Any] | None:
    if type_name == "Article":  # visibility was checked by the loader
        return {**row, TYPE_KEY: type_name}
    facet = FACETS_BY_TYPE[type_name]
    if not row.get(facet.count_field(ctx.admin)):
        return None  # a provider or topic whose articles this request may not see
    return {**facet_node(facet, row, ctx.admin), TYPE_KEY: type_name}
