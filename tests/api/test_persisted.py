"""Automatic Persisted Queries, as Apollo clients speak them."""

import dataclasses
import hashlib

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.operation.persisted import PersistedQueries, PersistedQueryError, PersistedQueryNotFound
from tests.api.fixtures import without_budget

QUERY = "query Latest { articles(first: 2) { nodes { title } } }"


def extension(query: str, version: int = 1) -> dict:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


def hash_only_get(client: TestClient, query: str, **headers: str):
    params = {"extensions": orjson.dumps(extension(query)).decode()}
    return client.get("/graphql", params=params, headers=headers)


def codes(response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


def test_unknown_hash_then_register_then_hash_only_get_is_cacheable(client):
    missing = hash_only_get(client, QUERY)
    assert missing.status_code == 200
    assert missing.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert codes(missing) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert missing.headers["cache-control"] == "private, no-store"  # never cache the miss

    registered = client.post("/graphql", json={"query": QUERY, "extensions": extension(QUERY)})
    expected = without_budget(client.post("/graphql", json={"query": QUERY}).json())
    assert without_budget(registered.json()) == expected and "errors" not in expected

    found = hash_only_get(client, QUERY)
    assert without_budget(found.json()) == expected
    assert found.headers["cache-control"].startswith("public")
    again = hash_only_get(client, QUERY, **{"If-None-Match": found.headers["etag"]})
    assert again.status_code == 304


def test_a_hash_that_does_not_match_its_query_is_refused_and_not_registered(client):
    wrong = {"persistedQuery": {**extension(QUERY)["persistedQuery"]}}
    other = "{ topics { totalCount } }"
    response = client.post("/graphql", json={"query": other, "extensions": wrong})
    assert response.json()["data"] is None
    assert "does not match" in response.json()["errors"][0]["message"]
    assert codes(hash_only_get(client, QUERY)) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(
    "query, message",
    [
        ("query Broken { articles(first: 2) { nodes { title } }", "Syntax Error"),
        ("query Wrong { articles(first: 2) { nodes { nope } } }", "Cannot query field 'nope'"),
        ("{ " + "__typename " * 30 + "}", "selected more than 20 times"),
        ("{ articles { totalCount } }" + " " * 200_000, "100,000-byte limit"),
    ],
    ids=["unparsable", "invalid", "over a limit", "over the body limit"],
)
def test_a_query_that_fails_to_parse_or_validate_is_not_registered(client, query, message):
    response = client.post("/graphql", json={"query": query, "extensions": extension(query)})
    assert message in response.text
    assert codes(hash_only_get(client, query)) == ["PERSISTED_QUERY_NOT_FOUND"]
    # The same query without the error does register.
    fixed = "{ articles { totalCount } }"
    client.post("/graphql", json={"query": fixed, "extensions": extension(fixed)})
    assert hash_only_get(client, fixed).json()["data"] == {"articles": {"totalCount": 11}}


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": "0" * 64}, {"version": 1, "sha256Hash": "abc"}, "yes"],
)
def test_malformed_extensions_get_a_clear_error(client, persisted):
    response = client.post(
        "/graphql", json={"query": QUERY, "extensions": {"persistedQuery": persisted}}
    )
    assert codes(response) == ["BAD_PERSISTED_QUERY"]
    assert "persistedQuery" in response.json()["errors"][0]["message"]


def test_a_hash_only_get_from_a_browser_gets_data_not_graphiql(client):
    page = hash_only_get(client, QUERY, accept="text/html,*/*")
    assert page.headers["content-type"].startswith("application/json")


def test_switched_off_they_are_refused_as_not_supported(loaded, api_settings):
    settings = dataclasses.replace(api_settings, persisted_queries=False)
    with TestClient(create_app(settings, loaded)) as client:
        response = client.post("/graphql", json={"query": QUERY, "extensions": extension(QUERY)})
        assert codes(response) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
        assert "data" in client.post("/graphql", json={"query": QUERY}).json()


def register(registry: PersistedQueries, query: str, persisted: dict | None = None) -> None:
    """What the extension does with a query that parsed and validated."""
    resolved = registry.resolve(query, persisted or extension(query))
    assert resolved.query == query and resolved.register is not None
    registry.register(resolved.register, query)


def test_the_registry_is_bounded_and_forgets_the_least_recently_used():
    registry = PersistedQueries(max_entries=2, max_bytes=1_000_000)
    for q in ["{ a }", "{ b }"]:
        register(registry, q)
    assert registry.resolve(None, extension("{ a }")).query == "{ a }"  # now the most recent
    register(registry, "{ c }")
    assert registry.resolve(None, extension("{ a }")).query == "{ a }"
    with pytest.raises(PersistedQueryNotFound):
        registry.resolve(None, extension("{ b }"))
    assert len(registry) == 2


