"""Attacks on the pipeline's caches: requests for which an operation answered
with its work found in the caches (document, price, plan, checked arguments)
might be answered differently from one seen for the first time, or let a
client past a limit a first sight enforces.

Two kinds of comparison:

* over HTTP, two apps on one store, the same sequence of requests sent to
  each; one app's schema forgets its caches before every operation (every
  request a first sight). Every response (status, headers that matter, body),
  the access log and /metrics must be the same;
* at the schema, two schemas (``tests/api/test_pipeline.py``'s ``execute``),
  for what HTTP cannot reach or for races set up by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.app import create_app
from api.data.gateway import Gateway
from api.data.slots import StoreSlots
from api.execution.plan import Fallback
from api.http.view import GraphQLApp
from api.operation.schema import Schema
from api.schema.context import Context
from api.telemetry import stats as observe
from core.config import Settings
from core.store import Store
from tests.api.fixtures import ADMIN_TOKEN, refilled_at_once
from tests.api.test_pipeline import (
    FRONT,
    MOBILE,
    TWO,
    execute,
    first_sight_schema,
    forgetful,
    schema_for,
    sent,
    story_id,
)

# -- harness ----------------------------------------------------------------------


def view(app: Starlette) -> GraphQLApp:
    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        if isinstance(endpoint, GraphQLApp):
            return endpoint
    raise AssertionError("no GraphQL view")


#: Response headers a client or cache acts on (not Date, not timings).
HEADERS = ("content-type", "cache-control", "etag", "vary", "retry-after", "content-length")


def response_of(response: Any) -> dict[str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return {
        "status": response.status_code,
        "headers": {h: response.headers.get(h) for h in HEADERS},
        "body": body,
        # Byte for byte: an ETag is a hash of these bytes.
        "text": response.text,
    }


def metrics_of(client: TestClient) -> list[str]:
    """The counters of /metrics (latency histograms vary run to run, and so
    does where a read was answered: a loop thread's first read opens its
    connection in a worker thread, and a cold app's loop may be another's)."""
    text = client.get("/metrics").text
    keep = []
    for line in text.splitlines():
        if line.startswith("#") or "_seconds" in line or "_created" in line:
            continue
        if line.startswith("newsgraph_store_on_loop"):
            continue
        keep.append(line)
    return keep


def access_lines(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    lines = []
    for record in records:
        if record.name != "newsgraph.access":
            continue
        line = json.loads(record.getMessage())
        line.pop("ts")
        line.pop("ms")
        lines.append(line)
    return lines


def api_records(records: list[logging.LogRecord]) -> list[tuple[str, int, bool]]:
    return [
        (r.getMessage(), r.levelno, bool(r.exc_info)) for r in records if r.name == "newsgraph.api"
    ]


Request = dict[str, Any]


def send(client: TestClient, request: Request) -> Any:
    method = request.get("method", "POST")
    headers = dict(request.get("headers", {}))
    if request.get("admin"):
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    if method == "GET":
        params = {}
        for key, value in request["body"].items():
            if value is None:
                continue
            params[key] = value if isinstance(value, str) else json.dumps(value)
        return client.get("/graphql", params=params, headers=headers)
    if "raw" in request:
        headers.setdefault("content-type", "application/json")
        return client.post("/graphql", content=request["raw"], headers=headers)
    return client.post("/graphql", json=request["body"], headers=headers)


def both_ways(
    settings: Settings,
    store: Store,
    requests: list[Request],
    caplog: pytest.LogCaptureFixture,
    repeat: int = 3,
    gateway: type[Gateway] = Gateway,
    other: Callable[[Starlette], object] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each request sent ``repeat`` times in turn to an app as made and to one
    changed by ``other`` (by default: it forgets its caches before each
    operation), each over a ``gateway`` to ``store``: what each app answered,
    logged and counted."""
    outcomes = []
    # Each app starts with no registrations: the store's, which the first
    # would leave to the second, go before each.
    forget_registrations = store.persisted.delete_many
    # No collector pauses: a full collection in a process that has run much of
    # the suite can outlast a short deadline, and the answers would differ by
    # timing alone.
    gc.disable()
    try:
        for warm in (True, False):
            forget_registrations({"used": {"$gte": 0}})  # all, on the used index
            app = create_app(
                dataclasses.replace(refilled_at_once(settings), compiled=True),
                # As create_app makes its own: the settings' slots.
                gateway=gateway(store, settings.store_op_timeout_ms, slots_for(settings)),
            )
            if not warm:
                (other or (lambda made: forgetful(view(made).schema)))(app)
            caplog.clear()
            answers = []
            with caplog.at_level(logging.DEBUG), TestClient(app) as client:
                for request in requests:
                    for _ in range(repeat):
                        answers.append(response_of(send(client, request)))
                records = list(caplog.records)
                counters = metrics_of(client)
            outcomes.append(
                {
                    "answers": answers,
                    "access": access_lines(records),
                    "api": api_records(records),
                    "metrics": counters,
                }
            )
    finally:
        gc.enable()
    return outcomes[0], outcomes[1]


