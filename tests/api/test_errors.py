"""Bad arguments get GraphQL errors that say what is wrong; outages are quick and clear."""

import base64
import dataclasses
import json
import logging
import time

import pymongo.errors
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.indexes import ARTICLES
from core.store import connect
from tests.api.fixtures import GQL
from tests.api.test_related import MOBILE, with_related


def forged(*parts) -> str:
    # The standard library's JSON, which writes integers of any size.
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ articles(first: 101) { totalCount } }", "first may be at most 100, got 101"),
        ("{ articles(first: -1) { totalCount } }", "first must be zero or more"),
        ('{ articles(after: "nonsense!") { totalCount } }', "invalid cursor"),
        (
            '{ articles(after: "' + forged("PUBLISHED_DESC", 0, "x", "a") + '") { totalCount } }',
            "invalid cursor",
        ),
        (
            '{ articles(after: "' + forged("PUBLISHED_DESC", 0) + '") { totalCount } }',
            "invalid cursor",
        ),
        (
            '{ articles(orderBy: QUALITY_DESC, after: "'
            + forged("PUBLISHED_DESC", 0, 1, "a")
            + '") { totalCount } }',
            "belongs to the order 'PUBLISHED_DESC'",
        ),
        (
            '{ articles(filter: {publishedAfter: "last tuesday"}) { totalCount } }',
            "'last tuesday' is not an ISO-8601 date-time",
        ),
        ("{ articles(orderBy: RELEVANCE) { totalCount } }", "RELEVANCE ranks search results"),
        ('{ articles(filter: {search: "!!! ???"}) { totalCount } }', "search has no words"),
        ("{ article { id } }", "exactly one of `id` or `webUrl`"),
        ('{ article(id: "a", webUrl: "b") { id } }', "exactly one of `id` or `webUrl`"),
        ("{ articles { nodes { nosuchfield } } }", "Cannot query field 'nosuchfield'"),
        ("{ providers(first: 500) { totalCount } }", "first may be at most 100"),
    ],
)
def test_bad_arguments_are_explained(gql, query, message):
    assert message in gql.error(query)


@pytest.mark.parametrize(
    ("order", "parts"),
    [
        ("QUALITY_DESC", ("QUALITY_DESC", 0, 2**63, "a")),  # beyond BSON's 64-bit ints
        ("QUALITY_DESC", ("QUALITY_DESC", 0, -(2**63) - 1, "a")),
        ("QUALITY_DESC", ("QUALITY_DESC", 0, True, "a")),  # a bool is not an int
        ("PUBLISHED_DESC", ("PUBLISHED_DESC", 0, 2**70, "a")),
        ("PUBLISHED_DESC", ("PUBLISHED_DESC", 1, 0, "a")),  # one tier only
        ("PUBLISHED_DESC", ("PUBLISHED_DESC", True, 0, "a")),
        ("PUBLISHED_DESC", ("PUBLISHED_DESC", 0, 0, "")),
        ("PUBLISHED_DESC", ("PUBLISHED_DESC", 0, 0, "a" * 300)),
        ("PUBLISHED_DESC", ("PUBLISHED_DESC", 0, 0, 7)),
        ("PUBLISHED_DESC", (["PUBLISHED_DESC"], 0, 0, "a")),
        ("PUBLISHED_DESC", ("PUBLISHED_DESC", 0, 1.5, "a")),
    ],
)
def test_forged_cursors_are_refused_before_any_store_call(gql, round_trips, order, parts):
    query = f"query($a: String) {{ articles(orderBy: {order}, after: $a) {{ totalCount }} }}"
    body = gql.raw(query, {"a": forged(*parts)})
    (error,) = body["errors"]
    assert error["message"].startswith("invalid cursor"), error
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert round_trips == []


