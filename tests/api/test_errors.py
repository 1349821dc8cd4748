"""Bad arguments get GraphQL errors that say what is wrong; outages are quick and clear."""

import base64
import time

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.store import connect
from tests.api.fixtures import GQL


def forged(*parts) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


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

    monkeypatch.setattr(resolvers, "list_articles", broken)
    message = gql.error("{ articles { totalCount } }")
    assert message == "internal error"
