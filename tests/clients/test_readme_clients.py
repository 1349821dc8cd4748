"""The README's client snippets (Apollo Client, gql, curl), each run as
written against a live server, each answer held to what a direct query gets.

A snippet is the fenced block after a ``<!-- snippet: NAME -->`` comment
(tests/clients/readme.py). JavaScript runs under Node with the installed
@apollo/client, Python in a fresh interpreter with gql, curl through bash;
each prints its answer, and the snippet of a client's set-up runs first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from graphql import parse, print_ast

from api.execution.incremental import without_incremental
from core.config import Settings
from core.store import connect
from testing.live import running_server
from tests.api.test_defer import json_parts, merged
from tests.articles import EXAMPLES
from tests.clients.node import run_module
from tests.clients.readme import pointed_at, section, snippets
from tests.required import missing

TOKEN = "readme-admin-token"
STORY_URL = "https://www.harborgazette.example/news/ferry-fleet-goes-electric"
#: The story the mobile snippets ask for, and the related stories an app shows.
STORY = "query($url: String!) { article(webUrl: $url) { title related { title webUrl } } }"
SHOWN = STORY.replace("related {", "related(first: 3, filter: { hasImages: true }) {")
DRAFTS = "{ articles(filter: { published: false }) { nodes { title } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"

#: Every snippet in the README; each is run by a test here, but for the
#: subscription's, which tests/api/test_subscriptions.py runs.
RUN = {
    "gql-subscribe",
    "curl-sse",  # these three in tests/api: they subscribe
    "graphql-sse",
    "curl-quickstart",
    "curl-quickstart-get",
    "apollo-client",
    "apollo-mobile",
    "apollo-defer",
    "gql-client",
    "gql-mobile",
    "gql-nodes",
    "gql-admin",
    "curl-mobile",
    "curl-media",
    "curl-apq",
    "curl-defer",
    "curl-admin",
}


@pytest.fixture(scope="module", params=["embedded", pytest.param("wire", marks=pytest.mark.wire)])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    """``newsgraph serve --load examples/articles`` with an admin token, once
    for this module on each engine: its /graphql address."""
    db = f"t_{uuid.uuid4().hex[:12]}"
    uri = request.getfixturevalue("wire_server").uri if request.param == "wire" else ""
    env = {"MONGODB_URI": uri, "NEWSGRAPH_DB": db, "NEWSGRAPH_ADMIN_TOKEN": TOKEN}
    with running_server(env, "--load", str(EXAMPLES)) as (url, _):
        yield f"{url}/graphql"
    if uri:
        store = connect(Settings(mongodb_uri=uri, db_name=db))
        store.db.client.drop_database(db)
        store.close()


def direct(server: str, query: str, variables: dict | None = None, token: str = "") -> Any:
    """The data of a bare POST, to hold the snippets' answers to."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = {"query": query, "variables": variables or {}}
    answer = httpx.post(server, json=body, headers=headers).json()
    assert "errors" not in answer, answer
    return answer["data"]


def code(name: str, language: str) -> str:
    snippet = snippets()[name]
    assert snippet.language == language, name
    return snippet.code


def shell(server: str, name: str) -> str:
    """What a curl snippet prints."""
    if shutil.which("curl") is None:
        missing("CURL", "curl is not installed (apt-get install curl)")
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + pointed_at(code(name, "sh"), server)],
        env={**os.environ, "NEWSGRAPH_ADMIN_TOKEN": TOKEN},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()  # as sent: HTTP's CRLFs kept


def python(server: str, name: str, then: str = "") -> list[Any]:
    """The JSON lines gql's set-up and then the snippet ``name`` print
    (followed by ``then``, a line of the test's own)."""
    program = pointed_at(f"{code('gql-client', 'python')}\n{code(name, 'python')}\n{then}", server)
    done = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, "NEWSGRAPH_ADMIN_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def javascript(server: str, name: str) -> tuple[list[Any], list[list[Any]]]:
    """The JSON lines Apollo's set-up and then the snippet ``name`` print, and
    the HTTP requests made: [method, url, status, content-type, body]."""
    source = pointed_at(f"{code('apollo-client', 'js')}\n{code(name, 'js')}", server)
    printed, requests = run_module(source, "@apollo/client", {})
    return [json.loads(line) for line in printed.splitlines()], requests


