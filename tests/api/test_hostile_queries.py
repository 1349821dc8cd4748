"""Malformed and hostile requests: each gets a clear answer within a second,
never a 5xx, and the server stays healthy afterwards."""

from __future__ import annotations

import dataclasses
import time

import pytest
from starlette.testclient import TestClient

from api.app import create_app

DEEP = "{ articles { nodes { " + "related { article { " * 10 + "title" + " } }" * 10 + " } } }"
ALIASES = "{ " + " ".join(f"a{i}: articles {{ totalCount }}" for i in range(1000)) + " }"
FRAGMENT_LOOP = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"


def post(client, **kw):
    started = time.monotonic()
    response = client.post("/graphql", **kw)
    assert time.monotonic() - started < 1.0, "took over a second"
    assert response.status_code < 500, response.text
    return response


CASES = {
    "depth 20": ({"json": {"query": DEEP}}, 200, "exceeds maximum operation depth of 12"),
    "1,000 aliases": ({"json": {"query": ALIASES}}, 200, "more than 2000 tokens"),
    "31 aliases": (
        {
            "json": {
                "query": "{ "
                + " ".join(f"a{i}: articles(first: 1) {{ totalCount }}" for i in range(31))
                + " }"
            }
        },
        200,
        "aliases found. Allowed: 30",
    ),
    "1 MB query": (
        {"json": {"query": "{ articles { totalCount } }" + " " * 1_000_000}},
        413,
        "over the 100,000-byte limit",
    ),
    "huge first": (
        {"json": {"query": "{ articles(first: 1000000) { totalCount } }"}},
        200,
        "first may be at most 100",
    ),
    "first beyond Int": (
        {"json": {"query": "{ articles(first: 99999999999) { totalCount } }"}},
        200,
        "Int cannot represent non 32-bit signed integer",
    ),
    "batch of 100": (
        {"json": [{"query": "{ articles { totalCount } }"}] * 100},
        400,
        "Batching is not enabled",
    ),
    "regex search": (
        {
            "json": {
                "query": r'{ articles(filter: {search: "(a+)+$ .* [\\d"}) '
                "{ totalCount } }"
            }
        },
        200,
        None,
    ),
    "10,000-char search": (
        {"json": {"query": '{ articles(filter: {search: "' + "a" * 10000 + '"}) { totalCount } }'}},
        200,
        "at most 500 characters",
    ),
    "truncated cursor": (
        {"json": {"query": '{ articles(after: "WyJQVUJMSVNIRURfREVT") { totalCount } }'}},
        200,
        "invalid cursor",
    ),
    "invalid UTF-8": (
        {"content": b'{"query": "\xff\xfe"}', "headers": {"content-type": "application/json"}},
        400,
        "parse",
    ),
    "invalid JSON": (
        {"content": b'{"query": ', "headers": {"content-type": "application/json"}},
        400,
        "parse",
    ),
    "JSON null": (
        {"content": b"null", "headers": {"content-type": "application/json"}},
        400,
        "parse",
    ),
    "wrong content type": (
        {"content": b"query=x", "headers": {"content-type": "text/plain"}},
        400,
        "Unsupported content type",
    ),
    "no query": ({"json": {"variables": {}}}, 400, "No GraphQL query"),
    "fragment cycle": ({"json": {"query": FRAGMENT_LOOP}}, 200, "Cannot spread fragment"),
    "unknown operation": (
        {"json": {"query": "{ a: articles { totalCount } }", "operationName": "Nope"}},
        400,
        "Unknown operation",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_request_gets_a_clear_answer(client, case):
    kwargs, status, message = CASES[case]
    response = post(client, **kwargs)
    assert response.status_code == status, response.text
    if message is None:
        assert "errors" not in response.json()
    else:
        assert message in response.text
    assert client.get("/healthz").status_code == 200
    body = post(client, json={"query": "{ articles { totalCount } }"}).json()
    assert body.pop("extensions")["cost"]  # every answer reports its cost
    assert body == {"data": {"articles": {"totalCount": 11}}}


OPERATOR_STRINGS = ['{"$ne": null}', "$where", "$regex", "$gt", "this.published == false"]


@pytest.mark.parametrize("text", OPERATOR_STRINGS)
def test_operator_looking_strings_in_every_string_argument_match_nothing(gql, text):
    arguments = [
        "topic: $t",
        "providerDomain: $t",
        "category: $t",
        "type: $t",
        "search: $t",
        "topicsAny: [$t]",
    ]
    for argument in arguments:
        data = gql(
            f"query($t: String!) {{ articles(filter: {{{argument}}}) {{ totalCount }} }}",
            {"t": text + " zzz"} if "search" in argument else {"t": text},
        )
        assert data == {"articles": {"totalCount": 0}}, argument
    assert gql(
        "query($t: String!, $i: ID!) { provider(domain: $t) { name } "
        "topic(name: $t) { name } article(webUrl: $t) { id } a2: article(id: $i) { id } }",
        {"t": text, "i": text},
    ) == {"provider": None, "topic": None, "article": None, "a2": None}


def test_get_with_a_mutation_is_refused(client):
    response = client.get("/graphql", params={"query": "mutation { x }"})
    assert response.status_code in (400, 405) and "mutation" in response.text.lower()


def test_long_query_string_is_refused(loaded, api_settings):
    small = dataclasses.replace(api_settings, max_body_bytes=10_000)
    with TestClient(create_app(small, loaded)) as client:
        query = "{ articles { totalCount } }"
        assert client.get("/graphql", params={"query": query}).status_code == 200
        response = client.get("/graphql", params={"query": query + " " * 20_000})
        assert response.status_code == 414 and "10,000-byte limit" in response.text


def test_introspection_can_be_switched_off(loaded, api_settings):
    closed = dataclasses.replace(api_settings, introspection=False)
    with TestClient(create_app(closed, loaded)) as client:
        body = client.post("/graphql", json={"query": "{ __schema { types { name } } }"}).json()
        assert "introspection" in body["errors"][0]["message"].lower()
        ok = client.post("/graphql", json={"query": "{ articles { totalCount } }"}).json()
        assert ok["data"] == {"articles": {"totalCount": 11}} and "errors" not in ok
        assert client.get("/graphql", headers={"Accept": "text/html"}).status_code != 200
