"""Relay's node lookup: every object fetched again by its id is what the list
gave; unknown, malformed and hidden ids are null; one store call per type."""

from __future__ import annotations

import pytest

from api.schema.nodes import facet_id, parse_id
from tests.api.fixtures import ADMIN_TOKEN

ARTICLE = "id title webUrl publishedDateTime provider { id name domain } topics { id name }"
PROVIDER = "id name domain articleCount"
TOPIC = "id topicName: name articleCount"
NODE = f"__typename ... on Article {{ {ARTICLE} }} ... on Provider {{ {PROVIDER} }} ... on Topic {{ {TOPIC} }}"  # noqa: E501


KINDS = (("articles", "Article"), ("providers", "Provider"), ("topics", "Topic"))


def listed(gql, token=None):
    """Every article, provider and topic as the lists give them, by id."""
    data = gql(
        f"{{ articles(first: 100) {{ nodes {{ {ARTICLE} }} }}"
        f" providers(first: 100) {{ nodes {{ {PROVIDER} }} }}"
        f" topics(first: 100) {{ nodes {{ {TOPIC} }} }} }}",
        token=token,
    )
    return {
        node["id"]: {**node, "__typename": typename}
        for key, typename in (
            ("articles", "Article"),
            ("providers", "Provider"),
            ("topics", "Topic"),
        )
        for node in data[key]["nodes"]
    }


@pytest.mark.parametrize("token", [None, ADMIN_TOKEN], ids=["anyone", "admin"])
def test_a_refetch_by_node_returns_exactly_what_the_list_gave(gql, token):
    objects = listed(gql, token)
    assert {o["__typename"] for o in objects.values()} == {"Article", "Provider", "Topic"}
    for node_id, expected in objects.items():
        got = gql(f"query($id: ID!) {{ node(id: $id) {{ {NODE} }} }}", {"id": node_id}, token=token)
        assert got["node"] == expected


def test_nodes_answers_in_order_with_one_store_call_per_type(gql, round_trips):
    objects = listed(gql)
    ids = list(objects)[:5] + [
        next(i for i, o in objects.items() if o["__typename"] == t) for t in ("Provider", "Topic")
    ]
    ids = [*ids, "not-an-id", "0" * 24, facet_id("Provider", "nowhere.example")]
    round_trips.clear()
    got = gql(f"query($ids: [ID!]!) {{ nodes(ids: $ids) {{ {NODE} }} }}", {"ids": ids})["nodes"]
    assert got == [objects.get(i) for i in ids]
    assert got[-3:] == [None, None, None]
    assert len(round_trips) == 3  # articles, providers, topics: one batch each


def test_hidden_objects_are_null_without_the_token(gql, loaded):
    draft = loaded.articles.find_one({"published": False})
    # A topic only drafts carry, as the loader counts one (the samples have none).
    loaded.db.topics.insert_one({"_id": "Embargoed", "count": 0, "countAll": 1})
    for node_id in (draft["_id"], facet_id("Topic", "Embargoed")):
        query = "query($id: ID!) { node(id: $id) { id } }"
        assert gql(query, {"id": node_id}) == {"node": None}
        assert gql(query, {"id": node_id}, token=ADMIN_TOKEN) == {"node": {"id": node_id}}


def test_article_ids_keep_their_values_and_no_id_is_mistaken_for_another_kind():
    assert parse_id("0123456789abcdef01234567") == ("Article", "0123456789abcdef01234567")
    for type_name, key in (("Provider", "a.example"), ("Topic", "Space"), ("Topic", "é:x")):
        node_id = facet_id(type_name, key)
        assert parse_id(node_id) == (type_name, key)
        assert not set(node_id) <= set("0123456789abcdef")
    padded = facet_id("Provider", "a") + "="
    for bad in ("", "x" * 2000, "0" * 23, "0123456789ABCDEF01234567", "QXJ0aWNsZTp4", padded):
        assert parse_id(bad) is None, bad
    assert parse_id("UHJvdmlkZXI6") is None and parse_id("!!!") is None


def test_too_many_ids_are_refused_and_cost_counts_them(gql):
    message = gql.error("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["x"] * 101})
    assert "at most 100 ids" in message
    body = gql.raw("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["x"] * 7})
    assert body["extensions"]["cost"]["requested"]["objects"] == 7
