"""Hostile checks of the answers each worker keeps (api/operation/answered.py),
beside tests/api/test_answered.py: what a client, or the load it makes, can
do to what is kept and to when it is trusted."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from api.app import create_app
from api.data.changes import Changes
from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from core import keys
from core.config import Settings
from core.store import Store
from loaders import load_paths
from tests.api.test_answered import (
    Clock,
    corpus,
    hear,
    keeping,
    kept_count,
    retitle,
    seen,
    served,
    titles,
    titles_kept,
)
from tests.api.test_pipeline import FRONT, MOBILE, story_id
from tests.api.test_pipeline_caches import q, send, view


def test_store_slots_full_of_clients_calls_do_not_turn_kept_answers_off(
    loaded: Store, api_settings: Settings
) -> None:
    """Clients whose calls fill every store slot (distinct queries, each a
    miss) must not make the worker's change-marker read shed: shed, the
    marker is not trusted two intervals later, and every kept answer is made
    again, each needing a slot too, just when they are scarcest."""

    async def run() -> None:
        slots = StoreSlots(size=1, wait_ms=20)
        gateway = Gateway(loaded, 5000, slots)
        changes = Changes(gateway, 1.0)
        # A client's call holds the only slot, longer than a call may wait for one.
        busy = asyncio.ensure_future(slots.run(lambda: time.sleep(0.3)))
        await asyncio.sleep(0.05)
        assert slots.in_flight == 1
        began = time.monotonic()
        await changes.read()
        assert not changes.failed, "the marker read was shed"
        assert changes.value is not None
        assert time.monotonic() - began < 10  # waited for the slot, not for ever
        await busy
        await changes.close()

    asyncio.run(run())


STORY = "query Story($id: ID!) { article(id: $id) { title } }"


def test_a_cdn_refilled_after_the_loaders_purge_is_not_handed_a_stale_answer(
    store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    folder = corpus(tmp_path)
    assert load_paths(store, [folder], api_settings).ok
    some = store.articles.find_one({"published": True})
    assert some is not None
    ask = q(STORY, method="GET", variables={"id": some["_id"]})
    app = create_app(keeping(api_settings), store)
    with served(app) as client:
        for _ in range(2):  # an answer a shared cache may keep is made each time
            before = send(client, ask)
        assert before.json()["data"]["article"]["title"] == some["title"]
        assert kept_count(client) == 0
        assert "s-maxage" in before.headers["cache-control"]
        retitle(folder, some["title"], "Retitled Before the Purge")
        report = load_paths(store, [folder], api_settings)
        assert report.ok and report.updated == 1
        # The loader has written and would purge the CDN now; the CDN's next
        # miss asks the worker, within the two intervals it trusts its marker.
        refill = send(client, ask)
    shared = "public" in refill.headers["cache-control"]
    assert refill.json()["data"]["article"]["title"] == "Retitled Before the Purge" or not shared, (
        refill.headers["cache-control"],
        refill.text,
    )


def test_a_database_replaced_with_as_many_changes_drops_what_was_kept(
    store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    """The marker counts changes, and a database loaded afresh counts from
    nothing again: replaced between two reads by one that took as many
    writes, it reads the same, though none of its articles need be."""
    with titles_kept(store, api_settings, tmp_path) as (folder, app, client, before):
        old = sorted(before)[0]
        # Another database in its place: the same articles but one, loaded afresh.
        for name in store.db.list_collection_names():
            store.db.drop_collection(name)
        retitle(folder, old, "In the Database That Replaced It")
        assert load_paths(store, [folder], api_settings).ok
        hear(client, app)
        assert "In the Database That Replaced It" in titles(client)


def test_an_answer_is_kept_no_longer_than_the_max_age_from_when_its_data_was_read(
    loaded: Store, api_settings: Settings
) -> None:
    """An answer slow to make holds what the store said when making began:
    its age counts from then, not from when it was done."""
    clock = Clock()
    settings = keeping(api_settings)
    app = create_app(settings, loaded)
    execute = view(app).schema.pipeline.run
    make = execute.make

    async def slow(op: Any) -> Any:
        made = await make(op)
        clock.now += settings.cache_max_age - 0.5  # as if reading took that long
        return made

    execute.make = slow  # type: ignore[method-assign]
    with served(app, clock) as client:
        titles(client)
        hear(client, app)  # the marker trusted again, now
        clock.now += 1.0  # past the max age since the titles were read
        titles(client)
        assert kept_count(client) == 0


def streamed_and_keyed(client: TestClient, token: str, sid: str) -> list[Any]:
    """What a client reads of FRONT and MOBILE asked by SSE, and by GET and
    POST with an API key, three times each (a query over WebSocket is refused
    by ``SubscriptionsOverWebSocket``, before any answer)."""
    events = {"accept": "text/event-stream"}
    keyed = {"Authorization": f"Bearer {token}"}
    mobile = {"query": MOBILE, "variables": {"id": sid}}
    got: list[Any] = []
    for _ in range(3):
        got.append(seen(client.post("/graphql", json={"query": FRONT}, headers=events)))
        got.append(seen(client.post("/graphql", json=mobile, headers=events)))
        got.append(seen(send(client, q(FRONT, method="GET", headers=keyed))))
        got.append(seen(send(client, q(MOBILE, variables={"id": sid}, headers=keyed))))
    return got


def test_sse_and_api_key_queries_are_answered_alike_whether_or_not_kept(
    loaded: Store, api_settings: Settings
) -> None:
    token, _ = keys.create(loaded.keys, "probe")
    sid = story_id(loaded)
    on = keeping(api_settings)
    with TestClient(create_app(dataclasses.replace(on, answer_cache_bytes=0), loaded)) as client:
        made = streamed_and_keyed(client, token, sid)
    app = create_app(on, loaded)
    with served(app) as client:
        given = streamed_and_keyed(client, token, sid)
        assert kept_count(client) >= 4 * 2, kept_count(client)
    for i, (a, b) in enumerate(zip(given, made, strict=True)):
        assert a == b, i
