"""Requests made regular (api/http/requests.py) and the request-level limits around
the GraphQL view: invented methods, HEAD, media types in capitals, GET's
`variables=null`, and operation names too long to echo or log."""

from __future__ import annotations

import logging

import orjson

from tests.api.test_observe import requests, samples

QUERY = "{ topics(first: 2) { totalCount } }"


def test_invented_methods_are_refused_and_counted_under_one_label(client):
    before = samples(client)
    for method in ("FOO", "BREW", "X" * 300):
        response = client.request(method, "/graphql")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    after = samples(client)
    assert (
        requests(after, "/graphql", "other", "405") - requests(before, "/graphql", "other", "405")
        == 3
    )
    methods = {dict(labels).get("method") for (name, labels) in after}
    assert methods <= {None, "GET", "HEAD", "POST", "OPTIONS", "other"}


def test_head_answers_as_get_without_a_body(client):
    get = client.get("/graphql", params={"query": QUERY})
    head = client.head("/graphql", params={"query": QUERY})
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-type"] == get.headers["content-type"]


def test_media_types_are_case_insensitive(client):
    response = client.post(
        "/graphql",
        content=orjson.dumps({"query": QUERY}),
        headers={"content-type": "APPLICATION/JSON; charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["topics"]["totalCount"] > 0


def test_get_with_null_variables_means_none(client):
    for params in ({"variables": "null"}, {"variables": "null", "extensions": "null"}):
        response = client.get("/graphql", params={"query": QUERY, **params})
        assert response.status_code == 200, response.text
        assert "errors" not in response.json()
    bad = client.get("/graphql", params={"query": QUERY, "variables": "[1"})
    assert bad.status_code == 400


def test_a_long_operation_name_is_refused_without_echo_and_logged_short(client, caplog):
    name = "Op" * 45_000
    with caplog.at_level(logging.INFO, logger="newsgraph.access"):
        response = client.post(
            "/graphql",
            json={"query": f"query {name} {{ topics {{ totalCount }} }}"[:500]}
            | {"operationName": name},
        )
    assert response.status_code in (200, 400)
    assert len(response.content) < 1000
    (error,) = response.json()["errors"]
    assert "operationName is over 200 characters" in error["message"]
    (line,) = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "newsgraph.access"]
    assert len(orjson.dumps(line)) < 1000


def test_a_normal_operation_name_is_still_used(client):
    body = {"query": "query A { topics { totalCount } } query B { providers { totalCount } }"}
    response = client.post("/graphql", json=body | {"operationName": "B"})
    assert set(response.json()["data"]) == {"providers"}


def test_several_anonymous_operations_are_refused(client):
    body = {"query": "{ topics { totalCount } } { providers { totalCount } }"}
    response = client.post("/graphql", json=body)
    errors = response.json()["errors"]
    assert "data" not in response.json() or response.json()["data"] is None
    assert all("anonymous operation must be the only defined" in e["message"] for e in errors)


def test_the_view_is_reached_directly_only_where_the_router_would_reach_it(client):
    """api/app.py's GraphQLFirst sends a request straight to the view; for
    each request it does, Starlette's router would have chosen the same view."""
    import asyncio

    from starlette.routing import Match

    from api.app import GraphQLFirst
    from tests.api.test_pipeline_caches import view

    app = client.app
    graphql = view(app)
    chosen: list[str] = []

    async def routed(scope, receive, send):
        chosen.append("routed")

    async def direct(scope, receive, send):
        chosen.append("direct")

    first = GraphQLFirst(routed, direct)
    for kind in ("http", "websocket"):
        for path in ("/graphql", "/graphql/", "/graphqls", "/healthz", "/api/graphql"):
            for method in ("GET", "POST", "OPTIONS", "HEAD"):
                for root_path in ("", "/api"):
                    scope = {"type": kind, "path": path, "method": method, "root_path": root_path}
                    asyncio.run(first(scope, None, None))
                    if chosen.pop() == "direct":
                        matches = [r.matches({**scope, "headers": []}) for r in app.routes]
                        full = [child for match, child in matches if match == Match.FULL]
                        assert full and full[0]["endpoint"] is graphql, scope
    # Every GraphQL request over HTTP that needs no routing skips it.
    asyncio.run(first({"type": "http", "path": "/graphql", "method": "POST"}, None, None))
    assert chosen == ["direct"]