def test_resolving_a_query_with_its_hash_does_not_register_it():
    registry = PersistedQueries(max_entries=10, max_bytes=1_000_000)
    assert registry.resolve(QUERY, extension(QUERY)).register is not None
    with pytest.raises(PersistedQueryNotFound):
        registry.resolve(None, extension(QUERY))


def test_hashes_are_compared_case_insensitively():
    registry = PersistedQueries(max_entries=4, max_bytes=1_000_000)
    upper = {
        "persistedQuery": {
            "version": 1,
            "sha256Hash": extension(QUERY)["persistedQuery"]["sha256Hash"].upper(),
        }
    }
    register(registry, QUERY, upper)
    assert registry.resolve(None, extension(QUERY)).query == QUERY
    with pytest.raises(PersistedQueryError):
        registry.resolve(None, {"persistedQuery": {"version": 1}})


# Shared by the fleet: registrations kept in the store (api.operation.persisted.SharedRegistry).


def test_a_hash_registered_through_one_app_is_found_by_another_over_the_same_store(
    loaded, api_settings
):
    with TestClient(create_app(api_settings, loaded)) as first:
        assert codes(hash_only_get(first, QUERY)) == ["PERSISTED_QUERY_NOT_FOUND"]
        first.post("/graphql", json={"query": QUERY, "extensions": extension(QUERY)})
    # Another worker: its own caches, empty; the same store.
    with TestClient(create_app(api_settings, loaded)) as other:
        found = hash_only_get(other, QUERY)
        assert "errors" not in found.json()
        assert found.json()["data"]["articles"]["nodes"]


def test_not_shared_when_switched_off(loaded, api_settings):
    settings = dataclasses.replace(api_settings, persisted_queries_shared=False)
    with TestClient(create_app(settings, loaded)) as first:
        first.post("/graphql", json={"query": QUERY, "extensions": extension(QUERY)})
    with TestClient(create_app(settings, loaded)) as other:
        assert codes(hash_only_get(other, QUERY)) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert (
        loaded.persisted.find_one({"_id": extension(QUERY)["persistedQuery"]["sha256Hash"]}) is None
    )


def test_a_stored_row_that_does_not_hash_to_its_key_is_not_run(loaded, api_settings):
    digest = extension(QUERY)["persistedQuery"]["sha256Hash"]
    loaded.persisted.insert_one({"_id": digest, "query": "{ topics { totalCount } }", "used": 0.0})
    with TestClient(create_app(api_settings, loaded)) as client:
        assert codes(hash_only_get(client, QUERY)) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_registrations_unread_for_the_days_kept_are_deleted(loaded, api_settings, monkeypatch):
    from api.operation import persisted

    now = [1_000_000_000.0]
    monkeypatch.setattr(persisted.time, "time", lambda: now[0])
    old, new = QUERY, "{ topics { totalCount } }"
    settings = dataclasses.replace(api_settings, persisted_queries_days=1)
    with TestClient(create_app(settings, loaded)) as client:
        client.post("/graphql", json={"query": old, "extensions": extension(old)})
    now[0] += 86400 + 1  # a day and a second later, in a worker that has not pruned yet
    with TestClient(create_app(settings, loaded)) as client:
        client.post("/graphql", json={"query": new, "extensions": extension(new)})
    kept = {row["query"] for row in loaded.persisted.find({"used": {"$gte": 0}})}
    assert kept == {new}


def test_clients_filling_the_stores_registry_keep_it_within_its_bound(
    loaded, api_settings, monkeypatch
):
    """Distinct valid queries, each registered: the store keeps at most the
    bound (the least recently read go), and a query over the size kept in the
    store is remembered by the worker only."""
    from api.operation import persisted

    now = [1_000_000_000.0]
    monkeypatch.setattr(persisted.time, "time", lambda: now[0])
    most = 20
    settings = dataclasses.replace(api_settings, persisted_queries_stored_max=most)
    queries = [f"{{ t{i}: topics(first: 1) {{ totalCount }} }}" for i in range(3 * most)]
    with TestClient(create_app(settings, loaded)) as client:
        for query in queries:
            now[0] += 1
            answer = client.post("/graphql", json={"query": query, "extensions": extension(query)})
            assert "errors" not in answer.json()
        stored = [row["query"] for row in loaded.persisted.find({"used": {"$gte": 0}})]
        # Pruned after every tenth of the bound: never more than that over it.
        assert most // 2 <= len(stored) <= most + most // 10
        assert queries[-1] in stored and queries[0] not in stored

        long = "# " + "x" * persisted.SHARED_QUERY_MAX_BYTES + "\n{ __typename }"
        assert len(long.encode()) > persisted.SHARED_QUERY_MAX_BYTES
        answer = client.post("/graphql", json={"query": long, "extensions": extension(long)})
        assert "errors" not in answer.json()
        assert "errors" not in hash_only_get(client, long).json()  # this worker has it
    digest = extension(long)["persistedQuery"]["sha256Hash"]
    assert loaded.persisted.find_one({"_id": digest}) is None
