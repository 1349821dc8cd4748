"""Answers kept and given again (api/operation/answered.py), on both engines.

A kept answer is the made one, byte for byte, headers and ``extensions.cost``
included, on every way in; every step of the pipeline still runs before it
(a planted refusal, a spent budget); a write the loader announces drops it,
and one it does not is outlived by no more than the longest any cache may
keep an answer; the admin's answers are never another's; what clients can
make it hold is bounded in bytes; and a store that stops telling what
changed makes it give nothing. The rest of the suite makes every answer (its
apps keep none: tests/conftest.py), so its assertions on store calls and on
reading what a write just changed hold as they were.

Time here is a clock the test moves: each test decides when the marker was
read (:func:`hear`), so what is kept does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import ExecutionResult, GraphQLError
from starlette.applications import Starlette
from starlette.testclient import TestClient
from strawberry.types.graphql import OperationType

from api.app import create_app
from api.bounded import ENTRY_BYTES, deep_size
from api.data.changes import Changes, Marker
from api.operation.answered import AnswerCache
from api.operation.request import Operation, Refused, Request
from api.operation.schema import build_schema
from api.schema.context import Context
from core.config import ConfigError, Settings
from core.indexes import LOADER
from core.news import CHANGED_FIELD, EPOCH_FIELD, MARKER_ID
from core.store import Store
from loaders import load_paths
from tests.api.fixtures import ADMIN_TOKEN, refilled_at_once
from tests.api.test_pipeline import FRONT, MOBILE, story_id
from tests.api.test_pipeline_caches import (
    UNPUBLISHED,
    by_hash,
    mixed_requests,
    q,
    send,
    view,
    with_hash,
)
from tests.api.test_pipeline_caches import Request as Sent
from tests.articles import EXAMPLES

#: What a client or a cache reads of an answer besides its body.
HEADERS = (
    "content-type",
    "content-length",
    "cache-control",
    "etag",
    "vary",
    "retry-after",
    "surrogate-key",
    "cache-tag",
    "ratelimit",
    "ratelimit-policy",
)
TITLES = "{ articles(first: 50) { nodes { id title } } }"


def keeping(settings: Settings, max_bytes: int = 16_000_000) -> Settings:
    return dataclasses.replace(
        refilled_at_once(settings), answer_cache_bytes=max_bytes, compiled=True
    )


def cache_of(app: Starlette) -> AnswerCache:
    cache = view(app).schema.caches.answers
    assert cache is not None, "the app keeps no answers"
    return cache


class Clock:
    """Time that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def served(app: Starlette, clock: Clock | None = None) -> Iterator[TestClient]:
    """A client of ``app``, whose kept answers follow ``clock``, with the
    store's change marker read."""
    cache = cache_of(app)
    cache.clock = clock or Clock()
    with TestClient(app) as client:
        hear(client, app)
        yield client


def hear(client: TestClient, app: Starlette) -> Marker:
    """The marker read now (the app's first query makes its reader): what is
    made from here on is kept, until the marker moves."""
    cache = cache_of(app)
    if cache.changes is None:
        client.post("/graphql", json={"query": "{ __typename }"})
    changes = cache.changes
    assert changes is not None
    assert client.portal is not None
    client.portal.call(changes.read)
    assert changes.value is not None and not changes.failed
    return changes.value


