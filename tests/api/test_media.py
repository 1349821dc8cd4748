"""GraphQL over HTTP: the media type a client gets, and that media type's
status codes (application/graphql-response+json) or today's (application/json)."""

from __future__ import annotations

import gzip

import pymongo.errors
import pytest
from starlette.testclient import TestClient

from api.data.gateway import Gateway
from api.data.slots import Shed
from api.http import media
from api.http.media import GRAPHQL_RESPONSE, JSON, negotiate, read_accept
from tests.api.fixtures import without_budget
from tests.api.test_cost import HOSTILE
from tests.api.test_persisted import QUERY, codes, extension, hash_only_get

APOLLO_4 = "application/graphql-response+json,application/json;q=0.9"
RECOMMENDED = "application/graphql-response+json; charset=utf-8, application/json; charset=utf-8"
OK = "{ topics { totalCount } }"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),  # a legacy client
        ("", JSON),
        ("not a media type", JSON),  # unreadable: as if absent
        ("application/json", JSON),
        ("*/*", JSON),  # Apollo Client 3, curl: what they always got
        ("application/*", JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),  # a browser
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON", GRAPHQL_RESPONSE),
        (APOLLO_4, GRAPHQL_RESPONSE),
        (RECOMMENDED, GRAPHQL_RESPONSE),  # both named, equal: the spec's preferred one
        ("application/json, application/graphql-response+json", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, */*;q=0.1", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, application/json", JSON),  # q-values decide
        (f"{GRAPHQL_RESPONSE};q=0, */*", JSON),  # refused by name, though */* covers it
        ("application/json;q=0, */*", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=oops, application/json", JSON),  # a bad q drops its range
        ("text/html", None),
        ("application/xml, text/*", None),
        ("application/json;q=0", None),
    ],
)
def test_negotiation(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_what_an_accept_says_is_kept_for_short_ones_and_a_bounded_few() -> None:
    media._kept_accept.cache_clear()
    long = ", ".join(["application/json;q=0.5"] * 20) + ", " + APOLLO_4
    assert len(long) > media.ACCEPT_KEPT_MAX
    assert read_accept(long) == (GRAPHQL_RESPONSE, False)
    assert media._kept_accept.cache_info().currsize == 0  # read, not kept
    for i in range(2 * media.ACCEPTS_KEPT):
        assert read_accept(f"application/x-{i}, multipart/mixed") == (None, True)
    assert media._kept_accept.cache_info().currsize == media.ACCEPTS_KEPT
    # Kept or not, the same reading.
    assert read_accept(APOLLO_4) == read_accept(APOLLO_4) == (GRAPHQL_RESPONSE, False)
    assert read_accept(None) == read_accept("") == (JSON, False)


def post(client: TestClient, accept: str | None, body: dict, **headers: str):
    if accept is not None:
        headers["Accept"] = accept
    return client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, APOLLO_4])
def test_a_client_that_asks_gets_graphql_response_json(client, accept):
    answer = post(client, accept, {"query": OK})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == GRAPHQL_RESPONSE
    assert answer.json()["data"] == {"topics": {"totalCount": 10}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{"}, None),  # does not parse
        ({"query": "{ nope }"}, None),  # does not validate
        (
            {
                "query": "query Q($n: Int) { articles(first: $n) { totalCount } }",
                "variables": {"n": "x"},
            },
            "BAD_USER_INPUT",
        ),
        ({"query": OK, "operationName": "x" * 201}, "BAD_REQUEST"),
        ({"query": HOSTILE["related chains 3 deep"]}, "QUERY_TOO_COSTLY"),
    ],
)
def test_a_request_error_is_a_400_without_data_only_under_the_new_media_type(client, body, code):
    new = post(client, GRAPHQL_RESPONSE, body)
    assert new.status_code == 400, new.text
    assert new.headers["content-type"] == GRAPHQL_RESPONSE
    assert "data" not in new.json() and new.json()["errors"]
    legacy = post(client, JSON, body)
    assert legacy.status_code == 200  # as before, for clients that know no better
    assert legacy.headers["content-type"] == JSON
    assert legacy.json()["data"] is None
    assert legacy.json()["errors"] == new.json()["errors"]
    if code is not None:
        assert code in str(new.json()["errors"])


