"""The projection fetches every stored field a query selects: select every field
of ``Article`` by each way an article is reached, and each value the stored
document holds comes back (a field the projection missed would be null)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest

from api.schema.scalars import serialize
from core.config import Settings
from core.store import Store
from tests.api.fixtures import ADMIN_TOKEN, GQL, without_cost_limits
from tests.api.selections import every_field, object_type

#: Article fields served from a document key of another name.
KEYS = {"id": "_id"}


def agrees(stored: Any, served: Any) -> bool:
    """Whether ``served`` is the stored value, as far as it was selected."""
    if isinstance(stored, datetime):
        return served == serialize(stored)
    if isinstance(stored, list):
        return (
            isinstance(served, list)
            and len(served) == len(stored)
            and all(map(agrees, stored, served))
        )
    if isinstance(stored, dict):
        return isinstance(served, dict) and all(
            value is None or agrees(value, served[key])
            for key, value in stored.items()
            if key in served
        )
    return served == stored


def check(node: dict[str, Any], docs: dict[str, dict[str, Any]], seen: set[str]) -> None:
    doc = docs[node["id"]]
    for name in object_type("Article").fields:
        stored = doc.get(KEYS.get(name, name))
        if stored is None:
            continue
        seen.add(name)
        served = node[name]
        if name == "topics":  # stored as names, served as Topic objects
            served = [topic["name"] for topic in served]
        assert agrees(stored, served), f"{doc['_id']}.{name}: stored {stored!r}, served {served!r}"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return without_cost_limits(dataclasses.replace(settings, admin_token=ADMIN_TOKEN))


def test_every_selected_article_field_comes_back(gql: GQL, loaded: Store) -> None:
    docs = {doc["_id"]: doc for doc in loaded.articles.find()}
    article = every_field(object_type("Article"))
    seen: set[str] = set()

    def ask(query: str, **variables: Any) -> dict[str, Any]:
        return gql(query, variables, token=ADMIN_TOKEN)

    listed = ask(f"{{ articles(first: 100) {{ nodes {article} edges {{ node {article} }} }} }}")
    nodes = listed["articles"]["nodes"]
    assert {node["id"] for node in nodes} == set(docs)
    for node in nodes + [edge["node"] for edge in listed["articles"]["edges"]]:
        check(node, docs, seen)
    for key in docs:
        check(
            ask(f"query($id: ID) {{ article(id: $id) {article} }}", id=key)["article"], docs, seen
        )
    related = ask(f"{{ articles(first: 100) {{ nodes {{ related {{ article {article} }} }} }} }}")
    linked = [
        story["article"]
        for node in related["articles"]["nodes"]
        for story in node["related"]
        if story["article"]
    ]
    assert linked, "the sample articles link to each other"
    for node in linked:
        check(node, docs, seen)
    # Not vacuous: every field was stored by some sample article, and compared.
    assert seen == set(object_type("Article").fields), "give an example article each field"