def summary(article: dict[str, Any]) -> dict[str, Any]:
    """A story's title and its related stories' titles and addresses."""
    related = [{"title": r["title"], "webUrl": r["webUrl"]} for r in article["related"]]
    return {"title": article["title"], "related": related}


def here_document(name: str) -> dict[str, Any]:
    """The JSON body a curl snippet sends from its here-document."""
    body = re.search(r"<<'EOF'\n(.*?)\nEOF", code(name, "sh"), re.S)
    assert body, name
    request: dict[str, Any] = json.loads(body.group(1))
    return request


def multipart(body: str) -> list[dict[str, Any]]:
    """The JSON parts of a multipart/mixed body, its delimiter on the first line."""
    delimiter = body.split("\r\n", 1)[0]
    assert delimiter.startswith("--"), body[:80]
    return json_parts(body, delimiter)


def hash_only(request: list[Any]) -> bool:
    """Whether an HTTP request was an automatic persisted query's hash-only GET."""
    method, url, *_ = request
    params = parse_qs(urlsplit(url).query)
    return method == "GET" and "query" not in params and "persistedQuery" in params["extensions"][0]


def test_every_snippet_is_run_and_every_client_example_is_a_snippet() -> None:
    assert set(snippets()) == RUN
    clients = section("Clients")
    assert clients.count("```") == 2 * clients.count("<!-- snippet: ")


def test_a_snippet_broken_in_the_readme_is_noticed() -> None:
    # The README's text is what the tests read: a snippet without its marker
    # is missing from the set, and one pointed elsewhere is refused.
    readme = "<!-- snippet: x -->\n```sh\ncurl -s localhost:8000/graphql\n```\n"
    (found,) = snippets(readme).values()
    with pytest.raises(AssertionError):
        pointed_at(found.code, "http://127.0.0.1:1/graphql")
    assert snippets(readme.replace("<!-- snippet: x -->\n", "")) == {}


def test_the_admin_snippets_stop_saying_what_they_need_without_the_token() -> None:
    # Before any request: no server is needed, and none is reached.
    nowhere = "http://127.0.0.1:9/graphql"
    env = {k: v for k, v in os.environ.items() if k != "NEWSGRAPH_ADMIN_TOKEN"}
    curl = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + pointed_at(code("curl-admin", "sh"), nowhere)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert curl.returncode != 0
    assert curl.stderr.strip().endswith(
        "NEWSGRAPH_ADMIN_TOKEN: export it, set to the admin token of the server"
    )
    program = pointed_at(f"{code('gql-client', 'python')}\n{code('gql-admin', 'python')}", nowhere)
    gql = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert gql.returncode != 0
    assert gql.stderr.strip().endswith("KeyError: 'NEWSGRAPH_ADMIN_TOKEN'")
    # What the README says each does without it.
    clients = " ".join(section("Clients").split())
    assert "`KeyError: 'NEWSGRAPH_ADMIN_TOKEN'`" in clients
    assert "`NEWSGRAPH_ADMIN_TOKEN: export it, set to the admin token of the server`" in clients


def test_quick_start(server: str) -> None:
    posted = json.loads(shell(server, "curl-quickstart"))
    front = "{ articles(first: 3) { nodes { title provider { name } } } }"
    assert posted["data"] == direct(server, front)
    assert len(posted["data"]["articles"]["nodes"]) == 3
    got = json.loads(shell(server, "curl-quickstart-get"))
    assert got["data"] == direct(server, "{ topics { totalCount } }")


def test_apollo_runs_the_mobile_query_with_persisted_queries(server: str) -> None:
    runs = [javascript(server, "apollo-mobile") for _ in range(2)]
    (first, registered), (again,) = (requests for _, requests in runs)
    sent = json.loads(registered[4])  # the query, as Apollo sent it
    story = direct(server, STORY, {"url": STORY_URL})["article"]
    for (data,), _ in runs:
        assert data == direct(server, sent["query"], sent["variables"])
        assert summary(data["article"]) == summary(story)
    # The hash alone; unknown, so the query once with its hash; then, for
    # the next client, the hash alone is answered.
    assert hash_only(first) and not hash_only(registered) and registered[2] == 200
    assert hash_only(again) and again[2] == 200