def kept_count(client: TestClient) -> float:
    """How many answers the app gave from what it kept (its metrics)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('newsgraph_graphql_execution_total{mode="cached"}'):
            return float(line.split()[-1])
    return 0.0


def seen(response: Any) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "headers": {h: response.headers.get(h) for h in HEADERS},
        "text": response.text,
    }


def answers(app: Starlette, requests: list[Sent], repeat: int = 3) -> tuple[list[Any], float]:
    keeps = view(app).schema.caches.answers is not None
    with served(app) if keeps else TestClient(app) as client:
        got = [seen(send(client, r)) for r in requests for _ in range(repeat)]
        return got, kept_count(client)


def test_every_way_in_is_answered_alike_whether_or_not_its_answer_is_kept(
    loaded: Store, api_settings: Settings
) -> None:
    sid = story_id(loaded)
    requests = [
        *mixed_requests(sid),
        with_hash(FRONT),
        by_hash(FRONT),
        by_hash(FRONT, method="GET"),
        q(MOBILE, variables={"id": sid}, admin=True),
        q(FRONT, headers={"accept-encoding": "gzip"}),
    ]
    on = keeping(api_settings)
    made, _ = answers(create_app(dataclasses.replace(on, answer_cache_bytes=0), loaded), requests)
    given, kept = answers(create_app(on, loaded), requests)
    for i, (a, b) in enumerate(zip(given, made, strict=True)):
        assert a == b, f"request {i // 3}, sight {i % 3 + 1}: {requests[i // 3]}"
    # Each query answered whole with data and no error was kept at first
    # sight and given at the next two: a dozen of them at least.
    assert kept >= 24, kept


def test_a_kept_answer_says_what_making_it_took_and_is_charged_alike(
    loaded: Store, api_settings: Settings
) -> None:
    app = create_app(keeping(api_settings), loaded)
    with served(app) as client:
        first = client.post("/graphql", json={"query": FRONT}).json()
        again = client.post("/graphql", json={"query": FRONT}).json()
        assert kept_count(client) == 1
    assert again == first
    assert first["extensions"]["cost"]["actual"]["storeCalls"] >= 1


def test_every_step_still_runs_before_a_kept_answer(loaded: Store, api_settings: Settings) -> None:
    app = create_app(keeping(api_settings), loaded)
    refusing = []

    def planted(op: Any) -> None:
        if refusing:
            raise Refused(GraphQLError("planted"))

    pipeline = view(app).schema.pipeline
    with served(app) as client:
        client.post("/graphql", json={"query": FRONT})
        client.post("/graphql", json={"query": FRONT})
        assert kept_count(client) == 1
        pipeline.steps.insert(0, planted)
        refusing.append(True)
        for way in ("POST", "GET"):
            refused = send(client, q(FRONT, method=way)).json()
            assert refused.get("data") is None, way
            assert refused["errors"][0]["message"] == "planted", way
        assert kept_count(client) == 1


def test_a_spent_budget_is_refused_though_the_answer_is_kept(
    loaded: Store, api_settings: Settings
) -> None:
    with served(create_app(keeping(api_settings), loaded)) as client:
        price = client.post("/graphql", json={"query": FRONT}).json()["extensions"]["cost"]
    # Room for a few answers (each draws its price, and is given back what it
    # did not use), refilled far slower than the test asks.
    burst = price["requestedQueryCost"] + 3 * price["actualQueryCost"]
    settings = dataclasses.replace(
        keeping(api_settings), anonymous_points_per_s=1, anonymous_burst=burst
    )
    app = create_app(settings, loaded)
    with served(app) as client:
        statuses = [client.post("/graphql", json={"query": FRONT}).status_code for _ in range(40)]
        assert kept_count(client) >= 1
    assert statuses[:2] == [200, 200] and 429 in statuses, statuses
    refused = statuses.index(429)
    assert all(s == 429 for s in statuses[refused:]), statuses


def test_the_admins_answer_is_never_given_to_anyone_else(
    loaded: Store, api_settings: Settings
) -> None:
    app = create_app(keeping(api_settings), loaded)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with served(app) as client:
        for _ in range(2):  # made, then kept
            hidden = client.post("/graphql", json={"query": UNPUBLISHED}, headers=admin).json()
        assert hidden["data"]["articles"]["totalCount"] > 0
        assert kept_count(client) == 1
        for way in ("POST", "GET"):
            for _ in range(2):
                other = send(client, q(UNPUBLISHED, method=way)).json()
                assert other["data"]["articles"] == {"totalCount": 0, "nodes": []}, way


def corpus(tmp_path: Path) -> Path:
    here = tmp_path / "articles"
    shutil.copytree(EXAMPLES, here)
    return here


def titles(client: TestClient) -> set[str]:
    answer = client.post("/graphql", json={"query": TITLES}).json()
    return {node["title"] for node in answer["data"]["articles"]["nodes"]}


def retitle(folder: Path, old: str, new: str) -> None:
    for path in folder.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        if f'title: "{old}"' in text:
            path.write_text(text.replace(f'title: "{old}"', f'title: "{new}"', 1), "utf-8")
            return
    raise AssertionError(f"no article titled {old!r}")


@contextlib.contextmanager
def titles_kept(
    store: Store, settings: Settings, tmp_path: Path
) -> Iterator[tuple[Path, Starlette, TestClient, set[str]]]:
    """A copy of the example articles loaded, and an app that keeps answers
    with its answer to :data:`TITLES` kept: the folder, the app, its client
    and the titles."""
    folder = corpus(tmp_path)
    assert load_paths(store, [folder], settings).ok
    app = create_app(keeping(settings), store)
    with served(app) as client:
        before = titles(client)
        assert titles(client) == before and kept_count(client) == 1
        yield folder, app, client, before


def test_a_write_the_loader_announces_drops_every_kept_answer(
    store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    with titles_kept(store, api_settings, tmp_path) as (folder, app, client, before):
        old = sorted(before)[0]
        retitle(folder, old, "A Title the Loader Wrote")
        report = load_paths(store, [folder], api_settings)
        assert report.ok and report.updated == 1
        # Until this worker reads the marker again, the answer kept is given:
        # at most two intervals (the setting) after the write.
        assert titles(client) == before
        hear(client, app)
        after = titles(client)
        assert after == before - {old} | {"A Title the Loader Wrote"}
        assert cache_of(app).marker == hear(client, app)


def test_a_write_no_loader_announced_is_outlived_by_no_kept_answer_past_the_max_age(
    loaded: Store, api_settings: Settings
) -> None:
    clock = Clock()
    settings = keeping(api_settings)
    app = create_app(settings, loaded)
    with served(app, clock) as client:
        before = titles(client)
        titles(client)
        some = loaded.articles.find_one({"published": True})
        assert some is not None and some["title"] in before
        loaded.articles.update_one({"_id": some["_id"]}, {"$set": {"title": "Written by Hand"}})
        assert titles(client) == before  # the marker did not move
        clock.now += settings.cache_max_age + 1
        hear(client, app)
        assert "Written by Hand" in titles(client)


def test_what_clients_make_it_keep_is_bounded_in_bytes(
    loaded: Store, api_settings: Settings
) -> None:
    bound = 40_000
    app = create_app(keeping(api_settings, bound), loaded)
    cache = cache_of(app)
    query = """query($n: Int!, $q: Int) {
      articles(first: $n, filter: {minQuality: $q}) { nodes { id title } } }"""
    with served(app) as client:
        for n in range(1, 13):
            for least in range(0, 70, 10):
                body = {"query": query, "variables": {"n": n, "q": least}}
                assert client.post("/graphql", json=body).status_code == 200
                assert cache.bytes <= bound
        assert len(cache.answers) > 10
        # One answer may take a sixteenth of the bound at most: a larger one
        # is made each time, and evicts nothing.
        large = "{ articles(first: 12) { nodes { id title excerpt webUrl topics { name } } } }"
        held = dict(cache.answers.items())
        for _ in range(2):
            client.post("/graphql", json={"query": large})
        assert dict(cache.answers.items()) == held


def test_an_answer_with_an_error_or_in_parts_is_not_kept(
    loaded: Store, api_settings: Settings
) -> None:
    app = create_app(keeping(api_settings), loaded)
    multipart = {"accept": "multipart/mixed"}
    deferring = "{ articles(first: 2) { nodes { id ... @defer { title } } } }"
    with served(app) as client:
        # Made whole for a client that reads no parts: kept, but only for
        # such clients; one that reads parts is still sent parts.
        for _ in range(2):
            client.post("/graphql", json={"query": deferring})
        assert kept_count(client) == 1
        for _ in range(3):
            client.post("/graphql", json={"query": "{ articles(first: 101) { totalCount } }"})
            deferred = client.post(
                "/graphql",
                json={"query": deferring},
                headers=multipart,
            )
            assert deferred.headers["content-type"].startswith("multipart/mixed")
        assert kept_count(client) == 1
        assert len(cache_of(app).answers) == 1


def test_an_answer_with_data_and_an_error_is_not_kept() -> None:
    """No query of this schema answers both (its fields that fail are not
    null), so the rule is shown on the cache itself: an error may be the
    moment's (a timeout, a store that did not answer)."""

    async def run() -> None:
        cache = AnswerCache(1_000_000, 1.0, 60.0, Clock())
        request = Request("{ articles { totalCount } }", context=Context(Failing(), False))  # type: ignore[arg-type]
        op = Operation(request)
        op.query, op.kind = request.query, OperationType.QUERY
        gateway = request.context.gateway
        assert not cache.find(op, gateway).key  # the marker not read yet: nothing kept
        assert cache.changes is not None
        await cache.changes.read()
        lookup = cache.find(op, gateway)
        assert lookup.key is not None and lookup.answer is None
        cache.keep(lookup, op, ExecutionResult({"articles": None}, [GraphQLError("timeout")]))
        assert len(cache.answers) == 0
        cache.keep(lookup, op, ExecutionResult({"articles": {"totalCount": 3}}))
        assert len(cache.answers) == 1
        given = cache.find(op, gateway).answer
        assert given is not None and given.data == {"articles": {"totalCount": 3}}
        await cache.close()

    asyncio.run(run())