def test_field_errors_stay_200_with_their_data(client):
    body = {"query": "{ topics { totalCount } article { id } }"}  # one of id or webUrl
    answer = post(client, GRAPHQL_RESPONSE, body)
    assert answer.status_code == 200
    assert answer.json()["data"]["topics"] == {"totalCount": 10}
    assert answer.json()["data"]["article"] is None
    assert answer.json()["errors"][0]["path"] == ["article"]


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (pymongo.errors.ExecutionTimeout("slow"), "TIMEOUT"),
        (pymongo.errors.ServerSelectionTimeoutError("down"), "STORE_UNAVAILABLE"),
    ],
)
def test_store_failures_while_executing_are_200_even_with_null_data(
    client, monkeypatch, failure, code
):
    def failing(self, call):
        raise failure

    monkeypatch.setattr(Gateway, "_dispatch", failing)
    answer = post(client, GRAPHQL_RESPONSE, {"query": OK})
    assert answer.status_code == 200  # data is there (null): errors during execution
    assert answer.json()["data"] is None
    assert codes(answer) == [code]


def test_a_shed_request_is_503_to_retry_and_has_no_data(client, monkeypatch):
    async def shed(self, call):
        raise Shed()

    monkeypatch.setattr(Gateway, "_dispatch", shed)
    new = post(client, GRAPHQL_RESPONSE, {"query": OK})
    assert new.status_code == 503 and new.headers["retry-after"] == "1"
    assert "data" not in new.json() and codes(new) == ["OVERLOADED"]
    legacy = post(client, JSON, {"query": OK})
    assert legacy.status_code == 503 and "data" in legacy.json()  # as before


def test_accepting_neither_media_type_is_406_but_the_explorer_still_opens(client):
    refused = post(client, "text/html", {"query": OK})
    assert refused.status_code == 406
    assert GRAPHQL_RESPONSE in refused.text
    assert client.get("/graphql", headers={"Accept": "text/html"}).status_code == 200


@pytest.mark.parametrize("name", [1, True, ["x"], {"o": 1}])
def test_an_operation_name_that_is_not_a_string_is_a_400(client, name):
    assert post(client, None, {"query": OK, "operationName": name}).status_code == 400


def test_persisted_queries_under_graphql_response_json(client):
    """Apollo Client 4 asks for it; its link retries on PERSISTED_QUERY_NOT_FOUND
    whatever the status (Apollo Client 3 sends */*, and gets the 200 as before)."""
    headers = {"Accept": APOLLO_4}
    unknown = hash_only_get(client, QUERY, **headers)
    assert unknown.status_code == 400 and "data" not in unknown.json()
    assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert "etag" not in unknown.headers  # never cached
    legacy = hash_only_get(client, QUERY, Accept="*/*")
    assert legacy.status_code == 200 and codes(legacy) == ["PERSISTED_QUERY_NOT_FOUND"]

    registered = client.post(
        "/graphql", json={"query": QUERY, "extensions": extension(QUERY)}, headers=headers
    )
    assert registered.status_code == 200 and "errors" not in registered.json()
    found = hash_only_get(client, QUERY, **headers)
    assert found.status_code == 200
    assert found.headers["content-type"] == GRAPHQL_RESPONSE
    assert found.headers["cache-control"].startswith("public")
    assert "Accept," in found.headers["vary"]
    again = hash_only_get(client, QUERY, **headers, **{"If-None-Match": found.headers["etag"]})
    assert again.status_code == 304
    as_json = hash_only_get(client, QUERY, Accept=JSON)
    assert without_budget(as_json.json()) == without_budget(found.json())
    assert as_json.headers["etag"] != found.headers["etag"]  # another representation
    assert (
        hash_only_get(
            client, QUERY, Accept=JSON, **{"If-None-Match": found.headers["etag"]}
        ).status_code
        == 200
    )


def test_graphql_response_json_is_gzipped_too(client):
    body = {"query": "{ articles(first: 20) { nodes { title excerpt webUrl } } }"}
    zipped = client.post(
        "/graphql",
        json=body,
        headers={"Accept": GRAPHQL_RESPONSE, "Accept-Encoding": "gzip"},
    )
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["content-type"] == GRAPHQL_RESPONSE
    assert len(gzip.compress(zipped.content)) < len(zipped.content)