def test_a_relevance_cursor_may_name_its_second_tier(gql):
    query = (
        'query($a: String) { articles(filter: {search: "ferry"}, orderBy: RELEVANCE, after: $a)'
        " { nodes { id } } }"
    )
    assert isinstance(
        gql(query, {"a": forged("RELEVANCE", 1, None, "a")})["articles"]["nodes"], list
    )
    assert "invalid cursor" in gql.error(query, {"a": forged("RELEVANCE", 2, None, "a")})


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ("query($n: Int) { articles(first: $n) { totalCount } }", {"n": "x"},
         "Int cannot represent non-integer value: 'x'"),
        ("query($n: Int!) { articles(first: $n) { totalCount } }", {},
         "Expected a value of non-null type 'Int!' to be provided"),
        ("query($f: ArticleFilter) { articles(filter: $f) { totalCount } }", {"f": {"nope": 1}},
         "not to include unknown field 'nope'"),
        ("query($f: ArticleFilter) { articles(filter: $f) { totalCount } }",
         {"f": {"publishedAfter": "yesterday"}}, "'yesterday' is not an ISO-8601 date-time"),
        ("query($n: Int) { articles(first: $n) { totalCount } }", {"n": 2**40},
         "Int cannot represent non 32-bit signed integer"),
    ],
)  # fmt: skip
def test_variable_mistakes_are_the_clients_and_say_so(gql, caplog, query, variables, message):
    with caplog.at_level(logging.INFO, logger="newsgraph.api"):
        body = gql.raw(query, variables)
    (error,) = body["errors"]
    assert message in error["message"] and error["message"].startswith("Variable '$")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_null_for_an_argument_with_a_default_is_the_clients_mistake(gql, caplog):
    # Valid (the argument has a default), refused when the field runs: the
    # client is told which argument, and no traceback is logged as a bug.
    query = "query($o: ArticleOrder) { articles(orderBy: $o) { totalCount } }"
    with caplog.at_level(logging.INFO, logger="newsgraph.api"):
        body = gql.raw(query, {"o": None})
    (error,) = body["errors"]
    assert "Argument 'orderBy' has invalid value" in error["message"], error
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["articles"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_value_the_schema_cannot_serialize_stays_an_internal_error(loaded, gql, caplog):
    # graphql-core's own field errors located at the field are bugs in our
    # data or code, never the client's: masked, and logged with a traceback.
    doc = loaded.articles.find_one({"published": True}, {"_id": 1})
    loaded.articles.update_one({"_id": doc["_id"]}, {"$set": {"quality": "high"}})
    with caplog.at_level(logging.INFO, logger="newsgraph.api"):
        body = gql.raw("query($id: ID!) { article(id: $id) { quality } }", {"id": doc["_id"]})
    (error,) = body["errors"]
    assert error["message"] == "internal error" and error["path"] == ["article", "quality"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]


def test_a_valid_cursor_from_another_list_of_the_same_order_is_just_a_position(gql):
    # Cursors are positions, not permissions: any decodable one gives a correct page.
    end = gql("{ articles(first: 2) { pageInfo { endCursor } } }")["articles"]["pageInfo"]
    data = gql(
        'query($a: String) { articles(filter: {topic: "Energy"}, after: $a) { nodes { id } } }',
        {"a": end["endCursor"]},
    )
    assert isinstance(data["articles"]["nodes"], list)


def test_operator_looking_strings_are_plain_values(gql):
    for text in ('{\\"$ne\\": null}', "$where", "$regex", ".*", "a|b"):
        data = gql(
            f'{{ articles(filter: {{topic: "{text}", category: "{text}"}}) '
            f'{{ totalCount }} providers(search: "{text}") {{ totalCount }} }}'
        )
        assert data == {"articles": {"totalCount": 0}, "providers": {"totalCount": 0}}


def test_store_outage_gives_a_clear_error_quickly_and_readyz_503():
    dead = Settings(mongodb_uri="mongodb://127.0.0.1:9/", store_timeout_ms=500)
    with TestClient(create_app(dead, connect(dead))) as client:
        started = time.monotonic()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        assert client.get("/healthz").status_code == 200  # alive: nothing to restart
        body = GQL(client).raw("{ articles { totalCount nodes { title } } }")
        elapsed = time.monotonic() - started
    assert elapsed < 5
    (error,) = body["errors"]
    assert error["message"] == "the article store is not answering right now; try again shortly"
    assert error["extensions"]["code"] == "STORE_UNAVAILABLE"
    assert "127.0.0.1:9" not in str(body)


def test_unexpected_errors_are_masked(gql, monkeypatch):
    from api.data.gateway import Gateway

    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Gateway, "find", broken)  # compiled and ordinary alike
    message = gql.error("{ articles { totalCount } }")
    assert message == "internal error"


def ferretdb_failure(message: str, code: int = 1, name: str = "InternalError") -> Exception:
    """An error reply as pymongo raises it: an OperationFailure with the reply as details."""
    reply = {"ok": 0.0, "errmsg": message, "code": code, "codeName": name}
    return pymongo.errors.OperationFailure(message, code, reply)


#: What FerretDB v1 answers an operation still running 3 s after its SIGTERM
#: (it cancels it then): seen in the load test, as the store was stopped under it.
SHUTTING_DOWN = (
    "[msg_find.go:344 handler.handleMaxTimeMSError] [values.go:74 iterator.ConsumeValuesN[...]] "
    "[query_iterator.go:79 sqlite.(*queryIterator).Next] context canceled after delay"
)


