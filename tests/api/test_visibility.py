"""Unpublished articles and the secured token never reach a client without the
admin token, by any path."""

import pytest

from tests.api.fixtures import ADMIN_TOKEN

HIDDEN_TITLE = "Draft: Debris Tracking Network Gets Funding"


@pytest.fixture
def hidden(loaded):
    doc = loaded.articles.find_one({"published": False})
    assert doc["title"] == HIDDEN_TITLE
    return doc


def everything(gql, **kw):
    """The text of every path an article can be reached by."""
    return str(
        [
            gql("{ articles(first: 100) { totalCount nodes { title } } }", **kw),
            gql("{ articles(filter: {published: false}) { totalCount nodes { title } } }", **kw),
            gql('{ articles(filter: {search: "debris"}) { totalCount nodes { title } } }', **kw),
            gql(
                "{ providers(first: 100) { nodes { domain articleCount articles(first: 100) "
                "{ totalCount nodes { title } } } } }",
                **kw,
            ),
            gql("{ topics(first: 100) { nodes { name articleCount } } }", **kw),
            gql('{ topic(name: "Space") { articleCount articles { nodes { title } } } }', **kw),
            gql('{ provider(domain: "orbitalweekly.example") { articleCount } }', **kw),
            gql("{ articles(first: 100) { nodes { related { article { title } } } } }", **kw),
        ]
    )


def test_unpublished_articles_are_invisible_without_the_token(gql, hidden):
    seen = everything(gql)
    assert HIDDEN_TITLE not in seen
    assert gql("query($id: ID) { article(id: $id) { title } }", {"id": hidden["_id"]}) == {
        "article": None
    }
    assert gql("query($u: String) { article(webUrl: $u) { title } }", {"u": hidden["webUrl"]}) == {
        "article": None
    }
    assert gql('{ topic(name: "Space") { articleCount } }') == {"topic": {"articleCount": 2}}
    assert gql('{ provider(domain: "orbitalweekly.example") { articleCount } }') == {
        "provider": {"articleCount": 1}
    }
    assert gql("{ articles { totalCount } }")["articles"]["totalCount"] == 11


def test_a_wrong_token_sees_what_anyone_sees(gql, hidden):
    assert HIDDEN_TITLE not in everything(gql, token="wrong-" + ADMIN_TOKEN)


def test_the_admin_token_sees_everything(gql, hidden):
    seen = everything(gql, token=ADMIN_TOKEN)
    assert HIDDEN_TITLE in seen
    assert gql("{ articles { totalCount } }", token=ADMIN_TOKEN)["articles"]["totalCount"] == 12
    assert gql('{ topic(name: "Space") { articleCount } }', token=ADMIN_TOKEN) == {
        "topic": {"articleCount": 3}
    }
    assert gql(
        "query($id: ID) { article(id: $id) { title published } }",
        {"id": hidden["_id"]},
        token=ADMIN_TOKEN,
    ) == {"article": {"title": HIDDEN_TITLE, "published": False}}


def test_no_token_is_configured_means_no_one_is_admin(loaded, settings):
    from starlette.testclient import TestClient

    from api.app import create_app
    from tests.api.fixtures import GQL

    with TestClient(create_app(settings, loaded)) as client:  # admin_token unset
        assert HIDDEN_TITLE not in everything(GQL(client), token="")
        assert HIDDEN_TITLE not in everything(GQL(client), token="anything")


def test_secured_token_is_not_in_the_schema(gql, loaded):
    message = gql.error("{ articles { nodes { secured } } }")
    assert "Cannot query field 'secured'" in message
    token = loaded.articles.find_one()["secured"]
    assert token not in str(gql("{ articles(first: 100) { nodes { id title excerpt body } } }"))


def test_a_token_that_is_not_ascii_matches_only_as_utf8(loaded, settings):
    import dataclasses

    from starlette.testclient import TestClient

    from api.app import create_app

    token = "clé-secrète-ключ"
    query = {"query": "{ articles { totalCount } }"}
    with TestClient(create_app(dataclasses.replace(settings, admin_token=token), loaded)) as c:

        def total(header: bytes) -> int:
            response = c.post("/graphql", json=query, headers={b"authorization": header})
            return response.json()["data"]["articles"]["totalCount"]

        admin = total(b"Bearer " + token.encode())
        assert admin == 12
        assert total(b"Bearer " + "clé-secrète".encode("latin-1") + b"-x") < admin
        assert total(b"Bearer " + token.encode()[:-1]) < admin
