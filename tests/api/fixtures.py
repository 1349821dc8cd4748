"""Fixtures for API tests: the sample articles served in-process over HTTP, on both engines."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.store import Store
from loaders import load_paths
from testing.live import running_server
from tests.articles import EXAMPLES

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def loaded(store: Store, settings: Settings) -> Store:
    report = load_paths(store, [EXAMPLES], settings)
    assert report.ok, report.failures
    return store


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, admin_token=ADMIN_TOKEN)


def without_cost_limits(settings: Settings) -> Settings:
    """For tests that walk every field under every list: far past what the cost
    rules let a client ask (or spend), and with hundreds of store calls at
    once, more than the store slots take before shedding (all have tests of
    their own)."""
    return dataclasses.replace(
        settings,
        max_query_objects=10**15,
        max_query_store_calls=10**12,
        store_queue_ms=600_000,
        request_timeout_ms=600_000,
        anonymous_burst=10**16,
        key_burst=10**16,
        admin_burst=10**16,
    )


def refilled_at_once(settings: Settings) -> Settings:
    """Budgets that refill faster than any two requests can follow each other:
    every answer reports a full bucket, so answers to the same request are
    equal byte for byte (the budget itself has tests of its own)."""
    return dataclasses.replace(
        settings,
        anonymous_points_per_s=10**15,
        key_points_per_s=10**15,
        admin_points_per_s=10**15,
    )


def without_budget(body: Any) -> Any:
    """An answer without the client's budget as it stood
    (``extensions.cost.throttleStatus``), which changes with every request
    while the answer does not."""
    if not isinstance(body, dict) or "extensions" not in body:
        return body
    extensions = dict(body["extensions"])
    cost = {k: v for k, v in extensions.get("cost", {}).items() if k != "throttleStatus"}
    if cost:
        extensions["cost"] = cost
    else:
        extensions.pop("cost", None)
    return (
        {**body, "extensions": extensions}
        if extensions
        else {k: v for k, v in body.items() if k != "extensions"}
    )


@pytest.fixture
def client(loaded: Store, api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings, loaded)) as c:
        yield c


class GQL:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def raw(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code in (200, 400), response.text
        return response.json()

    def __call__(self, query: str, variables: dict | None = None, **kw: Any) -> dict:
        """The data of a query that must succeed."""
        body = self.raw(query, variables, **kw)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def error(self, query: str, variables: dict | None = None, **kw: Any) -> str:
        """The message of a query that must fail."""
        body = self.raw(query, variables, **kw)
        assert body.get("errors"), body
        return " | ".join(e["message"] for e in body["errors"])


@pytest.fixture
def gql(client: TestClient) -> GQL:
    return GQL(client)


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every store call the API makes, by the function it ran."""
    from api.data.gateway import Gateway

    calls: list[str] = []
    original = Gateway.run

    async def counting(self: Gateway, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(Gateway, "run", counting)
    return calls


@pytest.fixture
def live_server(
    engine: str, settings: Settings, request: pytest.FixtureRequest
) -> Iterator[tuple[str, int]]:
    """The sample articles served by a real Uvicorn on loopback: (url, pid).
    A test's ``@pytest.mark.server_env(NAME=value)`` adds to the server's environment."""
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    marker = request.node.get_closest_marker("server_env")
    if marker is not None:
        env.update(marker.kwargs)
    args: list[str] = []
    if engine == "embedded":
        args = ["--load", str(EXAMPLES)]  # its own process, so it loads its own copy
    else:
        request.getfixturevalue("loaded")
    with running_server(env, *args) as (url, pid):
        yield url, pid
