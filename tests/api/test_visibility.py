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


def test_a_providers_name_shown_to_anyone_comes_only_from_published_articles(
    store, settings, tmp_path
):
    """Two drafts name their provider with text that must not leak; the one
    published article names it plainly."""
    import dataclasses

    from starlette.testclient import TestClient

    from api.app import create_app
    from loaders import load_paths
    from tests.api.fixtures import GQL
    from tests.articles import web_url, write_article

    secret = "Tram Times (SECRET merger talks)"
    provider = "\n  name: {}\n  domain: tramtimes.example"
    write_article(tmp_path, "public.md", provider=provider.format("Tram Times"))
    for n in range(2):
        write_article(
            tmp_path,
            f"draft{n}.md",
            webUrl=web_url(f"draft-{n}"),
            published="false",
            provider=provider.format(secret),
        )
    assert load_paths(store, [tmp_path], settings).ok
    admin_settings = dataclasses.replace(settings, admin_token=ADMIN_TOKEN)
    with TestClient(create_app(admin_settings, store)) as client:
        gql = GQL(client)
        lookup = '{ provider(domain: "tramtimes.example") { name articleCount } }'
        search = '{ providers(search: "SECRET") { totalCount nodes { name } } }'
        listed = "{ providers { nodes { name } } }"
        assert gql(lookup) == {"provider": {"name": "Tram Times", "articleCount": 1}}
        assert gql(search) == {"providers": {"totalCount": 0, "nodes": []}}
        assert "SECRET" not in str(gql(listed))
        # The admin sees what all the articles say.
        admin = gql(lookup, token=ADMIN_TOKEN)
        assert admin == {"provider": {"name": secret, "articleCount": 3}}
        found = gql(search, token=ADMIN_TOKEN)["providers"]
        assert found == {"totalCount": 1, "nodes": [{"name": secret}]}
