"""Mainstream GraphQL clients, end to end, against a live server on loopback:
gql from Python and Apollo Client from Node, each running the README's mobile
query (Apollo as a mobile app would: persisted-query GETs)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.httpx import HTTPXTransport

from tests.api.test_related import MOBILE
from tests.required import missing

HERE = Path(__file__).parent
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
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "@apollo" / "client").is_dir():
        missing(
            "NODE", "Apollo Client is not installed: run scripts/install (needs Node.js and npm)"
        )
    url, _ = live_server
    story_id = plain(url, STORY)["articles"]["nodes"][0]["id"]
    request = {"url": f"{url}/graphql", "query": MOBILE, "variables": {"id": story_id}, "runs": 2}
    done = subprocess.run(
        [node, str(HERE / "apollo_mobile.js")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
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
