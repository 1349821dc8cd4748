"""Private document fields (``core.document.PRIVATE_FIELDS``) reach no client:
no type of the schema names one, and no answer carries a private value, whoever
asks and whatever they select."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.schema.nodes import facet_id
from core.config import Settings
from core.document import PRIVATE_FIELDS
from core.store import Store
from loaders import load_paths
from tests.api.fixtures import ADMIN_TOKEN, without_cost_limits
from tests.api.selections import every_field, schema
from tests.articles import EXAMPLES, write_article


def test_no_type_names_a_private_field() -> None:
    # The type map holds every type at any nesting: objects, inputs, interfaces.
    for type_ in schema().type_map.values():
        exposed = set(getattr(type_, "fields", None) or ())
        assert not exposed & PRIVATE_FIELDS, f"{type_} exposes {exposed & PRIVATE_FIELDS}"


@pytest.fixture
def corpus(store: Store, settings: Settings, tmp_path: Path) -> Store:
    """The sample articles plus the tests' own, each with a private value."""
    root = tmp_path / "articles"
    shutil.copytree(EXAMPLES, root)
    write_article(root, "tram.md", body="The extension opened a week early.")
    report = load_paths(store, [root], settings)
    assert report.ok, report.failures
    return store


@pytest.fixture
def client(corpus: Store, api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(without_cost_limits(api_settings), corpus)) as c:
        yield c


def every_query(store: Store) -> list[str]:
    """Each root field, asked for every field below it: lists at their longest,
    lookups of every article and of the hidden draft's provider and topic."""
    draft = store.articles.find_one({"published": False})
    all_ids = [doc["_id"] for doc in store.articles.find({}, {"_id": 1})][:100]
    arguments = {
        "article": [f'id: "{doc["_id"]}"' for doc in store.articles.find({}, {"_id": 1})],
        "articles": ["first: 100"],
        "providers": ["first: 100"],
        "provider": [f'domain: "{draft["provider"]["domain"]}"'],
        "topics": ["first: 100"],
        "topic": [f'name: "{draft["topics"][0]}"'],
        "node": [f'id: "{draft["_id"]}"', f'id: "{facet_id("Topic", draft["topics"][0])}"'],
        "nodes": [f"ids: {json.dumps(all_ids)}"],
    }
    roots = schema().query_type.fields
    assert set(arguments) == set(roots), "a root field was added: say here what to ask it"
    return [
        f"{{ {name}({args}) {every_field(field.type, ('Query',))} }}"
        for name, field in roots.items()
        for args in arguments[name]
    ]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("token", [None, ADMIN_TOKEN], ids=["anyone", "admin"])
def test_no_answer_carries_a_private_value(
    client: TestClient, corpus: Store, token: str | None
) -> None:
    docs = list(corpus.articles.find())
    private = {str(doc[key]) for doc in docs for key in PRIVATE_FIELDS if doc.get(key)}
    assert len(private) == len(docs), "every article in the corpus has a private value"
    # A whole value, or a part of one (its halves either side of ";").
    needles = private | {part for value in private for part in value.split(";") if len(part) > 8}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    served: set[str] = set()
    for query in every_query(corpus):
        response = client.post("/graphql", json={"query": query}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, (query, body["errors"])
        served |= set(strings(body["data"]))
        for needle in needles:
            assert needle.encode() not in response.content, query
            assert json.dumps(needle)[1:-1].encode() not in response.content, query
    assert not needles & served
    # The answers did serve the articles: each one the asker may see, whole.
    visible = [doc for doc in docs if token or doc["published"]]
    for doc in visible:
        assert {doc[key] for key in ("webUrl", "title", "body") if key in doc} <= served
