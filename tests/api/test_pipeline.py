"""The one request pipeline (api/operation/pipeline.py): every operation takes
the same steps. A query seen before takes them with its document, price and
plan found in the caches, and is answered exactly as at first sight (a
schema that forgets its caches before every operation answers every request
as a first sight); a step planted in the list is enforced on every way in."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from typing import Any

import pytest
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.data.gateway import Gateway
from api.execution.plan import Fallback
from api.operation.schema import Schema, build_schema
from api.schema.context import Context
from api.schema.subscription import over_http
from api.telemetry import stats as observe
from core.config import Settings
from core.store import Store
from tests.api.fixtures import without_budget

MOBILE = """query Story($id: ID!) { article(id: $id) { title excerpt webUrl
  provider { name domain } images { url width }
  related { title provider { name } article { id title } } } }"""
FRONT = "{ articles(first: 5) { totalCount nodes { id title topics { name } } } }"
TWO = """query A { articles(first: 2) { nodes { id } } }
query B($n: Int = 3) { providers(first: $n) { nodes { name articleCount } } }"""


def schema_for(settings: Settings) -> Schema:
    return build_schema(dataclasses.replace(settings, compiled=True))


def forgetful(schema: Schema) -> Schema:
    """``schema``, forgetting what its caches hold before each operation (but
    the persisted queries: clients' registrations, not work kept), so that
    every request is answered as at first sight."""
    caches, prepare = schema.caches, schema.pipeline.prepare

    async def first_sight(op: Any) -> None:
        caches.documents.clear()
        caches.costs.clear()
        if caches.plans is not None:
            caches.plans.clear()
        await prepare(op)

    schema.pipeline.prepare = first_sight  # type: ignore[method-assign]
    return schema


def first_sight_schema(settings: Settings) -> Schema:
    return forgetful(schema_for(settings))


def execute(
    schema: Schema,
    store: Store,
    query: str | None,
    variables: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    extensions: dict[str, Any] | None = None,
    admin: bool = False,
    gateway: Gateway | None = None,
) -> tuple[ExecutionResult, observe.RequestStats]:
    """One request's result and its stats, as the app would count them."""
    stats = observe.RequestStats()

    async def run() -> ExecutionResult:
        token = observe._current.set(stats)
        try:
            return await schema.execute(
                query,
                variable_values=variables,
                context_value=Context(gateway or Gateway(store, 5000), admin),
                operation_name=name,
                operation_extensions=extensions,
            )
        finally:
            observe._current.reset(token)

    return asyncio.run(run()), stats


def sent(result: ExecutionResult) -> dict[str, Any]:
    """All a client reads: data, errors as sent, and the extensions."""
    return {
        "data": result.data,
        "errors": [e.formatted for e in result.errors or []],
        "extensions": result.extensions,
    }


@pytest.fixture
def machinery(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each time a request's work is done afresh rather than found in a cache:
    parsing, validation, pricing, planning."""
    import strawberry.schema.schema as strawberry_schema

    import api.execution.compiled as compiled
    import api.operation.budget as budget
    import api.operation.documents as documents

    made: list[str] = []
    for module, name in (
        (documents, "parse"),
        (strawberry_schema, "validate"),
        (budget, "query_cost"),
        (compiled, "build_plan"),
    ):
        original = getattr(module, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            made.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(module, name, counted)
    return made


FIRST_SIGHT = ["parse", "validate", "query_cost", "build_plan"]


def story_id(store: Store) -> str:
    found = store.articles.find_one({"published": True, "related.1": {"$exists": True}})
    assert found is not None
    return found["_id"]


def test_a_query_seen_before_is_not_parsed_validated_priced_or_planned_again(
    loaded: Store,
    settings: Settings,
    machinery: list[str],
) -> None:
    schema = schema_for(settings)
    variables = {"id": story_id(loaded)}
    first, first_stats = execute(schema, loaded, MOBILE, variables)
    assert machinery == FIRST_SIGHT
    again, stats = execute(schema, loaded, MOBILE, variables)
    assert machinery == FIRST_SIGHT, "the second request did its work again"
    assert sent(again) == sent(first) and not again.errors
    assert again.data["article"]["related"]
    assert stats.executions == first_stats.executions == ["compiled"]
    assert stats.store_calls == first_stats.store_calls > 0
    assert again.extensions["cost"]["actual"]["storeCalls"] == stats.store_calls


def test_over_http_a_repeated_query_finds_its_work_done_by_post_and_get(
    loaded: Store,
    settings: Settings,
    machinery: list[str],
) -> None:
    from starlette.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(dataclasses.replace(settings, compiled=True), loaded)) as client:
        body = {"query": FRONT}
        first = client.post("/graphql", json=body)
        assert machinery == FIRST_SIGHT
        again = client.post("/graphql", json=body)
        by_get = client.get("/graphql", params=body)
        assert machinery == FIRST_SIGHT, "a repeated query did its work again"
        bodies = [without_budget(r.json()) for r in (first, again, by_get)]
        assert bodies[0] == bodies[1] == bodies[2]
        assert "errors" not in first.json() and first.json()["data"]["articles"]["nodes"]


@pytest.mark.parametrize(
    ("query", "variables", "name", "admin"),
    [
        (FRONT, None, None, False),
        (FRONT, None, None, True),
        (MOBILE, "story", None, False),
        (TWO, None, "A", False),
        (TWO, None, "B", False),
        (TWO, {"n": 1}, "B", False),
        ("query($n: Int!) { articles(first: $n) { nodes { id } } }", {"n": 3}, None, False),
        # Refused by a resolver's check, refused variables, a type-coerced value.
        ("{ articles(first: 101) { totalCount } }", None, None, False),
        ("query($n: Int!) { articles(first: $n) { totalCount } }", {"n": "x"}, None, False),
        ('{ article(id: "no-such-story") { title } }', None, None, False),
        (
            "{ articles(first: 2) { nodes { ... on Article { __typename id } } } }",
            None,
            None,
            False,
        ),
    ],
)
def test_the_answer_at_repeated_sight_is_the_first_sights(
    loaded: Store,
    settings: Settings,
    query: str,
    variables: Any,
    name: str | None,
    admin: bool,
) -> None:
    if variables == "story":
        variables = {"id": story_id(loaded)}
    schema = schema_for(settings)
    long_way = first_sight_schema(settings)
    expected, expected_stats = execute(long_way, loaded, query, variables, name=name, admin=admin)
    first, _ = execute(schema, loaded, query, variables, name=name, admin=admin)
    again, stats = execute(schema, loaded, query, variables, name=name, admin=admin)
    assert sent(again) == sent(first) == sent(expected)
    assert stats.executions == expected_stats.executions
    assert stats.store_calls == expected_stats.store_calls


def test_requests_refused_or_answered_by_ordinary_execution_alike_at_each_sight(
    loaded: Store,
    settings: Settings,
) -> None:
    tight = dataclasses.replace(settings, max_query_objects=10)
    schema = schema_for(tight)
    long_way = first_sight_schema(tight)
    costly = "{ articles(first: 50) { nodes { id } } }"
    deferred = "{ articles(first: 2) { nodes { id ... @defer { title } } } }"
    digest = hashlib.sha256(b"{ articles(first: 1) { nodes { id } } }").hexdigest()
    unknown = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    requests: list[dict[str, Any]] = [
        {"query": costly},  # over budget: refused, never run
        {"query": deferred},  # @defer: by ordinary execution
        {"query": None, "extensions": unknown},  # an unknown hash: said so
        {"query": "{ __schema { queryType { name } } }"},  # introspection: not planned
        {"query": "subscription { articlePublished { id } }"},  # not over HTTP
    ]
    messages = []
    for request in requests:
        query, extensions = request["query"], request.get("extensions")
        expected, _ = execute(long_way, loaded, query, extensions=extensions)
        execute(schema, loaded, query, extensions=extensions)
        again, _ = execute(schema, loaded, query, extensions=extensions)
        assert sent(again) == sent(expected), query
        messages.append([e.message for e in again.errors or []])
    assert messages[0][0].startswith("query too costly")
    assert messages[2] == ["PersistedQueryNotFound"]
    assert messages[4] == [str(over_http())]


def test_a_persisted_query_by_hash_finds_its_work_done_once_registered(
    loaded: Store,
    settings: Settings,
    machinery: list[str],
) -> None:
    schema = schema_for(settings)
    query = "query Latest { articles(first: 2) { nodes { title } } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    missing, _ = execute(schema, loaded, None, extensions=hashed)
    assert [e.message for e in missing.errors or []] == ["PersistedQueryNotFound"]
    execute(schema, loaded, query)  # known and valid, not yet under its hash
    before = len(machinery)
    registered, _ = execute(schema, loaded, query, extensions=hashed)
    by_hash, stats = execute(schema, loaded, None, extensions=hashed)
    assert len(machinery) == before, "a known query or its hash did its work again"
    assert sent(by_hash) == sent(registered) and by_hash.data["articles"]["nodes"]
    assert stats.executions == ["compiled"]
    # A wrong hash beside a known query is refused.
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    refused, _ = execute(schema, loaded, query, extensions=wrong)
    assert refused.errors and "does not match" in refused.errors[0].message
    # And a hash is registered only for the query it hashes.
    other = "{ articles(first: 1) { nodes { id } } }"
    execute(schema, loaded, other)
    execute(schema, loaded, other, extensions=wrong)
    still, _ = execute(schema, loaded, None, extensions=wrong)
    assert [e.message for e in still.errors or []] == ["PersistedQueryNotFound"]


def test_a_plan_that_falls_back_runs_once_and_is_counted_once(
    loaded: Store,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = schema_for(settings)
    execute(schema, loaded, FRONT)  # cached, planned
    plans = schema.caches.plans
    assert plans is not None
    runs: list[str] = []
    original = plans.execute

    async def falls_back(*args: Any, **kwargs: Any) -> Any:
        runs.append("plan")
        await original(*args, **kwargs)
        raise Fallback("planted: several field errors")

    monkeypatch.setattr(plans, "execute", falls_back)
    ordinary = build_schema(dataclasses.replace(settings, compiled=False))
    expected, expected_stats = execute(ordinary, loaded, FRONT)
    answer, stats = execute(schema, loaded, FRONT)
    assert runs == ["plan"]
    assert stats.executions == ["fallback"]
    assert sent(answer)["data"] == sent(expected)["data"]
    # The plan's store calls, once: ordinary execution is answered what the
    # plan already asked (api/execution/replay.py), and the count reports so.
    assert stats.store_calls == expected_stats.store_calls
    assert answer.extensions["cost"]["actual"]["storeCalls"] == stats.store_calls


class Broken(Gateway):
    """A store whose driver fails unexpectedly: a bug, not an outage."""

    async def find(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise RuntimeError("a driver bug, with private detail")


def test_unexpected_errors_are_logged_and_masked_alike_at_each_sight(
    loaded: Store,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = schema_for(settings)
    long_way = first_sight_schema(settings)
    execute(schema, loaded, FRONT)
    gateway = Broken(loaded, 5000)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsgraph.api"):
        expected, _ = execute(long_way, loaded, FRONT, gateway=gateway)
        logged = [r.getMessage() for r in caplog.records if r.exc_info]
        caplog.clear()
        answer, stats = execute(schema, loaded, FRONT, gateway=gateway)
    assert sent(answer) == sent(expected)
    assert [e.message for e in answer.errors or []] == ["internal error"]
    assert "private detail" not in repr(sent(answer))
    # The plan failed (logged, with its traceback), then ordinary execution
    # failed alike: logged as at first sight.
    traced = [r.getMessage() for r in caplog.records if r.exc_info]
    assert traced == logged
    assert logged == [
        "compiled plan failed; ordinary execution answers",
        "error resolving ['articles']",
    ]
    assert stats.executions == ["fallback"]


def test_a_stored_value_the_schema_refuses_is_masked_and_logged_alike_at_each_sight(
    loaded: Store,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    doc = loaded.articles.find_one({"published": True}, {"_id": 1})
    loaded.articles.update_one({"_id": doc["_id"]}, {"$set": {"quality": "high"}})
    query, variables = "query($id: ID!) { article(id: $id) { title quality } }", {"id": doc["_id"]}
    schema = schema_for(settings)
    long_way = first_sight_schema(settings)
    execute(schema, loaded, query, variables)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsgraph.api"):
        expected, _ = execute(long_way, loaded, query, variables)
        logged = [(r.getMessage(), r.levelno) for r in caplog.records]
        caplog.clear()
        answer, stats = execute(schema, loaded, query, variables)
    assert stats.executions == ["compiled"]
    assert sent(answer) == sent(expected)
    (error,) = sent(answer)["errors"]
    assert error["message"] == "internal error" and error["path"] == ["article", "quality"]
    assert "high" not in repr(sent(answer)["errors"])
    assert [(r.getMessage(), r.levelno) for r in caplog.records] == logged
    assert any(r.exc_info for r in caplog.records)


def test_plans_are_switched_off_with_compiled_execution(settings: Settings) -> None:
    assert build_schema(dataclasses.replace(settings, compiled=False)).caches.plans is None
    assert build_schema(dataclasses.replace(settings, compiled=True)).caches.plans is not None


def test_a_transport_that_allows_no_queries_is_refused_as_before(
    loaded: Store,
    settings: Settings,
) -> None:
    from strawberry.schema.exceptions import InvalidOperationTypeError

    schema = schema_for(settings)
    execute(schema, loaded, FRONT)

    async def run() -> Any:
        return await schema.execute(
            FRONT,
            context_value=Context(Gateway(loaded, 5000)),
            allowed_operation_types=[OperationType.MUTATION],
        )

    with pytest.raises(InvalidOperationTypeError):
        asyncio.run(run())


# -- one step, every way in ---------------------------------------------------------


class Planted:
    """A guard planted in the step list (as a new limit would be added): it
    refuses any operation whose query mentions ``planted``, with a code of its
    own, and counts the operations it saw."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, op: Any) -> None:
        from graphql import GraphQLError

        from api.operation.request import Refused

        self.seen += 1
        if "planted" in (op.query or ""):
            raise Refused(
                GraphQLError("refused by the planted step", extensions={"code": "PLANTED"})
            )


PLANTED_QUERY = "query planted { articles(first: 2) { nodes { id ... @defer { title } } } }"


def test_a_step_planted_once_is_enforced_on_every_way_in(
    loaded: Store, api_settings: Settings
) -> None:
    """The proof that the request path exists once: one step, planted in one
    place (the pipeline's list, after pricing), refuses the operation by POST,
    by GET, by persisted hash, with @defer read as multipart or as one answer,
    over WebSocket and over Server-Sent Events, at first and at repeated sight,
    for the admin and for anyone."""
    from starlette.testclient import TestClient

    from api.app import create_app
    from tests.api.fixtures import ADMIN_TOKEN
    from tests.api.test_pipeline_caches import view

    app = create_app(api_settings, loaded)
    schema = view(app).schema
    planted = Planted()
    steps = schema.pipeline.steps
    steps.insert(next(i for i, s in enumerate(steps) if type(s).__name__ == "Price") + 1, planted)
    digest = hashlib.sha256(PLANTED_QUERY.encode()).hexdigest()
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    refusals: list[str] = []

    def codes(body: dict[str, Any]) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]

    with TestClient(app) as client:
        for admin in (False, True):
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
            multipart = {**headers, "Accept": "multipart/mixed, application/json"}
            events = {**headers, "Accept": "text/event-stream"}
            for sight in ("first", "repeated"):
                ways = {
                    "POST": client.post("/graphql", json={"query": PLANTED_QUERY}, headers=headers),
                    "GET": client.get("/graphql", params={"query": PLANTED_QUERY}, headers=headers),
                    "POST with its hash": client.post(
                        "/graphql",
                        json={"query": PLANTED_QUERY, "extensions": hashed},
                        headers=headers,
                    ),
                    "GET by hash": client.get(
                        "/graphql",
                        params={"extensions": json.dumps(hashed)},
                        headers=headers,
                    ),
                    "@defer, multipart": client.post(
                        "/graphql", json={"query": PLANTED_QUERY}, headers=multipart
                    ),
                    # Refused before the stream starts: a JSON answer (api.http.sse).
                    "SSE, a query": client.post(
                        "/graphql", json={"query": PLANTED_QUERY}, headers=events
                    ),
                    "SSE, a subscription": client.post(
                        "/graphql",
                        json={"query": "subscription planted { articlePublished { id } }"},
                        headers=events,
                    ),
                }
                for way, response in ways.items():
                    assert codes(response.json()) == ["PLANTED"], (way, sight, admin, response.text)
                    refusals.append(way)
                with client.websocket_connect(
                    "/graphql", subprotocols=["graphql-transport-ws"], headers=headers
                ) as ws:
                    ws.send_json({"type": "connection_init", "payload": {}})
                    assert ws.receive_json()["type"] == "connection_ack"
                    subscription = "subscription planted { articlePublished { id } }"
                    ws.send_json(
                        {"id": "1", "type": "subscribe", "payload": {"query": subscription}}
                    )
                    message = ws.receive_json()
                    assert message["type"] == "error", message
                    assert [e["extensions"]["code"] for e in message["payload"]] == ["PLANTED"]
                    refusals.append("WebSocket")
    assert len(refusals) == 2 * 2 * 8
    assert planted.seen == len(refusals)


def test_variables_the_operation_does_not_declare_are_dropped_on_every_way_in(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GraphQL ignores a variable its operation does not declare; the
    pipeline drops it where the operation is chosen, so no resolver, share
    key or executor holds it (a subscription held 90 kB of them for as long
    as it ran). A declared variable is still there, by POST and WebSocket."""
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.execution import subscription
    from tests.api.test_pipeline_caches import view

    app = create_app(api_settings, loaded)
    steps = view(app).schema.pipeline.steps
    executed: list[dict[str, Any] | None] = []
    steps.append(lambda op: executed.append(op.variables))  # what execution is given
    keyed: list[Any] = []
    share_key = subscription.share_key

    def recorded(query: str, name: str | None, variables: Any, admin: bool) -> Any:
        keyed.append(dict(variables or {}))
        return share_key(query, name, variables, admin)

    monkeypatch.setattr(subscription, "share_key", recorded)
    junk = ["ab"] * 1_000
    query = "query Q($first: Int) { articles(first: $first) { nodes { id } } }"
    with TestClient(app) as client:
        answer = client.post(
            "/graphql", json={"query": query, "variables": {"first": 1, "junk": junk}}
        ).json()
        assert len(answer["data"]["articles"]["nodes"]) == 1  # the declared one is read
        assert executed == [{"first": 1}]
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": {}})
            assert ws.receive_json()["type"] == "connection_ack"
            subscribe = "subscription S($f: ArticleFilter) { articlePublished(filter: $f) { id } }"
            declared = {"f": {"topicsAny": ["AI"]}}
            payload = {"query": subscribe, "variables": {**declared, "junk": junk}}
            ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
            ws.send_json({"type": "ping"})
            assert ws.receive_json()["type"] == "pong"  # started (no error)
    assert executed[1:] == [declared]
    assert keyed == [declared]
