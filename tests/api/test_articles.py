"""Query.articles: every filter and order, against a reference model in Python."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.document import fold

NODE = "id title publishedDateTime quality heat"


def reference(store, keep=lambda d: True, key="publishedDateTime", desc=True, admin=False):
    """What the API should list: visible documents that ``keep`` accepts, sorted
    by ``key`` then ``_id``, documents without ``key`` last (desc) or first (asc)."""
    docs = [d for d in store.articles.find() if (admin or d["published"]) and keep(d)]
    present = sorted(
        (d for d in docs if d.get(key) is not None), key=lambda d: (d[key], d["_id"]), reverse=desc
    )
    missing = sorted((d for d in docs if d.get(key) is None), key=lambda d: d["_id"], reverse=desc)
    return [d["_id"] for d in (present + missing if desc else missing + present)]


def walk(gql, args="", page=3, **kw):
    """Every id of a list, fetched page by page through cursors."""
    ids, cursor = [], None
    for _ in range(50):
        data = gql(
            f"""query($after: String) {{ articles({args} first: {page}, after: $after) {{
                    totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ id }} }}
                    nodes {{ id }} }} }}""",
            {"after": cursor},
            **kw,
        )["articles"]
        assert [e["node"]["id"] for e in data["edges"]] == [n["id"] for n in data["nodes"]]
        ids += [n["id"] for n in data["nodes"]]
        if data["edges"]:
            assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        if not data["pageInfo"]["hasNextPage"]:
            assert data["totalCount"] == len(ids)
            return ids
        cursor = data["pageInfo"]["endCursor"]
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize(
    ("order", "key", "desc"),
    [
        ("PUBLISHED_DESC", "publishedDateTime", True),
        ("PUBLISHED_ASC", "publishedDateTime", False),
        ("QUALITY_DESC", "quality", True),
        ("HEAT_DESC", "heat", True),
    ],
)
def test_every_order_pages_through_the_whole_list(gql, loaded, order, key, desc):
    expected = reference(loaded, key=key, desc=desc)
    assert len(expected) == 11
    for page in (1, 4, 100):
        assert walk(gql, f"orderBy: {order},", page=page) == expected


FILTERS = {
    'topic: "Energy"': lambda d: "Energy" in d.get("topics", []),
    'topicsAny: ["Space", "Privacy"]': lambda d: {"Space", "Privacy"} & set(d.get("topics", [])),
    'providerDomain: "HarborGazette.example"': lambda d: (
        d["provider"]["domain"] == "harborgazette.example"
    ),
    'category: "opinion"': lambda d: d.get("category") == "opinion",
    'type: "article"': lambda d: d.get("type") == "article",
    'publishedAfter: "2025-03-14T09:30:00Z"': lambda d: (
        d["publishedDateTime"] >= datetime(2025, 3, 14, 9, 30)
    ),
    'publishedBefore: "2025-01-09T12:00:00+02:00"': lambda d: (
        d["publishedDateTime"] < datetime(2025, 1, 9, 10)
    ),
    "minQuality: 60": lambda d: d.get("quality", -1) >= 60,
    "minHeat: 0": lambda d: d.get("heat", -2) >= 0,
    'search: "ferry"': lambda d: "ferry" in d["_words"],
    'search: "CAFE owners"': lambda d: {"cafe", "owners"} <= set(d["_words"]),
    'search: "quay café"': lambda d: {"quay", "cafe"} <= set(d["_words"]),
    "published: true": lambda d: True,
    'topic: "Energy", minQuality: 60, publishedAfter: "2024-11-21T00:00:00Z"': lambda d: (
        "Energy" in d["topics"]
        and d["quality"] >= 60
        and d["publishedDateTime"] >= datetime(2024, 11, 21)
    ),
    'topic: "Energy", topicsAny: ["Housing"]': lambda d: {"Energy", "Housing"} <= set(d["topics"]),
}


@pytest.mark.parametrize("flt", list(FILTERS))
def test_every_filter_matches_the_reference(gql, loaded, flt):
    expected = reference(loaded, FILTERS[flt])
    assert walk(gql, f"filter: {{{flt}}},", page=2) == expected
    assert expected or flt.startswith("category")  # each filter selects something
    assert len(expected) < 11 or flt in ('type: "article"', "published: true")


def test_search_is_accent_and_case_insensitive_and_matches_whole_words(gql):
    def titles(s):
        return [
            n["title"]
            for n in gql(f'{{ articles(filter: {{search: "{s}"}}) {{ nodes {{ title }} }} }}')[
                "articles"
            ]["nodes"]
        ]

    assert titles("Café") == titles("cafe") == titles("CAFÉ") != []
    assert titles("fer") == []  # whole words, not prefixes


def test_relevance_puts_title_matches_first(gql, loaded):
    data = gql(
        '{ articles(filter: {search: "clinic"}, orderBy: RELEVANCE, first: 10) '
        "{ nodes { id title } } }"
    )["articles"]["nodes"]
    in_title = ["clinic" in fold(n["title"]) for n in data]
    assert in_title == sorted(in_title, reverse=True) and any(in_title) and not all(in_title)
    pages = walk(gql, 'filter: {search: "clinic"}, orderBy: RELEVANCE,', page=1)
    assert pages == [n["id"] for n in data]


def test_articles_without_a_sort_key_still_page_correctly(gql, loaded):
    loaded.articles.update_many(
        {"_id": {"$in": reference(loaded)[3:6]}},
        {"$unset": {"publishedDateTime": "", "quality": ""}},
    )
    for order, key, desc in [
        ("PUBLISHED_DESC", "publishedDateTime", True),
        ("PUBLISHED_ASC", "publishedDateTime", False),
        ("QUALITY_DESC", "quality", True),
    ]:
        assert walk(gql, f"orderBy: {order},", page=2) == reference(loaded, key=key, desc=desc)


def test_cursors_stay_valid_when_articles_are_added(gql, loaded):
    first = gql(f"{{ articles(first: 3) {{ pageInfo {{ endCursor }} nodes {{ {NODE} }} }} }}")
    cursor = first["articles"]["pageInfo"]["endCursor"]
    newest = loaded.articles.find_one({"published": True}, sort=[("publishedDateTime", -1)])
    clone = {
        **newest,
        "_id": "f" * 24,
        "webUrl": "https://new.example/a",
        "publishedDateTime": datetime(2030, 1, 1),
    }
    loaded.articles.insert_one(clone)
    rest = gql(
        "query($a: String) { articles(first: 100, after: $a) { nodes { id } } }", {"a": cursor}
    )["articles"]["nodes"]
    seen = [n["id"] for n in first["articles"]["nodes"]] + [n["id"] for n in rest]
    assert seen == [i for i in reference(loaded) if i != "f" * 24]


def test_first_zero_gives_an_empty_page_with_a_count(gql):
    data = gql("{ articles(first: 0) { totalCount nodes { id } pageInfo { hasNextPage } } }")
    assert data["articles"] == {"totalCount": 11, "nodes": [], "pageInfo": {"hasNextPage": True}}


def test_lookup_by_id_and_by_web_url(gql, loaded):
    doc = loaded.articles.find_one({"published": True, "related.0": {"$exists": True}})
    by_id = gql("query($id: ID) { article(id: $id) { webUrl title } }", {"id": doc["_id"]})
    assert by_id["article"] == {"webUrl": doc["webUrl"], "title": doc["title"]}
    messy = doc["webUrl"].replace("https://www.", "http://WWW.") + "#comments"
    by_url = gql("query($u: String) { article(webUrl: $u) { id } }", {"u": messy})
    assert by_url["article"] == {"id": doc["_id"]}
    assert gql('{ article(id: "000000000000000000000000") { id } }')["article"] is None
