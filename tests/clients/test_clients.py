"""Mainstream GraphQL clients, end to end, against a live server on loopback:
gql from Python and Apollo Client from Node, each running the README's mobile
query (Apollo as a mobile app would: persisted-query GETs)."""

import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.httpx import HTTPXTransport

from tests.api.test_related import MOBILE
from tests.clients.node import run_script

STORY = '{ articles(first: 1, filter: {topic: "Energy"}) { nodes { id } } }'


def plain(url: str, query: str, variables: dict | None = None) -> dict:
    """The answer by a bare POST, to compare the clients' answers with."""
    import httpx2 as httpx

    body = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}})
    answer = body.json()
    assert "errors" not in answer, answer
    return answer["data"]


def without_typename(value):
    if isinstance(value, dict):
        return {k: without_typename(v) for k, v in value.items() if k != "__typename"}
    if isinstance(value, list):
        return [without_typename(v) for v in value]
    return value


def apollo(script: str, request: dict) -> dict:
    """What one of the Apollo Client scripts here prints for ``request``."""
    output: dict = run_script(script, request, "@apollo/client")
    return output


def test_gql_runs_the_mobile_query(live_server):
    url, _ = live_server
    story_id = plain(url, STORY)["articles"]["nodes"][0]["id"]
    transport = HTTPXTransport(url=f"{url}/graphql", timeout=10)
    with Client(transport=transport, fetch_schema_from_transport=True) as session:
        # With the schema fetched, gql validates the query client-side too.
        result = session.execute(GraphQLRequest(MOBILE, variable_values={"id": story_id}))
    assert result == plain(url, MOBILE, {"id": story_id})
    assert result["article"]["related"], "the story has related stories"
    with (
        Client(transport=HTTPXTransport(url=f"{url}/graphql")) as session,
        pytest.raises(Exception, match="first"),
    ):
        session.execute(gql("{ articles(first: 1000) { totalCount } }"))


def test_apollo_client_runs_the_mobile_query_with_persisted_queries(live_server):
    url, _ = live_server
    story_id = plain(url, STORY)["articles"]["nodes"][0]["id"]
    request = {"url": f"{url}/graphql", "query": MOBILE, "variables": {"id": story_id}, "runs": 2}
    output = apollo("apollo_mobile.js", request)
    expected = plain(url, MOBILE, {"id": story_id})
    for result in output["results"]:
        assert result["errors"] is None
        assert without_typename(result["data"]) == expected
    # First run: the hash is unknown (a hash-only GET), so Apollo sends the
    # query with its hash and registers it; second run: the hash-only GET is
    # enough.
    first, *rest = output["requests"]
    assert first == ["GET", 200, True]
    assert rest[0][0] == "POST" or rest[0][2] is False  # the query, sent once
    assert rest[-1] == ["GET", 200, True]
    assert len(output["requests"]) == 3


def test_apollo_client_receives_the_deferred_mobile_query_in_parts(live_server):
    from tests.api.test_defer import DEFERRED

    url, _ = live_server
    story_id = plain(url, STORY)["articles"]["nodes"][0]["id"]
    request = {"url": f"{url}/graphql", "query": DEFERRED, "variables": {"id": story_id}}
    output = apollo("apollo_defer.js", request)
    # The hash is unknown at first, then registered with the query, as ever;
    # the answer that counts came as multipart/mixed.
    assert output["requests"][-1][:2] in (["GET", 200], ["POST", 200])
    assert output["requests"][-1][2].startswith("multipart/mixed")
    # (PersistedQueryNotFound first: an ordinary JSON answer, with no hasNext.)
    first, *rest = [p for p in output["parts"] if "hasNext" in p]
    # In order: the story without its related stories, then those.
    assert first["hasNext"] is True and "related" not in first["data"]["article"]
    assert rest and rest[-1]["hasNext"] is False
    assert "related" in rest[0]["incremental"][0]["data"]
    expected = plain(url, MOBILE, {"id": story_id})
    assert expected["article"]["related"], "the story has related stories"
    snapshots = [without_typename(r["data"]) for r in output["results"]]
    assert "related" not in snapshots[0]["article"]  # what the phone paints first
    assert snapshots[-1] == expected
    assert all(r["errors"] is None for r in output["results"])