class FailingBatch:
    """The store's database, but a find of several articles by id (the batched
    related-article lookup) fails as it is read, as pymongo's cursor does, with
    ``error`` after ``after_s`` (in the worker thread on the wire engine)."""

    def __init__(self, db, error: Exception, after_s: float = 0.0) -> None:
        self._db, self._error, self._after_s = db, error, after_s

    def __getattr__(self, name):
        return getattr(self._db, name)

    def __getitem__(self, name):
        collection = self._db[name]
        batch = self

        class Collection:
            def __getattr__(self, attr):
                return getattr(collection, attr)

            def find(self, query, *args, **kwargs):
                if name == ARTICLES and "$in" in str(query.get("_id")):
                    return Failing(batch)
                return collection.find(query, *args, **kwargs)

        return Collection()


class Failing:
    """A cursor that fails when read."""

    def __init__(self, batch: FailingBatch) -> None:
        self.batch = batch

    def sort(self, *args):
        return self

    limit = max_time_ms = sort

    def __iter__(self):
        time.sleep(self.batch._after_s)
        raise self.batch._error


UNAVAILABLE = "the article store is not answering right now; try again shortly"


def related_batch_errors(
    gql, store, error: Exception, compiled: bool, after_s: float = 0.0
) -> list[dict]:
    """The errors of the mobile query when its related-article batch fails with ``error``."""
    doc = with_related(store)
    real = store.db
    store.db = FailingBatch(real, error, after_s)
    try:
        body = gql.raw(MOBILE, {"id": doc["_id"]})
    finally:
        store.db = real
    assert body["errors"], body
    if compiled and (body["errors"][0].get("extensions") or {}).get("code"):
        # A plan reports a failed store call at the root field that made it,
        # without asking the failing store again (README, Compiled execution).
        assert body["data"]["article"] is None
        assert [failed["path"] for failed in body["errors"]] == [["article"]]
        return body["errors"]
    assert body["data"]["article"]["title"] == doc["title"]  # fetched before the batch
    for failed in body["errors"]:
        assert failed["path"][:2] == ["article", "related"] and failed["path"][-1] == "article"
    return body["errors"]


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (ferretdb_failure(SHUTTING_DOWN), "STORE_UNAVAILABLE", UNAVAILABLE),
        # MongoDB's InterruptedAtShutdown, as pymongo raises it: the same outage.
        (
            pymongo.errors.NotPrimaryError("interrupted at shutdown"),
            "STORE_UNAVAILABLE",
            UNAVAILABLE,
        ),
        # The query's own failures are not outages: masked, and logged as bugs.
        (ferretdb_failure("[msg_find.go:344] unexpected nil"), None, "internal error"),
        (ferretdb_failure("context canceled", 2, "BadValue"), None, "internal error"),
    ],
    ids=["ferretdb-shutdown", "mongodb-shutdown", "internal-error", "bad-value"],
)
def test_a_store_shutting_down_under_the_related_batch_is_an_outage(
    gql, loaded, api_settings, error, code, message
):
    """FerretDB v1 cancels what still runs 3 s after its SIGTERM and answers with
    a bare InternalError, which pymongo raises as an OperationFailure, not a
    ConnectionFailure: it must read as the outage it is, not an internal error."""
    for failed in related_batch_errors(gql, loaded, error, api_settings.compiled):
        assert failed["message"] == message
        assert (failed.get("extensions") or {}).get("code") == code


ON_WIRE_ONLY = pytest.mark.parametrize(
    "engine", [pytest.param("wire", marks=pytest.mark.wire)], indirect=True
)


@ON_WIRE_ONLY
def test_a_time_limit_that_ran_out_at_once_is_the_store_cancelling_the_call(
    gql, loaded, api_settings
):
    """Some FerretDB v1 commands report the call it cancels at shutdown as
    MaxTimeMSExpired: long before its maxTimeMS (10 s here), so not the limit."""
    expired = pymongo.errors.ExecutionTimeout("operation exceeded time limit", 50)
    for failed in related_batch_errors(gql, loaded, expired, api_settings.compiled):
        assert failed["message"] == UNAVAILABLE
        assert failed["extensions"]["code"] == "STORE_UNAVAILABLE"


@ON_WIRE_ONLY
def test_a_time_limit_that_ran_out_in_time_is_still_a_timeout(loaded, api_settings):
    settings = dataclasses.replace(api_settings, store_op_timeout_ms=300)
    expired = pymongo.errors.ExecutionTimeout("operation exceeded time limit", 50)
    with TestClient(create_app(settings, loaded)) as client:
        errors = related_batch_errors(GQL(client), loaded, expired, settings.compiled, 0.3)
    for failed in errors:
        assert failed["extensions"]["code"] == "TIMEOUT"


def test_a_cursor_of_another_list_is_refused_naming_its_order_as_a_client_knows_it(gql):
    body = gql.raw("{ providers(first: 1) { pageInfo { endCursor } } }")
    cursor = body["data"]["providers"]["pageInfo"]["endCursor"]
    message = gql.error("query($c: String) { topics(after: $c) { totalCount } }", {"c": cursor})
    assert "belongs to the order 'providers by article count', not 'topics by" in message
    assert ".count" not in message