class Failing:
    """A store that answers the marker, then stops answering."""

    def __init__(self) -> None:
        self.down = False
        self.changed = 7

    async def find_patiently(
        self, collection: str, query: Any, projection: Any = None
    ) -> list[Any]:
        assert collection == LOADER and query == {"_id": MARKER_ID}
        assert projection == {CHANGED_FIELD: 1, EPOCH_FIELD: 1}
        if self.down:
            raise OSError("the store does not answer")
        return [{"_id": MARKER_ID, CHANGED_FIELD: self.changed, EPOCH_FIELD: "e"}]


def test_a_store_that_stops_answering_makes_nothing_kept_trusted_within_two_intervals() -> None:
    async def run() -> None:
        store, clock = Failing(), Clock()
        changes = Changes(store, 1.0, clock)  # type: ignore[arg-type]
        assert changes.current() is None  # never read: nothing trusted; a read starts
        await asyncio.sleep(0.01)
        assert changes.current() == ("e", 7)
        store.down = True
        clock.now += 1.0  # an interval: a read starts, fails
        assert changes.current() == ("e", 7)
        await asyncio.sleep(0.01)
        assert changes.failed
        clock.now += 0.99
        assert changes.current() == ("e", 7)  # read within two intervals
        clock.now += 0.02
        assert changes.current() is None  # not any more
        await asyncio.sleep(0.01)
        store.down, store.changed = False, 8
        clock.now += 1.0
        assert changes.current() is None
        await asyncio.sleep(0.01)
        assert changes.current() == ("e", 8) and not changes.failed
        await changes.close()

    asyncio.run(run())


