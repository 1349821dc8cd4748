"""Trusted documents (api/operation/trusted.py): manifests in the formats
the clients' tooling writes, refused at start when they cannot be used; in
enforce mode only listed documents run, by GET, POST, a persisted hash, @defer
and WebSocket alike, unless the admin asks; in allow mode a listed document
runs by id with no registration."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from api.app import create_app
from api.operation import trusted
from api.operation.trusted import TrustedDocuments, load_manifest
from core.config import ConfigError, Settings
from core.store import Store
from newsgraph.cli import cli
from tests.api.fixtures import ADMIN_TOKEN
from tests.api.slow import serving
from tests.api.wsclient import Raw

FRONT = "query Front { articles(first: 3) { nodes { id title } } }"
TOPICS = "query Topics { topics { totalCount } }"
DEFERRED = "query Later { articles(first: 2) { nodes { id ... @defer { title } } } }"
ARRIVED = "subscription Arrived { articlePublished { id title } }"
UNLISTED = "{ articles(first: 1) { nodes { id } } }"
RELAY_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"  # relay-compiler's ids are MD5-length


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apollo_manifest(*bodies: str) -> dict[str, Any]:
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha256(body), "name": body.split()[1], "type": body.split()[0], "body": body}
            for body in bodies
        ],
    }


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


# -- manifests -------------------------------------------------------------------


def test_the_three_formats_are_read(tmp_path: Path) -> None:
    apollo = load_manifest(write(tmp_path / "a.json", apollo_manifest(FRONT, TOPICS)), 2000)
    assert apollo == {sha256(FRONT): FRONT, sha256(TOPICS): TOPICS}
    relay = load_manifest(write(tmp_path / "r.json", {RELAY_ID: FRONT}), 2000)
    assert relay == {RELAY_ID: FRONT}
    codegen = load_manifest(write(tmp_path / "c.json", {sha256(TOPICS): TOPICS}), 2000)
    assert codegen == {sha256(TOPICS): TOPICS}


def settings_with(path: Path | str, mode: str = "enforce", **changes: Any) -> Settings:
    return Settings(trusted_documents=mode, trusted_manifest=str(path), **changes)


def test_a_listed_document_is_found_by_its_id_and_by_the_sha256_of_its_text(tmp_path):
    documents = TrustedDocuments.for_settings(
        settings_with(write(tmp_path / "r.json", {RELAY_ID: FRONT}))
    )
    assert documents.find(RELAY_ID) == documents.find(sha256(FRONT)) == FRONT
    assert documents.find(f"sha256:{sha256(FRONT).upper()}") == FRONT
    assert documents.find("nope") is None and len(documents) == 1


BAD_MANIFESTS: dict[str, tuple[Any, str]] = {
    "not JSON": ("{", "not JSON"),
    "not an object": ([FRONT], "expected Apollo's persisted query list"),
    "a value not a string": ({"a": 1}, "the value under 'a' is not a string"),
    "unknown format": ({"format": "other", "version": 1}, "unknown format"),
    "apollo version 2": ({**apollo_manifest(FRONT), "version": 2}, "unknown format"),
    "operations not a list": (
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": {}},
        "`operations` must be a list",
    ),
    "an operation without a body": (
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "x"}]},
        r"operations\[0\] must be an object",
    ),
    "an id listed twice": ('{"a": "{ topics { totalCount } }", "a": "{ x }"}', "listed twice"),
    "an id with two bodies": (
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{"id": "a", "body": FRONT}, {"id": "a", "body": TOPICS}],
        },
        "names two different documents",
    ),
    "an empty id": ({"": FRONT}, "1 to 256 characters"),
    "a document that does not parse": ({"a": "{ articles("}, "the document 'a' cannot run"),
    "a document over the token limit": (
        {"a": "{ " + "topics { totalCount } " * 600 + "}"},
        "the document 'a' cannot run",
    ),
    "no documents": ({}, "lists no documents"),
}


@pytest.mark.parametrize("data, message", BAD_MANIFESTS.values(), ids=list(BAD_MANIFESTS))
def test_a_manifest_that_cannot_be_used_is_refused_at_start_saying_why(
    tmp_path: Path, data: Any, message: str
) -> None:
    path = write(tmp_path / "m.json", data)
    with pytest.raises(ConfigError, match=message) as refused:
        TrustedDocuments.for_settings(settings_with(path))
    assert str(path) in str(refused.value)


def test_a_huge_manifest_is_refused_unparsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as huge:  # sparse: a file of that size, not its bytes
        huge.truncate(trusted.MAX_MANIFEST_BYTES + 1)
    with pytest.raises(ConfigError, match="over 16,777,216 bytes"):
        TrustedDocuments.for_settings(settings_with(path))


def test_enforce_without_a_manifest_or_with_a_missing_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs NEWSGRAPH_TRUSTED_MANIFEST"):
        TrustedDocuments.for_settings(settings_with(""))
    with pytest.raises(ConfigError, match="cannot read it"):
        TrustedDocuments.for_settings(settings_with(tmp_path / "missing.json"))
    assert len(TrustedDocuments.for_settings(settings_with("", mode="off"))) == 0


def test_the_mode_is_one_of_three_words() -> None:
    assert Settings.from_env({"NEWSGRAPH_TRUSTED_DOCUMENTS": "Enforce"}).trusted_documents == (
        "enforce"
    )
    with pytest.raises(ConfigError, match="off, allow, enforce"):
        Settings.from_env({"NEWSGRAPH_TRUSTED_DOCUMENTS": "strict"})


def test_serve_stops_before_loading_with_a_bad_manifest(tmp_path: Path) -> None:
    env = {
        "NEWSGRAPH_TRUSTED_DOCUMENTS": "enforce",
        "NEWSGRAPH_TRUSTED_MANIFEST": str(write(tmp_path / "m.json", "{")),
    }
    result = CliRunner().invoke(cli, ["serve", "--port", "0"], env=env)
    assert result.exit_code == 2, result.output
    assert "NEWSGRAPH_TRUSTED_MANIFEST" in result.output and "not JSON" in result.output


# -- enforced, over every way in -------------------------------------------------------


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """What a build of the app listed: Apollo's format, and Relay's beside it."""
    apollo = write(tmp_path / "apollo.json", apollo_manifest(FRONT, TOPICS, DEFERRED, ARRIVED))
    return apollo


def enforcing(settings: Settings, manifest: Path, mode: str = "enforce") -> Settings:
    return dataclasses.replace(
        settings,
        trusted_documents=mode,
        trusted_manifest=str(manifest),
        subscription_poll_ms=100,
    )


def code(response: Any) -> str | None:
    errors = response.json().get("errors") or [{}]
    return (errors[0].get("extensions") or {}).get("code")


def apq(query: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}


def test_enforce_runs_listed_documents_and_refuses_others_by_every_way_in(
    loaded: Store, api_settings: Settings, manifest: Path, round_trips: list[str]
) -> None:
    with TestClient(create_app(enforcing(api_settings, manifest), loaded)) as client:
        listed = [
            client.post("/graphql", json={"query": FRONT}),
            client.get("/graphql", params={"query": FRONT}),
            client.post("/graphql", json={"documentId": sha256(FRONT)}),
            client.get("/graphql", params={"documentId": sha256(TOPICS)}),
            client.get("/graphql", params={"extensions": json.dumps(apq(TOPICS))}),
            client.post("/graphql", json={"query": FRONT, "extensions": apq(FRONT)}),
        ]
        for response in listed:
            assert response.status_code == 200 and "errors" not in response.json(), response.text
        deferred = client.post(
            "/graphql",
            json={"documentId": sha256(DEFERRED)},
            headers={"accept": "multipart/mixed"},
        )
        assert deferred.status_code == 200 and "multipart/mixed" in deferred.headers["content-type"]

        round_trips.clear()
        refused = [
            client.post("/graphql", json={"query": UNLISTED}),
            client.get("/graphql", params={"query": UNLISTED}),
            client.post("/graphql", json={"query": FRONT + " "}),  # identical, or not listed
            client.post("/graphql", json={"documentId": "nope"}),
            client.get("/graphql", params={"extensions": json.dumps(apq(UNLISTED))}),
            client.post("/graphql", json={"query": UNLISTED, "extensions": apq(UNLISTED)}),
            # A listed id does not carry another text with it.
            client.post("/graphql", json={"query": UNLISTED, "documentId": sha256(FRONT)}),
            client.post(
                "/graphql",
                json={"query": UNLISTED.replace("1", "2")},
                headers={"accept": "multipart/mixed"},
            ),
        ]
        for response in refused:
            assert code(response) == "UNTRUSTED_DOCUMENT", response.text
            assert response.json()["data"] is None
        assert round_trips == [], "an untrusted document reached the store"
        # What was refused was not registered either: its hash stays unknown.
        by_hash = client.get("/graphql", params={"extensions": json.dumps(apq(UNLISTED))})
        assert code(by_hash) == "UNTRUSTED_DOCUMENT"


def test_enforce_refuses_before_parsing(
    loaded: Store, api_settings: Settings, manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.operation.documents as documents

    parsed: list[str] = []
    original = documents.parse

    def parse(text: str, **kw: Any) -> Any:
        parsed.append(text)
        return original(text, **kw)

    monkeypatch.setattr(documents, "parse", parse)
    with TestClient(create_app(enforcing(api_settings, manifest), loaded)) as client:
        flood = "{ " + " ".join(f"a{n}: topics {{ totalCount }}" for n in range(25)) + " }"
        assert code(client.post("/graphql", json={"query": flood})) == "UNTRUSTED_DOCUMENT"
    assert parsed == []


def test_the_admin_runs_anything_under_enforce(
    loaded: Store, api_settings: Settings, manifest: Path
) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(create_app(enforcing(api_settings, manifest), loaded)) as client:
        mine = client.post("/graphql", json={"query": UNLISTED}, headers=admin)
        assert mine.status_code == 200 and "errors" not in mine.json()
        registered = client.post(
            "/graphql", json={"query": UNLISTED, "extensions": apq(UNLISTED)}, headers=admin
        )
        assert "errors" not in registered.json()
        # What the admin registered is the admin's: anyone else is still refused.
        anyone = client.get("/graphql", params={"extensions": json.dumps(apq(UNLISTED))})
        assert code(anyone) == "UNTRUSTED_DOCUMENT"


def test_enforce_holds_over_websocket(
    loaded: Store, api_settings: Settings, manifest: Path
) -> None:
    async def scenario(url: str) -> None:
        ws = await Raw.connect(url)
        try:
            await ws.init()
            await ws.subscribe("1", ARRIVED.replace("title", "webUrl"))
            refused = await ws.receive()
            assert refused["type"] == "error", refused
            assert refused["payload"][0]["extensions"]["code"] == "UNTRUSTED_DOCUMENT"
            await ws.subscribe("2", ARRIVED)
            with pytest.raises(TimeoutError):  # started: it waits for news
                await ws.receive(timeout=1)
        finally:
            await ws.close()
        admin = await Raw.connect(url)
        try:
            await admin.init(ADMIN_TOKEN)
            await admin.subscribe("1", ARRIVED.replace("title", "webUrl"))
            with pytest.raises(TimeoutError):
                await admin.receive(timeout=1)
        finally:
            await admin.close()

    with serving(create_app(enforcing(api_settings, manifest), loaded)) as url:
        asyncio.run(scenario(url))


# -- allowed ---------------------------------------------------------------------------


def test_allow_runs_a_listed_document_by_id_without_registering_and_the_rest_as_before(
    loaded: Store, api_settings: Settings, tmp_path: Path
) -> None:
    relay = write(tmp_path / "relay.json", {RELAY_ID: FRONT})
    with TestClient(create_app(enforcing(api_settings, relay, "allow"), loaded)) as client:
        for body in ({"doc_id": RELAY_ID}, {"id": RELAY_ID}, {"documentId": RELAY_ID}):
            by_id = client.post("/graphql", json=body)
            assert "errors" not in by_id.json() and by_id.json()["data"]["articles"]["nodes"]
        # Apollo's hash of a listed text: found at once, not PersistedQueryNotFound.
        found = client.get("/graphql", params={"extensions": json.dumps(apq(FRONT))})
        assert "errors" not in found.json()
        assert "errors" not in client.post("/graphql", json={"query": UNLISTED}).json()
        unknown = client.get("/graphql", params={"extensions": json.dumps(apq(UNLISTED))})
        assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"  # as without a list
        # A browser's GET naming a document wants data, not GraphiQL.
        page = client.get("/graphql", params={"documentId": RELAY_ID}, headers={"accept": "*/*"})
        assert page.headers["content-type"].startswith("application/json")
