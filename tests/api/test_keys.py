"""API keys (core/keys.py) on both engines: kept as hashes, found by the API
(api/http/identity.py) as an identity with a budget of its own, and not to
be guessed, or used once revoked."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.http.identity import KEY_CACHE_S, Identify
from core import keys
from core.config import Settings
from core.store import Store
from tests.api.fixtures import ADMIN_TOKEN
from tests.api.slow import serving
from tests.api.test_budget import FRONT, code, post, small_budget, spend
from tests.api.test_pipeline_caches import view
from tests.api.wsclient import Raw


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_key_is_kept_only_as_its_hash_and_found_until_revoked(store: Store) -> None:
    store.ensure_indexes()  # as every command that keeps keys does
    token, key = keys.create(store.keys, "mobile app")
    assert token.startswith(keys.PREFIX) and len(token) > 40
    stored = list(store.keys.find())
    assert len(stored) == 1
    assert stored[0]["_id"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(stored)  # nothing stored gives the key back
    assert keys.find(store.keys, token) == key
    assert keys.find(store.keys, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert keys.find(store.keys, "not-a-key") is None
    other_token, other = keys.create(store.keys, "web")
    assert other.id != key.id and other_token != token

    revoked = keys.revoke(store.keys, key.id)
    assert revoked is not None and revoked.revoked is not None
    assert keys.find(store.keys, token) is None
    assert keys.revoke(store.keys, key.id) is None  # once only
    assert keys.revoke(store.keys, "nope") is None
    assert keys.find(store.keys, other_token) == other
    listed = {k.id: k for k in keys.listed(store.keys)}
    assert set(listed) == {key.id, other.id}
    assert listed[key.id].revoked is not None and listed[other.id].revoked is None


def test_a_keys_name_is_a_label_of_bounded_length(store: Store) -> None:
    for name in ("", "x" * (keys.MAX_NAME + 1)):
        with pytest.raises(ValueError, match="name"):
            keys.create(store.keys, name)


@pytest.fixture
def keyed(loaded: Store, api_settings: Settings) -> tuple[Store, Settings]:
    return loaded, small_budget(api_settings)


def test_a_key_has_a_budget_of_its_own_whatever_the_address(
    keyed: tuple[Store, Settings],
) -> None:
    store, settings = keyed
    settings = dataclasses.replace(settings, key_burst=600, key_points_per_s=1)
    token, _ = keys.create(store.keys, "app")
    app = create_app(settings, store)
    with TestClient(app, client=("198.51.100.20", 1)) as client:
        with_key = post(client, FRONT, bearer(token))
        assert with_key.status_code == 200
        assert with_key.headers["ratelimit-policy"].startswith('"key";q=600')
        spend(client)  # the address's budget
        assert post(client, FRONT, bearer(token)).status_code == 200  # the key's is left
        refused = spend(client, bearer(token))
        assert refused.status_code == 429 and code(refused) == "RATE_LIMITED"
    # The same key from elsewhere is the same client: its budget is spent.
    with TestClient(app, client=("198.51.100.21", 1)) as elsewhere:
        assert post(elsewhere, FRONT, bearer(token)).status_code == 429
        assert post(elsewhere, FRONT).status_code == 200  # that address's own
    # A key not seen lately, from an address whose budget is spent, waits
    # with it: it cannot be told from a guess without asking the store.
    fresh, _ = keys.create(store.keys, "another app")
    with TestClient(app, client=("198.51.100.20", 1)) as client:
        unchecked = post(client, FRONT, bearer(fresh))
        assert unchecked.status_code == 429 and code(unchecked) == "RATE_LIMITED"


def test_an_unknown_key_is_refused_and_guessing_spends_the_addresss_budget(
    keyed: tuple[Store, Settings], round_trips: list[str]
) -> None:
    store, settings = keyed
    keys.create(store.keys, "app")
    with TestClient(create_app(settings, store), client=("198.51.100.22", 1)) as client:
        statuses = []
        for n in range(60):
            guess = keys.PREFIX + hashlib.sha256(str(n).encode()).hexdigest()[:43]
            response = post(client, FRONT, bearer(guess))
            statuses.append(response.status_code)
            if response.status_code == 401:
                assert code(response) == "UNAUTHENTICATED"
                assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
                assert response.json()["data"] is None
        assert statuses[0] == 401
        assert 429 in statuses, "guessing was free"
        # Once the address's budget is spent, a guess no longer reaches the store.
        round_trips.clear()
        assert post(client, FRONT, bearer(keys.PREFIX + "x" * 43)).status_code == 429
        assert round_trips == []


def test_a_revoked_key_stops_working_once_its_look_up_expires(
    keyed: tuple[Store, Settings],
) -> None:
    store, settings = keyed
    token, key = keys.create(store.keys, "app")
    now = [0.0]
    app = create_app(settings, store)
    graphql = view(app)
    graphql.identify = Identify(settings, graphql.gateway, graphql.schema.limits, lambda: now[0])
    with TestClient(app) as client:
        assert post(client, FRONT, bearer(token)).status_code == 200
        keys.revoke(store.keys, key.id)
        now[0] += KEY_CACHE_S / 2
        assert post(client, FRONT, bearer(token)).status_code == 200  # as documented
        now[0] += KEY_CACHE_S
        replayed = post(client, FRONT, bearer(token))
        assert replayed.status_code == 401 and code(replayed) == "UNAUTHENTICATED"


def test_the_admin_token_is_the_admin_tier(keyed: tuple[Store, Settings]) -> None:
    store, settings = keyed
    with TestClient(create_app(settings, store)) as client:
        admin = post(client, FRONT, bearer(ADMIN_TOKEN))
        assert admin.headers["ratelimit-policy"].startswith('"admin"')
        wrong = post(client, FRONT, bearer("not-the-admin-token"))
        assert wrong.status_code == 200  # as anyone: not a key, so no refusal
        assert wrong.headers["ratelimit-policy"].startswith('"anonymous"')


def test_over_websocket_the_key_is_checked_at_connection_init(
    keyed: tuple[Store, Settings],
) -> None:
    store, settings = keyed
    token, _ = keys.create(store.keys, "app")

    async def scenario(url: str) -> None:
        refused = await Raw.connect(url)
        await refused.send(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}x"}}
        )
        closed_with = await refused.closed()
        assert closed_with[0] == 4403 and "unknown or revoked" in closed_with[1]
        ws = await Raw.connect(url)
        try:
            await ws.init(token)  # acknowledged
        finally:
            await ws.close()
        header: Any = {"additional_headers": bearer(token + "x")}
        by_header = await Raw.connect(url, **header)
        await by_header.send({"type": "connection_init"})
        assert (await by_header.closed())[0] == 4403

    with serving(create_app(settings, store)) as url:
        asyncio.run(scenario(url))
