"""@defer and @stream: multipart/mixed to clients that read it, the whole
answer at once to those that do not (api/operation/incremental.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from email.message import Message
from typing import Any

import pytest
from graphql import parse, print_ast
from starlette.testclient import TestClient

from api.app import create_app
from api.execution.incremental import without_incremental
from api.operation.cost import PART_OBJECTS
from bench.hostile import ATTACKS
from tests.api.test_related import MOBILE, with_related

#: The mobile query as an app would send it: the story first, related later.
DEFERRED = MOBILE.replace("    related {", '    ... @defer(label: "related") { related {').replace(
    "related { title } }\n    }", "related { title } }\n    } }"
)
#: What Apollo Client 3 sends for a query with @defer.
APOLLO_ACCEPT = "multipart/mixed;deferSpec=20220824,application/json"


def test_the_deferred_query_defers_the_related_stories_of_the_mobile_query():
    deferred = parse(DEFERRED).to_dict()
    assert print_ast(without_incremental(parse(DEFERRED))).count("...") == 1
    assert "@defer" in print_ast(parse(DEFERRED)) and deferred != parse(MOBILE).to_dict()


def boundary(content_type: str) -> str:
    message = Message()
    message["content-type"] = content_type
    found = message.get_param("boundary")
    assert isinstance(found, str), content_type
    return found


def parts(response: Any) -> list[dict[str, Any]]:
    """The JSON parts of a multipart/mixed body, in order."""
    assert response.headers["content-type"].startswith("multipart/mixed"), response.headers
    delimiter = "--" + boundary(response.headers["content-type"])
    body = response.text
    assert body.startswith(delimiter) and body.rstrip().endswith(delimiter + "--"), body[-40:]
    return json_parts(body, delimiter)


def json_parts(body: str, delimiter: str) -> list[dict[str, Any]]:
    """The JSON payloads of the parts of a multipart body, in order."""
    found = []
    for part in body.split(delimiter)[1:-1]:
        headers, _, payload = part.strip("\r\n").partition("\r\n\r\n")
        assert "application/json" in headers.lower(), headers
        found.append(json.loads(payload))
    return found


def merged(parts_: list[dict[str, Any]]) -> dict[str, Any]:
    """The data the parts add up to, as a 20220824 client (Apollo) merges them."""
    data = parts_[0]["data"]
    for part in parts_[1:]:
        for payload in part.get("incremental", ()):
            target = data
            for key in payload["path"]:
                target = target[key]
            if "items" in payload:
                target.extend(payload["items"])
            else:
                target.update(payload["data"])
    return data


def post(client: TestClient, query: str, variables: dict, accept: str | None = None) -> Any:
    headers = {"accept": accept} if accept else {}
    return client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


def test_deferred_related_stories_come_in_a_later_part(client, loaded):
    story_id = with_related(loaded)["_id"]
    whole = post(client, MOBILE, {"id": story_id}).json()["data"]
    response = post(client, DEFERRED, {"id": story_id}, APOLLO_ACCEPT)
    assert response.status_code == 200
    first, *rest = parts(response)
    assert first["hasNext"] is True
    assert "related" not in first["data"]["article"]
    assert first["data"]["article"]["title"] == whole["article"]["title"]
    assert first["pending"] == [{"id": "0", "path": ["article"], "label": "related"}]
    later = [p for part in rest for p in part.get("incremental", ())]
    assert [p["path"] for p in later] == [["article"]]
    assert later[0]["data"]["related"] == whole["article"]["related"]
    assert rest[-1]["hasNext"] is False
    assert all(part["hasNext"] for part in [first, *rest][:-1])
    assert merged([first, *rest]) == whole
    assert "errors" not in json.dumps([first, *rest])


def test_streamed_related_stories_come_after_the_first(client, loaded):
    story_id = with_related(loaded)["_id"]
    query = (
        "query($id: ID!) { article(id: $id) {"
        " title related @stream(initialCount: 1) { title webUrl } } }"
    )
    whole = post(client, query.replace(" @stream(initialCount: 1)", ""), {"id": story_id}).json()
    all_parts = parts(post(client, query, {"id": story_id}, "multipart/mixed"))
    assert len(all_parts[0]["data"]["article"]["related"]) == 1
    assert len(all_parts) >= 2 and all_parts[-1]["hasNext"] is False
    items = [i for p in all_parts[1:] for inc in p.get("incremental", ()) for i in inc["items"]]
    related = whole["data"]["article"]["related"]
    assert all_parts[0]["data"]["article"]["related"] + items == related


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "application/json",
        "*/*",
        "application/graphql-response+json",
        "multipart/*, application/json",
    ],
)
def test_a_client_without_multipart_gets_the_whole_answer_at_once(client, loaded, accept):
    story_id = with_related(loaded)["_id"]
    whole = post(client, MOBILE, {"id": story_id}, accept)
    deferred = post(client, DEFERRED, {"id": story_id}, accept)
    assert deferred.status_code == whole.status_code == 200
    assert deferred.headers["content-type"] == whole.headers["content-type"]
    assert "json" in deferred.headers["content-type"]
    assert deferred.json()["data"] == whole.json()["data"]
    assert deferred.json()["data"]["article"]["related"]


def test_a_query_without_defer_is_not_multipart_even_if_the_client_reads_it(client, loaded):
    story_id = with_related(loaded)["_id"]
    response = post(client, MOBILE, {"id": story_id}, APOLLO_ACCEPT)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["data"]["article"]["related"]


def test_defer_with_a_persisted_query(client, loaded):
    story_id = with_related(loaded)["_id"]
    digest = hashlib.sha256(DEFERRED.encode()).hexdigest()
    ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    variables = json.dumps({"id": story_id})
    params = {"extensions": json.dumps(ext), "variables": variables}
    unknown = client.get("/graphql", params=params, headers={"accept": APOLLO_ACCEPT})
    assert "PersistedQueryNotFound" in unknown.text
    registered = client.post(
        "/graphql",
        json={"query": DEFERRED, "variables": {"id": story_id}, "extensions": ext},
        headers={"accept": APOLLO_ACCEPT},
    )
    hash_only = client.get("/graphql", params=params, headers={"accept": APOLLO_ACCEPT})
    whole = post(client, MOBILE, {"id": story_id}).json()["data"]
    assert merged(parts(registered)) == merged(parts(hash_only)) == whole
    # The URL answers other clients whole: no shared cache may keep the parts.
    assert hash_only.headers["cache-control"] == "no-store"
    assert "Accept" in hash_only.headers["vary"]


def test_a_deferred_query_costs_what_it_costs_undeferred_and_its_parts(client, loaded):
    story_id = with_related(loaded)["_id"]
    costs = [
        post(client, query, {"id": story_id}).json()["extensions"]["cost"]["requested"]
        for query in (MOBILE, DEFERRED)
    ]
    # One deferred fragment on one article: its pending, incremental, data
    # and completed objects.
    assert costs[1] == {**costs[0], "objects": costs[0]["objects"] + PART_OBJECTS}
    assert costs[0]["storeCalls"] > 0


def test_deferred_parts_share_store_round_trips(client, loaded, round_trips):
    story_id = with_related(loaded)["_id"]
    post(client, MOBILE, {"id": story_id})
    whole = len(round_trips)
    round_trips.clear()
    parts(post(client, DEFERRED, {"id": story_id}, APOLLO_ACCEPT))
    # The deferred fragment's fields batch among themselves as they did with the
    # rest; the story itself was already fetched, so nothing is fetched twice.
    assert len(round_trips) == whole, round_trips


def test_a_deferred_fragment_under_fields_already_sent_merges_at_its_own_path(client, loaded):
    # The current draft sends only the new fields, under the list already
    # sent (`subPath`); Apollo's 20220824 format needs that in `path` itself.
    story_id = with_related(loaded)["_id"]
    query = (
        "query($id: ID!) { article(id: $id) {"
        " title related { title } ... @defer { related { title webUrl } } } }"
    )
    undeferred = query.replace("... @defer", "...")
    whole = post(client, undeferred, {"id": story_id}).json()["data"]
    all_parts = parts(post(client, query, {"id": story_id}, APOLLO_ACCEPT))
    paths = [p["path"] for part in all_parts[1:] for p in part.get("incremental", ())]
    assert paths and all(path[:2] == ["article", "related"] for path in paths), paths
    assert merged(all_parts) == whole


def test_a_deferred_query_is_still_incremental_with_compiled_execution(loaded, api_settings):
    # Compiled execution (NEWSGRAPH_COMPILED) supplies whole results: its
    # planner must leave @defer/@stream to ordinary execution, and compile the
    # stripped document a client without multipart gets.
    if "compiled" not in {f.name for f in dataclasses.fields(api_settings)}:
        pytest.skip("compiled execution is not merged on this branch yet")
    settings = dataclasses.replace(api_settings, compiled=True)
    story_id = with_related(loaded)["_id"]
    with TestClient(create_app(settings, loaded)) as client:
        whole = post(client, MOBILE, {"id": story_id}).json()["data"]
        first, *rest = parts(post(client, DEFERRED, {"id": story_id}, APOLLO_ACCEPT))
        assert "related" not in first["data"]["article"] and rest[-1]["hasNext"] is False
        assert merged([first, *rest]) == whole
        assert post(client, DEFERRED, {"id": story_id}).json()["data"] == whole


def test_a_flood_of_deferred_fragments_is_refused_before_it_runs(client, round_trips):
    # 238 one-field fragments on 100 articles: 101 objects undeferred, but
    # 23,800 parts (1.5 MB and 0.75 s of CPU) when delivered in parts.
    query = ATTACKS["defer_flood"](random.Random(1))["query"]
    for accept in (APOLLO_ACCEPT, "application/json"):
        round_trips.clear()
        response = post(client, query, {}, accept)
        assert response.headers["content-type"].startswith("application/json")
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
        assert "most come from `articles.nodes.@defer` (95,200)" in error["message"]
        assert round_trips == []
    fewer = query.replace("first: 100", "first: 10")
    assert "errors" not in parts(post(client, fewer, {}, APOLLO_ACCEPT))[0]
