"""Bad arguments get GraphQL errors that say what is wrong; outages are quick and clear."""

import base64
import json
import logging
import time

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.store import connect
from tests.api.fixtures import GQL


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
    from api import resolvers

    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(resolvers, "fetch_page", broken)  # compiled and ordinary alike
    message = gql.error("{ articles { totalCount } }")
    assert message == "internal error"