def slots_for(settings: Settings) -> StoreSlots:
    return StoreSlots(settings.store_concurrency, settings.store_queue_ms)


def assert_alike(warm: dict[str, Any], cold: dict[str, Any]) -> None:
    for i, (a, b) in enumerate(zip(warm["answers"], cold["answers"], strict=True)):
        assert a == b, f"answer {i}"
    assert warm["access"] == cold["access"]
    assert warm["api"] == cold["api"]
    assert warm["metrics"] == cold["metrics"]


def q(query: str | None, **more: Any) -> Request:
    body: dict[str, Any] = {"query": query}
    for key in ("variables", "operationName", "extensions"):
        if key in more:
            body[key] = more.pop(key)
    return {"body": body, **more}


def digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def by_hash(query: str, **more: Any) -> Request:
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest(query)}}
    return q(None, extensions=extensions, **more)


def with_hash(query: str, **more: Any) -> Request:
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest(query)}}
    return q(query, extensions=extensions, **more)


# -- over HTTP: ordinary requests, each sent three times ------------------------

UNPUBLISHED = "{ articles(first: 50, filter: {published: false}) { totalCount nodes { id } } }"
MULTI = """query A { articles(first: 2) { nodes { id } } }
query B { providers(first: 2) { nodes { name } } }
subscription S { articlePublished { id } }"""
DEFER = "{ articles(first: 2) { nodes { id ... @defer { title } } } }"
INTROSPECT = "{ __schema { queryType { name } } __typename }"


def mixed_requests(sid: str) -> list[Request]:
    """Ordinary and malformed requests of every kind, ``sid`` a story's id."""
    return [
        q(FRONT),
        q(FRONT, admin=True),
        q(FRONT, method="GET"),
        q(MOBILE, variables={"id": sid}),
        q(MOBILE, variables={"id": sid}, method="GET"),
        q(MOBILE, variables={"id": 5}),
        q(MOBILE, variables={"id": None}),
        q(MOBILE, variables={}),
        q(MOBILE, variables={"id": sid, "extra": 1}),
        q(TWO, operationName="A"),
        q(TWO, operationName="B", variables={"n": 2}),
        q(TWO, operationName="B", variables={"n": "x"}),
        q(TWO),  # no name, two operations
        q(TWO, operationName="C"),
        q(TWO, operationName=""),
        q(MULTI, operationName="A"),
        q(MULTI, operationName="A", method="GET"),
        q(MULTI, operationName="S"),
        q(MULTI, operationName="S", method="GET"),
        q(UNPUBLISHED),
        q(UNPUBLISHED, admin=True),
        q(UNPUBLISHED, method="GET"),
        q(UNPUBLISHED, method="GET", admin=True),
        q(DEFER),
        q(DEFER, headers={"accept": "application/graphql-response+json"}),
        q(INTROSPECT),
        q(INTROSPECT, method="GET"),
        q("{ articles(first: 101) { totalCount } }"),
        q(
            "{ articles(first: 101) { totalCount } }",
            headers={"accept": "application/graphql-response+json"},
        ),
        q(
            "query($n: Int!) { articles(first: $n) { totalCount } }",
            variables={"n": "x"},
            headers={"accept": "application/graphql-response+json"},
        ),
        q('{ article(id: "nope") { title } }'),
        q("subscription { articlePublished { id } }"),
        q("{ articles(first: 2) { nodes { id } } }", headers={"accept": "multipart/mixed"}),
        q(FRONT, headers={"accept": "application/graphql-response+json"}),
        # Malformed requests (strawberry's view refuses each before executing).
        {"raw": json.dumps([{"query": FRONT}, {"query": FRONT}])},
        q(FRONT, extensions=["persistedQuery"]),
        q(FRONT, extensions="persistedQuery"),
        q(FRONT, extensions=["persistedQuery"], method="GET"),
        q(FRONT, variables=[1]),
        q(FRONT, variables="x", method="GET"),
        q(FRONT, operationName=5),
        q(FRONT, operationName="x" * 201),
        q(5),
        q(None),
    ]


