"""Direct execution (api/operation/direct.py): a query seen before is answered without
strawberry's per-request machinery, and exactly as strawberry answers it."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
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

MOBILE = """query Story($id: ID!) { article(id: $id) { title excerpt webUrl
  provider { name domain } images { url width }
  related { title provider { name } article { id title } } } }"""
FRONT = "{ articles(first: 5) { totalCount nodes { id title topics { name } } } }"
TWO = """query A { articles(first: 2) { nodes { id } } }
query B($n: Int = 3) { providers(first: $n) { nodes { name articleCount } } }"""


def schema_for(settings: Settings) -> Schema:
    return build_schema(dataclasses.replace(settings, compiled=True))


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
    """Each time strawberry sets its per-request extensions up."""
    made: list[str] = []
    original = Schema.get_extensions

    def counted(self: Schema, sync: bool = False) -> Any:
        made.append("extensions")
        return original(self, sync)

    monkeypatch.setattr(Schema, "get_extensions", counted)
    return made


def story_id(store: Store) -> str:
    found = store.articles.find_one({"published": True, "related.1": {"$exists": True}})
    assert found is not None
    return found["_id"]


def test_a_query_seen_before_skips_strawberrys_machinery(
    loaded: Store,
    settings: Settings,
    machinery: list[str],
) -> None:
    schema = schema_for(settings)
    variables = {"id": story_id(loaded)}
    first, first_stats = execute(schema, loaded, MOBILE, variables)
    assert machinery == ["extensions"]  # parsed, validated, cached: the long way
    again, stats = execute(schema, loaded, MOBILE, variables)
    assert machinery == ["extensions"], "the second request went the long way"
    assert sent(again) == sent(first) and not again.errors
    assert again.data["article"]["related"]
    assert stats.executions == first_stats.executions == ["compiled"]
    assert stats.store_calls == first_stats.store_calls > 0
    assert again.extensions["cost"]["actual"]["storeCalls"] == stats.store_calls


def test_over_http_a_repeated_query_goes_the_direct_way_by_post_and_get(
    loaded: Store,
    settings: Settings,
    machinery: list[str],
) -> None:
    from starlette.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(dataclasses.replace(settings, compiled=True), loaded)) as client:
        body = {"query": FRONT}
        first = client.post("/graphql", json=body)
        assert machinery == ["extensions"]
        again = client.post("/graphql", json=body)
        by_get = client.get("/graphql", params=body)
        assert machinery == ["extensions"], "a repeated query went the long way"
        assert first.json() == again.json() == by_get.json()
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
def test_the_direct_answer_is_the_long_ways(
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
    long_way = schema_for(settings)
    long_way.direct = None
    expected, expected_stats = execute(long_way, loaded, query, variables, name=name, admin=admin)
    first, _ = execute(schema, loaded, query, variables, name=name, admin=admin)
    direct, stats = execute(schema, loaded, query, variables, name=name, admin=admin)
    assert sent(direct) == sent(first) == sent(expected)
    assert stats.executions == expected_stats.executions
    assert stats.store_calls == expected_stats.store_calls


def test_requests_it_leaves_to_strawberry_are_answered_as_before(
    loaded: Store,
    settings: Settings,
    machinery: list[str],
) -> None:
    tight = dataclasses.replace(settings, max_query_objects=10)
    schema = schema_for(tight)
    long_way = schema_for(tight)
    long_way.direct = None
    costly = "{ articles(first: 50) { nodes { id } } }"
    deferred = "{ articles(first: 2) { nodes { id ... @defer { title } } } }"
    digest = hashlib.sha256(b"{ articles(first: 1) { nodes { id } } }").hexdigest()
    unknown = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    requests: list[dict[str, Any]] = [
        {"query": costly},  # over budget: refused, never run
        {"query": deferred},  # @defer: delivered by ordinary execution
        {"query": None, "extensions": unknown},  # an unknown hash: strawberry says so
        {"query": "{ __schema { queryType { name } } }"},  # introspection: not planned
        {"query": "subscription { articlePublished { id } }"},  # not over HTTP
    ]
    messages = []
    for request in requests:
        query, extensions = request["query"], request.get("extensions")
        expected, _ = execute(long_way, loaded, query, extensions=extensions)
        execute(schema, loaded, query, extensions=extensions)
        before = len(machinery)
        again, _ = execute(schema, loaded, query, extensions=extensions)
        assert len(machinery) == before + 1, f"{query} was not left to strawberry"
        assert sent(again) == sent(expected), query
        messages.append([e.message for e in again.errors or []])
    assert messages[0][0].startswith("query too costly")
    assert messages[2] == ["PersistedQueryNotFound"]
    assert messages[4] == [str(over_http())]


def test_a_persisted_query_by_hash_goes_the_direct_way_once_registered(
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
    assert len(machinery) == before, "a known query or its hash went the long way"
    assert sent(by_hash) == sent(registered) and by_hash.data["articles"]["nodes"]
    assert stats.executions == ["compiled"]
    # A wrong hash beside a known query is refused, as on the long way.
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
    assert schema.direct is not None
    plans = schema.direct.plans
    runs: list[str] = []
    original = plans.execute

    async def falls_back(*args: Any, **kwargs: Any) -> Any:
        runs.append("plan")
        await original(*args, **kwargs)
        raise Fallback("planted: several field errors")

    monkeypatch.setattr(plans, "execute", falls_back)
    long_way = schema_for(settings)
    long_way.direct = None
    expected, expected_stats = execute(long_way, loaded, FRONT)
    answer, stats = execute(schema, loaded, FRONT)
    assert runs == ["plan"]
    assert stats.executions == ["fallback"]
    assert sent(answer)["data"] == sent(expected)["data"]
    # Its store calls and ordinary execution's, each once, and reported so.
    assert stats.store_calls == 2 * expected_stats.store_calls
    assert answer.extensions["cost"]["actual"]["storeCalls"] == stats.store_calls


class Broken(Gateway):
    """A store whose driver fails unexpectedly: a bug, not an outage."""

    async def find(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise RuntimeError("a driver bug, with private detail")


def test_unexpected_errors_are_logged_and_masked_as_on_the_long_way(
    loaded: Store,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = schema_for(settings)
    long_way = schema_for(settings)
    long_way.direct = None
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
    # failed alike: logged as the long way logs it.
    traced = [r.getMessage() for r in caplog.records if r.exc_info]
    assert traced == logged
    assert logged == [
        "compiled plan failed; ordinary execution answers",
        "error resolving ['articles']",
    ]
    assert stats.executions == ["fallback"]


def test_a_stored_value_the_schema_refuses_is_masked_and_logged_as_on_the_long_way(
    loaded: Store,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    doc = loaded.articles.find_one({"published": True}, {"_id": 1})
    loaded.articles.update_one({"_id": doc["_id"]}, {"$set": {"quality": "high"}})
    query, variables = "query($id: ID!) { article(id: $id) { title quality } }", {"id": doc["_id"]}
    schema = schema_for(settings)
    long_way = schema_for(settings)
    long_way.direct = None
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


def test_switched_off_with_compiled_execution(settings: Settings) -> None:
    assert build_schema(dataclasses.replace(settings, compiled=False)).direct is None
    assert build_schema(dataclasses.replace(settings, compiled=True)).direct is not None


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