def test_apollo_receives_the_deferred_mobile_query_story_first(server: str) -> None:
    printed, requests = javascript(server, "apollo-defer")
    assert requests[-1][3].startswith("multipart/mixed"), requests
    sent = json.loads(requests[-1][4])
    undeferred = print_ast(without_incremental(parse(sent["query"])))
    whole = direct(server, undeferred, sent["variables"])
    first, *later = printed
    assert "related" not in first["article"]  # what the app shows first
    assert first["article"]["title"] == whole["article"]["title"]
    assert later and later[-1] == whole
    assert whole["article"]["related"]


def test_gql_runs_the_mobile_query_with_the_related_stories_an_app_shows(server: str) -> None:
    then = "print(json.dumps(transport.response_headers['content-type']))"
    story, content_type = python(server, "gql-mobile", then)
    shown = direct(server, SHOWN, {"url": STORY_URL})["article"]
    assert summary(story["article"]) == summary(shown)
    everything = direct(server, STORY, {"url": STORY_URL})["article"]["related"]
    assert 0 < len(shown["related"]) < len(everything)  # the filter left some out
    assert content_type == GRAPHQL_RESPONSE


def test_gql_refetches_by_node_what_the_list_gave(server: str) -> None:
    (again,) = python(server, "gql-nodes")
    fields = "id title provider { id domain } topics { id name }"
    listed = f"{{ articles(first: 1) {{ nodes {{ {fields} }} }} }}"
    story = direct(server, listed)["articles"]["nodes"][0]
    assert again["node"] == {"id": story["id"], "title": story["title"]}
    expected = [
        {"__typename": "Article", "id": story["id"], "title": story["title"]},
        {"__typename": "Provider", **story["provider"]},
        *({"__typename": "Topic", **topic} for topic in story["topics"]),
    ]
    assert again["nodes"] == expected
    assert story["topics"], "the story has topics"


def test_gql_with_the_admin_token_sees_drafts(server: str) -> None:
    (drafts,) = python(server, "gql-admin")
    assert drafts == direct(server, DRAFTS, token=TOKEN)
    assert drafts["articles"]["nodes"], "the samples have a draft"
    assert direct(server, DRAFTS)["articles"]["nodes"] == []  # the token is what shows it


def test_curl_runs_the_mobile_query(server: str) -> None:
    answer = json.loads(shell(server, "curl-mobile"))
    sent = here_document("curl-mobile")
    assert answer["data"] == direct(server, sent["query"], sent["variables"])
    story = direct(server, STORY, {"url": STORY_URL})["article"]
    assert summary(answer["data"]["article"]) == summary(story)


def test_curl_gets_graphql_response_json_and_its_status_codes(server: str) -> None:
    lines = shell(server, "curl-media").splitlines()
    (ran, ran_status), (refused, refused_status) = zip(lines[::2], lines[1::2], strict=True)
    assert ran_status == f"200 {GRAPHQL_RESPONSE}"
    assert json.loads(ran)["data"] == direct(server, "{ topics { totalCount } }")
    assert refused_status == f"400 {GRAPHQL_RESPONSE}"
    refusal = json.loads(refused)
    assert "data" not in refusal and "total" in refusal["errors"][0]["message"]


def test_curl_registers_and_uses_a_persisted_query(server: str) -> None:
    unknown, registered, answer = shell(server, "curl-apq").split("\n", 2)
    assert json.loads(unknown)["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    expected = direct(server, "{ topics { totalCount } }")
    assert json.loads(registered)["data"] == expected
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200") and "\netag: " in head.lower()
    assert json.loads(body)["data"] == expected


def test_curl_receives_the_deferred_mobile_query_in_parts(server: str) -> None:
    parts = multipart(shell(server, "curl-defer"))
    sent = here_document("curl-defer")
    undeferred = print_ast(without_incremental(parse(sent["query"])))
    whole = direct(server, undeferred, sent["variables"])
    assert parts[0]["hasNext"] is True and "related" not in parts[0]["data"]["article"]
    assert parts[-1]["hasNext"] is False
    assert merged(parts) == whole
    assert whole["article"]["related"]


def test_curl_with_the_admin_token_sees_drafts(server: str) -> None:
    answer = json.loads(shell(server, "curl-admin"))
    assert answer["data"] == direct(server, DRAFTS, token=TOKEN)
    assert answer["data"]["articles"]["nodes"], "the samples have a draft"