def test_an_answer_made_while_the_marker_moved_is_not_kept(
    loaded: Store, api_settings: Settings
) -> None:
    app = create_app(keeping(api_settings), loaded)
    cache = cache_of(app)
    keep = cache.keep

    def moved_meanwhile(lookup: Any, op: Any, result: Any) -> None:
        assert cache.changes is not None
        epoch, count = cache.changes.value or ("", 0)
        cache.changes.value = (epoch, count + 1)  # a write landed as it was made
        keep(lookup, op, result)

    with served(app) as client:
        cache.keep = moved_meanwhile  # type: ignore[method-assign]
        client.post("/graphql", json={"query": FRONT})
        assert len(cache.answers) == 0


def test_the_size_kept_answers_are_counted_at_is_near_what_they_hold(
    loaded: Store, api_settings: Settings
) -> None:
    """Estimated from their JSON (measuring each would take 50 times as long):
    never less than what they hold by more than a fifth."""
    sid = story_id(loaded)
    app = create_app(keeping(api_settings), loaded)
    cache = cache_of(app)
    with served(app) as client:
        for body in (
            {"query": FRONT},
            {"query": MOBILE, "variables": {"id": sid}},
            {"query": TITLES},
            {"query": "{ articles { totalCount } }"},
        ):
            client.post("/graphql", json=body)
        assert len(cache.answers) == 4
        for key, kept in cache.answers.items():
            held = deep_size(kept.data) + deep_size(key) + ENTRY_BYTES
            assert 0.8 * held <= kept.size <= 3 * held, (key, kept.size, held)


def test_no_answers_are_kept_with_zero_bytes_and_none_without_a_positive_check() -> None:
    off = Settings.from_env({"NEWSGRAPH_ANSWER_CACHE_BYTES": "0"})
    assert off.answer_cache_bytes == 0
    assert build_schema(off).caches.answers is None
    assert build_schema(Settings.from_env({})).caches.answers is not None  # kept by default
    for wrong in ("-1", "x"):
        with pytest.raises(ConfigError, match="NEWSGRAPH_ANSWER_CACHE_BYTES"):
            Settings.from_env({"NEWSGRAPH_ANSWER_CACHE_BYTES": wrong})
    with pytest.raises(ConfigError, match="NEWSGRAPH_ANSWER_CACHE_CHECK_MS must be positive"):
        Settings.from_env({"NEWSGRAPH_ANSWER_CACHE_CHECK_MS": "0"})
