"""The HTTP view's quick lane (api/http/view.py ``GraphQLApp.quick_lane``):
well-formed GraphQL requests over JSON are answered without strawberry's HTTP
view, and exactly as strawberry's view answers them. Two apps on one store get
the same requests, one with the quick lane switched off: every response
(status, headers that matter, bytes), the access log and /metrics must match."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.store import Store
from tests.api.test_pipeline import FRONT, MOBILE, story_id
from tests.api.test_pipeline_caches import (
    Request,
    assert_alike,
    both_ways,
    by_hash,
    mixed_requests,
    q,
    view,
    with_hash,
)


def strawberrys_way(app: Starlette) -> None:
    view(app).quick = False


GET_SHAPES = [
    # Parameters as clients and proxies send them, and as they should not.
    {"method": "GET", "body": {"query": FRONT, "variables": "null"}},
    {"method": "GET", "body": {"query": FRONT, "variables": ""}},
    {"method": "GET", "body": {"query": FRONT, "variables": "{not json"}},
    {"method": "GET", "body": {"query": FRONT, "extensions": "null"}},
    {"method": "GET", "body": {"query": FRONT, "operationName": ""}},
    {"method": "GET", "body": {}},
    {"method": "GET", "body": {"query": ""}},
    {"method": "GET", "body": {"query": "mutation { x }"}},
    {"method": "GET", "body": {"query": FRONT}, "headers": {"accept": "text/html"}},
    {"method": "GET", "body": {"query": FRONT}, "headers": {"accept": "image/png"}},
    {"method": "GET", "body": {"query": FRONT}, "headers": {"accept": "*/*"}},
]

POST_SHAPES = [
    {"raw": "null"},
    {"raw": '"a string"'},
    {"raw": "{not json"},
    {"raw": b"\xff\xfe".decode("latin-1")},
    {"raw": json.dumps({"query": FRONT}), "headers": {"content-type": "text/plain"}},
    {
        "raw": json.dumps({"query": FRONT}),
        "headers": {"content-type": "application/json; charset=utf-8"},
    },
    {"raw": json.dumps({"query": FRONT}), "headers": {"content-type": "APPLICATION/JSON"}},
    q(FRONT, headers={"accept": "multipart/mixed"}),
    q(FRONT, headers={"accept": "application/graphql-response+json, application/json;q=0.5"}),
    q(FRONT, headers={"accept": "text/event-stream"}),
    q(
        "{ articles(first: 101) { totalCount } }",
        headers={"accept": "application/graphql-response+json"},
    ),
    q(
        "subscription { articlePublished { id } }",
        headers={"accept": "application/graphql-response+json"},
    ),
    q("{ nope }", headers={"accept": "application/graphql-response+json"}),
]


def test_over_http_the_quick_lane_answers_as_strawberrys_view(
    loaded: Store, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    sid = story_id(loaded)
    requests: list[Request] = [
        *mixed_requests(sid),
        *GET_SHAPES,
        *POST_SHAPES,
        with_hash(MOBILE, variables={"id": sid}),
        by_hash(MOBILE, variables={"id": sid}, method="GET"),
        by_hash(MOBILE, variables={"id": sid}, method="GET", admin=True),
    ]
    quick, strawberry = both_ways(
        api_settings, loaded, requests, caplog, repeat=2, other=strawberrys_way
    )
    assert_alike(quick, strawberry)


def test_a_well_formed_request_takes_the_quick_lane_and_others_strawberrys(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.http.view import GraphQLApp

    runs: list[str] = []
    original = GraphQLApp.run

    async def counted(self: GraphQLApp, request: Any, *args: Any, **kwargs: Any) -> Any:
        runs.append(request.method)
        return await original(self, request, *args, **kwargs)

    monkeypatch.setattr(GraphQLApp, "run", counted)
    with TestClient(create_app(api_settings, loaded)) as client:
        assert client.post("/graphql", json={"query": FRONT}).status_code == 200
        assert client.get("/graphql", params={"query": FRONT}).status_code == 200
        assert runs == []
        client.get("/graphql", headers={"accept": "text/html"})  # the explorer
        client.post("/graphql", content="{not json", headers={"content-type": "application/json"})
        assert runs == ["GET", "POST"]