def test_over_http_a_mix_of_requests_is_answered_logged_and_counted_alike(
    loaded: Store, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    sid = story_id(loaded)
    requests = mixed_requests(sid)
    warm, cold = both_ways(api_settings, loaded, requests, caplog)
    assert_alike(warm, cold)


def test_over_http_persisted_queries_are_answered_alike(
    loaded: Store, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    latest = "query Latest { articles(first: 2) { nodes { title } } }"
    other = "{ providers(first: 1) { nodes { name } } }"
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    upper = {"persistedQuery": {"version": 1, "sha256Hash": digest(other).upper()}}
    requests: list[Request] = [
        by_hash(latest),  # not found
        q(latest),  # cached valid, not registered
        by_hash(latest, method="GET"),  # still not found
        with_hash(latest),  # registers
        by_hash(latest),
        by_hash(latest, method="GET"),
        by_hash(latest, operationName="Latest"),
        by_hash(latest, operationName="Nope"),
        q(latest, extensions=wrong),
        q(other),
        q(other, extensions=upper),
        q(None, extensions=upper),
        q(None, extensions={"persistedQuery": {"version": 2, "sha256Hash": digest(other)}}),
        q(other, extensions={"persistedQuery": None}),
        q(other, extensions={"persistedQuery": False}),
        q(other, extensions={"other": 1}),
    ]
    warm, cold = both_ways(api_settings, loaded, requests, caplog)
    assert_alike(warm, cold)


def test_over_http_with_persisted_queries_switched_off(
    loaded: Store, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    off = dataclasses.replace(api_settings, persisted_queries=False)
    requests: list[Request] = [q(FRONT), with_hash(FRONT), by_hash(FRONT)]
    warm, cold = both_ways(off, loaded, requests, caplog)
    assert_alike(warm, cold)


def test_over_http_with_introspection_switched_off(
    loaded: Store, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    off = dataclasses.replace(api_settings, introspection=False)
    requests: list[Request] = [
        q(FRONT),
        q(INTROSPECT),
        q("{ __typename articles(first: 1) { nodes { __typename id } } }"),
        q('{ __type(name: "Article") { name } }'),
    ]
    warm, cold = both_ways(off, loaded, requests, caplog)
    assert_alike(warm, cold)
    refused = warm["answers"][3:6] + warm["answers"][9:12]
    assert all("errors" in a["body"] for a in refused), "introspection answered while off"
    assert "errors" not in warm["answers"][8]["body"]


# -- at the schema: races, and what HTTP does not let through ---------------------


def test_a_hash_evicted_while_its_plan_falls_back_is_still_answered(
    loaded: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hash-only request whose plan falls back while another client's
    registration evicts the hash (a registry of one entry here; any full
    registry under a flood of new hashes alike). The hash is resolved once,
    before anything runs: ordinary execution answers the query it named, not
    PersistedQueryNotFound after the plan already ran and spent its store calls."""
    small = dataclasses.replace(settings, persisted_queries_max=1)
    query = "query Latest { articles(first: 2) { nodes { title } } }"
    other = "{ providers(first: 1) { nodes { name } } }"
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": digest(query)}}
    other_hashed = {"persistedQuery": {"version": 1, "sha256Hash": digest(other)}}

    def run(schema: Schema) -> ExecutionResultLike:
        # Both cached valid; only `query` registered: the registry's one entry.
        execute(schema, loaded, other)
        execute(schema, loaded, query, extensions=hashed)
        assert len(schema.persisted) == 1
        plans = schema_plans(schema)
        original = plans.execute
        registered = asyncio.Event()

        async def slow_then_falls_back(*args: Any, **kwargs: Any) -> Any:
            if args[1] != query:
                return await original(*args, **kwargs)
            await original(*args, **kwargs)
            await registered.wait()  # another client registers meanwhile
            raise Fallback("planted: several field errors")

        monkeypatch.setattr(plans, "execute", slow_then_falls_back)

        answer, stats = race_by_hash(
            schema, lambda: Gateway(loaded, 5000), hashed, other, other_hashed, registered
        )
        monkeypatch.undo()
        return answer, stats

    cold = first_sight_schema(small)
    expected, expected_stats = run(cold)
    warm, warm_stats = run(schema_for(small))
    assert expected.data and expected.data["articles"]["nodes"], expected.errors
    assert expected_stats.executions == ["fallback"]
    assert sent(warm) == sent(expected)
    assert warm_stats.executions == expected_stats.executions


def race_by_hash(
    schema: Schema,
    gateway: Callable[[], Gateway],
    hashed: dict[str, Any],
    other: str,
    other_hashed: dict[str, Any],
    registered: asyncio.Event | None = None,
) -> tuple[Any, observe.RequestStats]:
    """A request by hash alone while another client registers ``other`` under
    its own hash (setting ``registered`` once it has): the first request's
    answer and stats."""

    async def both() -> tuple[Any, observe.RequestStats]:
        stats = observe.RequestStats()

        async def by_hash_request() -> Any:
            token = observe._current.set(stats)
            try:
                return await schema.execute(
                    None, context_value=Context(gateway()), operation_extensions=hashed
                )
            finally:
                observe._current.reset(token)

        async def another_client() -> None:
            await asyncio.sleep(0)
            await schema.execute(
                other, context_value=Context(gateway()), operation_extensions=other_hashed
            )
            if registered is not None:
                registered.set()

        answer, _ = await asyncio.gather(by_hash_request(), another_client())
        return answer, stats

    return asyncio.run(both())


ExecutionResultLike = tuple[Any, observe.RequestStats]


def schema_plans(schema: Schema) -> Any:
    """The schema's plan cache."""
    assert schema.caches.plans is not None
    return schema.caches.plans


def test_extensions_that_are_not_an_object_are_refused_alike_at_each_sight(
    loaded: Store, settings: Settings
) -> None:
    """Not reachable over HTTP (strawberry's view refuses them), but the
    schema's own API: it answers with an error at each sight, never raises."""
    schema = schema_for(settings)
    cold = first_sight_schema(settings)
    for extensions in (["persistedQuery"], "persistedQuery", 5):
        execute(schema, loaded, FRONT)
        expected, _ = execute(cold, loaded, FRONT, extensions=extensions)  # type: ignore[arg-type]
        warm, _ = execute(schema, loaded, FRONT, extensions=extensions)  # type: ignore[arg-type]
        assert sent(warm) == sent(expected)


def test_allowed_operation_types_given_as_a_one_shot_iterable(
    loaded: Store, settings: Settings
) -> None:
    """``allowed_operation_types`` is typed ``Iterable``: a generator is read
    once, and the operation still runs (here by ordinary execution:
    introspection)."""
    from strawberry.types.graphql import OperationType

    query = "{ __schema { queryType { name } } }"
    outcomes = []
    for warm in (True, False):
        schema = schema_for(settings) if warm else first_sight_schema(settings)
        execute(schema, loaded, query)

        async def run(schema: Schema = schema) -> Any:
            return await schema.execute(
                query,
                context_value=Context(Gateway(loaded, 5000)),
                allowed_operation_types=(t for t in (OperationType.QUERY,)),
            )

        try:
            outcomes.append(sent(asyncio.run(run())))
        except Exception as error:
            outcomes.append(repr(error))
    assert outcomes[0] == outcomes[1]


def test_two_requests_racing_one_falling_back_each_counted_as_it_ran(
    loaded: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request falling back while another runs: each is counted as it ran
    (the fallback's state is the operation's, never shared)."""
    schema = schema_for(settings)
    slow = "{ articles(first: 3) { nodes { id title } } }"
    execute(schema, loaded, slow)
    execute(schema, loaded, FRONT)
    plans = schema_plans(schema)
    original = plans.execute
    gate = asyncio.Event()

    async def planted(*args: Any, **kwargs: Any) -> Any:
        if args[1] == slow:
            await original(*args, **kwargs)
            raise Fallback("planted")
        await gate.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(plans, "execute", planted)

    async def request(query: str, stats: observe.RequestStats) -> Any:
        token = observe._current.set(stats)
        try:
            result = await schema.execute(query, context_value=Context(Gateway(loaded, 5000)))
        finally:
            observe._current.reset(token)
        if query == slow:
            gate.set()
        return result

    async def both() -> Any:
        a, b = observe.RequestStats(), observe.RequestStats()
        results = await asyncio.gather(request(slow, a), request(FRONT, b))
        return results, a, b

    (slow_answer, front), a, b = asyncio.run(both())
    assert a.executions == ["fallback"] and b.executions == ["compiled"]
    assert not slow_answer.errors and not front.errors


class Latent(Gateway):
    """The store over a network: each call yields to the event loop first."""

    async def find(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.01)
        return await super().find(*args, **kwargs)


def test_a_hash_evicted_while_a_real_fallback_runs_is_still_answered(
    loaded: Store, settings: Settings
) -> None:
    """The same race with nothing planted: stored documents that make a plan
    fall back (a heat over GraphQL's Int, a provider that is not an object:
    several field errors, ordered by ordinary execution), and a second client
    registering its own hash while the first request's store call is out
    (the embedded engine answers inline: a store with latency, as over the
    wire, is one that yields to the event loop while it answers)."""
    from tests.api.test_compiled import odd_documents

    loaded.articles.insert_many(odd_documents())
    small = dataclasses.replace(settings, persisted_queries_max=1)
    query = "{ articles(first: 5) { nodes { heat provider { name } } } }"
    other = "{ providers(first: 1) { nodes { name } } }"
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": digest(query)}}
    other_hashed = {"persistedQuery": {"version": 1, "sha256Hash": digest(other)}}

    def run(schema: Schema) -> tuple[Any, observe.RequestStats]:
        execute(schema, loaded, other)
        execute(schema, loaded, query, extensions=hashed)  # registered: the only entry

        return race_by_hash(schema, lambda: Latent(loaded, 5000), hashed, other, other_hashed)

    cold = first_sight_schema(small)
    expected, expected_stats = run(cold)
    warm, warm_stats = run(schema_for(small))
    assert expected_stats.executions == ["fallback"]
    assert expected.data is not None or expected.errors, expected
    assert [e.message for e in expected.errors or []] != ["PersistedQueryNotFound"]
    assert sent(warm) == sent(expected)
    assert warm_stats.executions == expected_stats.executions


# -- over HTTP: the store failing mid-request -------------------------------------


def calls_so_far() -> int:
    stats = observe.current_stats()
    return 0 if stats is None else stats.store_calls


class DownAfterFirst(Gateway):
    """An outage from each request's second store call on."""

    async def _dispatch(self, call: Any) -> Any:
        from core.store import StoreUnavailable

        if calls_so_far() >= 2:
            raise StoreUnavailable("connection refused")
        return await super()._dispatch(call)


class BrokenAfterFirst(Gateway):
    """A driver bug from each request's second store call on."""

    async def _dispatch(self, call: Any) -> Any:
        if calls_so_far() >= 2:
            raise RuntimeError("a driver bug, with private detail")
        return await super()._dispatch(call)


class SlowAfterFirst(Gateway):
    """Each request's second store call takes longer than the request may."""

    async def _dispatch(self, call: Any) -> Any:
        if calls_so_far() >= 2:
            await asyncio.sleep(2)
        return await super()._dispatch(call)


class ShedAfterFirst(Gateway):
    """No free store slot for each request's second call."""

    async def _dispatch(self, call: Any) -> Any:
        from api.data.slots import Shed

        if calls_so_far() >= 2:
            raise Shed()
        return await super()._dispatch(call)


class ClientLeavesAfterFirst(Gateway):
    """The client hangs up during each request's second store call."""

    async def _dispatch(self, call: Any) -> Any:
        from api.data import deadline

        if calls_so_far() >= 2:
            budget = deadline.current_deadline()
            assert budget is not None
            budget.cancel()
            stats = observe.current_stats()
            assert stats is not None
            stats.client_gone = True
            await asyncio.sleep(1)
        return await super()._dispatch(call)


@pytest.mark.parametrize(
    "gateway",
    [DownAfterFirst, BrokenAfterFirst, SlowAfterFirst, ShedAfterFirst, ClientLeavesAfterFirst],
)
def test_over_http_a_store_failing_mid_request_is_answered_alike(
    loaded: Store,
    api_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    gateway: type[Gateway],
) -> None:
    # Short where the second call must outlast it, but with room for a first
    # sight's parse, validation, planning and first store call on a loaded
    # machine (a deadline that ran out before the first store call answers
    # differently: one call counted, not two); long where nothing waits for it.
    timeout_ms = 1000 if gateway is SlowAfterFirst else 10_000
    quick = dataclasses.replace(api_settings, request_timeout_ms=timeout_ms)
    sid = story_id(loaded)
    requests: list[Request] = [
        q(FRONT),
        q(MOBILE, variables={"id": sid}),
        q(MOBILE, variables={"id": sid}, method="GET"),
        q("{ a: articles(first: 2) { nodes { id } } b: providers(first: 2) { nodes { name } } }"),
        q(FRONT, headers={"accept": "application/graphql-response+json"}),
    ]
    warm, cold = both_ways(quick, loaded, requests, caplog, gateway=gateway)
    assert_alike(warm, cold)


# -- at the schema: shapes whose objects the builder counts (extensions.cost) -----

SHAPES = [
    "{ articles(first: 2) { nodes { id } } articles(first: 2) { nodes { title } } }",
    "{ articles(first: 2) { nodes { provider { name } provider { domain } } } }",
    """{ articles(first: 2) { nodes { ...A ...B } } }
    fragment A on Article { provider { name } } fragment B on Article { provider { domain } }""",
    "query($id: ID!) { node(id: $id) { ... on Article { provider { name } } "
    "... on Article { provider { domain } } ... on Provider { name } } }",
    'query($id: ID!) { nodes(ids: [$id, $id, "nope"]) { id ... on Article { images { url } } } }',
    "query($id: ID!) { a: article(id: $id) { id } b: article(id: $id) { id } }",
    "{ articles(first: 2) { edges { node { id } cursor } pageInfo { hasNextPage } } }",
    "{ articles(first: 3) { nodes { related { article { id provider { name } } } } } }",
    "{ providers(first: 2) { nodes { articles(first: 2) { nodes { id } } } } }",
    "{ articles(first: 0) { nodes { id } pageInfo { endCursor } } }",
    "{ __typename articles(first: 1) { __typename nodes { __typename } } }",
    "{ articles(first: 2) { nodes { ... on Article { id } } } }",
    "query($id: ID!) { article(id: $id) { ... on Provider { name } } }",
    "{ topics(first: 2) { nodes { name articles(first: 1) { totalCount } } } }",
    "{ articles(first: 50, filter: {published: false}) "
    "{ nodes { id related { article { id } } } } }",
]


@pytest.mark.parametrize("admin", [False, True])
@pytest.mark.parametrize("query", SHAPES)
def test_objects_counted_by_the_plan_are_those_in_the_answer(
    loaded: Store, settings: Settings, query: str, admin: bool
) -> None:
    variables = {"id": story_id(loaded)} if "$id" in query else None
    schema = schema_for(settings)
    cold = first_sight_schema(settings)
    expected, expected_stats = execute(cold, loaded, query, variables, admin=admin)
    execute(schema, loaded, query, variables, admin=admin)
    warm, stats = execute(schema, loaded, query, variables, admin=admin)
    assert sent(warm) == sent(expected)
    assert stats.executions == expected_stats.executions


def test_over_http_the_admin_first_then_anyone_sees_only_what_they_may(
    loaded: Store, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    hidden = loaded.articles.find_one({"published": False}, {"_id": 1, "webUrl": 1})
    assert hidden is not None, "the sample has no unpublished article"
    by_variable = (
        "query($p: Boolean, $id: ID) { articles(first: 50, filter: {published: $p}) "
        "{ totalCount nodes { id } } article(id: $id) { id title } }"
    )
    node = "query($id: ID!) { node(id: $id) { id ... on Article { title } } }"
    url = "query($u: String) { article(webUrl: $u) { id } }"
    requests: list[Request] = []
    for admin in (True, False, True, False):
        requests += [
            q(UNPUBLISHED, admin=admin),
            q(UNPUBLISHED, admin=admin, method="GET"),
            q(by_variable, variables={"p": False, "id": hidden["_id"]}, admin=admin),
            q(by_variable, variables={"p": None, "id": hidden["_id"]}, admin=admin),
            q(node, variables={"id": hidden["_id"]}, admin=admin),
            q(url, variables={"u": hidden["webUrl"]}, admin=admin),
        ]
    warm, cold = both_ways(api_settings, loaded, requests, caplog, repeat=2)
    assert_alike(warm, cold)
    anonymous = [a for i, a in enumerate(warm["answers"]) if (i // 12) % 2 == 1]
    assert hidden["_id"] not in json.dumps([a["body"] for a in anonymous])


def test_over_http_variables_that_change_the_price_are_priced_each_time(
    loaded: Store, api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    tight = dataclasses.replace(api_settings, max_query_objects=60, max_query_store_calls=4)
    paged = "query($n: Int) { articles(first: $n) { nodes { id topics { name } } } }"
    nested = (
        "query($n: Int, $m: Int) { providers(first: $n) { nodes { articles(first: $m) "
        "{ nodes { id } } } } }"
    )
    skipped = (
        "query($big: Boolean!) { articles(first: 2) { nodes { id } } "
        "more: articles(first: 100) @include(if: $big) { nodes { id related { title } } } }"
    )
    defaulted = "query($n: Int = 100) { articles(first: $n) { nodes { id topics { name } } } }"
    relevance = (
        'query($o: ArticleOrder!) { articles(first: 2, orderBy: $o, filter: {search: "a"}) '
        "{ totalCount nodes { id } } }"
    )
    requests: list[Request] = []
    for n in (2, 50, 2, 1.0, True, "2", None, 2.5, -1, 2**40, 100):
        requests.append(q(paged, variables={"n": n}))
    for n, m in ((2, 2), (5, 5), (2, 2), (1, 100), (100, 1)):
        requests.append(q(nested, variables={"n": n, "m": m}))
    for big in (False, True, False, "yes", None):
        requests.append(q(skipped, variables={"big": big}))
    requests.append(q(skipped, variables={}))
    for vars_ in ({}, {"n": None}, {"n": 2}, {"n": 100}):
        requests.append(q(defaulted, variables=vars_))
    for order in ("PUBLISHED_DESC", "RELEVANCE", "PUBLISHED_DESC"):
        requests.append(q(relevance, variables={"o": order}))
    warm, cold = both_ways(tight, loaded, requests, caplog)
    assert_alike(warm, cold)
    refused = [a for a in warm["answers"] if "too costly" in a["text"]]
    assert refused, "no request was over the budget: the test proves nothing"
