"""The HTTP view's quick lane (api/http/view.py ``GraphQLApp.quick_lane``):
well-formed GraphQL requests over JSON are answered without strawberry's HTTP
view, and exactly as strawberry's view answers them. Two apps on one store get
the same requests, one with the quick lane switched off: every response
(status, headers that matter, bytes), the access log and /metrics must match."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HTTPRequest
from starlette.testclient import TestClient
from starlette.types import Message

from api.app import create_app
from api.http.view import read_body
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


BODIES: list[list[Message]] = [
    [{"type": "http.request", "body": b'{"query": "{ x }"}'}],
    [{"type": "http.request"}],  # no body at all
    [  # in parts, an empty one among them, the last one empty
        {"type": "http.request", "body": b'{"query"', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b': "{ x }"}', "more_body": True},
        {"type": "http.request", "body": b""},
    ],
    [  # the client leaves halfway
        {"type": "http.request", "body": b'{"query"', "more_body": True},
        {"type": "http.disconnect"},
    ],
]


def _read(read: Callable[[HTTPRequest], Any], messages: list[Message]) -> tuple[Any, ...]:
    """What reading a request's body with ``read`` gives (the bytes, or the
    exception), what a second ``Request.body()`` then gives, the messages
    left unread and the request's own flags."""
    left = list(messages)

    async def receive() -> Message:
        return left.pop(0)

    request = HTTPRequest({"type": "http", "method": "POST", "headers": []}, receive)

    async def go() -> tuple[Any, ...]:
        try:
            first: Any = await read(request)
        except ClientDisconnect:
            first = "ClientDisconnect"
        try:
            again: Any = await request.body()
        except (ClientDisconnect, RuntimeError, IndexError) as error:
            again = type(error).__name__
        return first, again, len(left), request._stream_consumed, request._is_disconnected

    return asyncio.run(go())


@pytest.mark.parametrize("messages", BODIES)
def test_the_quick_lane_reads_a_body_as_starlette_does(messages: list[Message]) -> None:
    # api/http/view.py read_body: Request.body() without its async generator,
    # the body kept where strawberry's way reads it again.
    assert _read(read_body, messages) == _read(HTTPRequest.body, messages)
