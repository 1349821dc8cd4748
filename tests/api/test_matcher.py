"""api.data.matcher: an ``ArticleFilter`` evaluated in memory selects what the same
filter selects in the store, on both engines (the query path is the reference)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.data.filters import article_query
from api.data.matcher import UnsupportedFilter, compile_filter
from api.schema.filters import ArticleFilter
from core.document import search_words
from loaders import load_paths
from tests.articles import EXAMPLES, write_article

#: One of each kind of filter, and a few together (the values are in the corpus).
FILTERS: list[dict[str, Any]] = [
    {},
    {"topic": "Energy"},
    {"topicsAny": ["Space", "Privacy"]},
    {"providerDomain": " HarborGazette.example "},
    {"category": "opinion"},
    {"type": "article"},
    {"publishedAfter": datetime(2025, 3, 14, 9, 30)},
    {"publishedBefore": datetime(2025, 1, 9, 12, tzinfo=timezone(timedelta(hours=2)))},
    {"minQuality": 60},
    {"minHeat": 0},
    {"search": "ferry"},
    {"search": "CAFE owners"},
    {"published": True},
    {"published": False},
    {"topic": "Energy", "minQuality": 60, "publishedAfter": datetime(2024, 11, 21)},
    {"topic": "Energy", "topicsAny": ["Housing"]},
    {"topic": "Nowhere"},
]


@pytest.fixture
def corpus(store, settings, tmp_path):
    """The sample articles, and a few missing the optional fields a filter reads."""
    write_article(tmp_path, "bare.md", webUrl='"https://bare.example/a"', quality=None, heat=None)
    write_article(
        tmp_path,
        "undated.md",
        webUrl='"https://bare.example/b"',
        publishedDateTime=None,
        topics="[]",
        category=None,
        provider=None,
    )
    for path in (EXAMPLES, tmp_path):
        report = load_paths(store, [path], settings)
        assert report.ok, report.failures
    return store


def agree(store, flt: ArticleFilter | None, admin: bool) -> None:
    query = article_query(flt, admin=admin)
    in_store = {d["_id"] for d in store.articles.find(query, {"_id": 1})}
    matches = compile_filter(query)
    in_memory = {d["_id"] for d in store.articles.find() if matches(d)}
    assert in_memory == in_store, (flt, admin, query)


@pytest.mark.parametrize("admin", [False, True])
@pytest.mark.parametrize("given_", FILTERS, ids=lambda f: ",".join(f) or "none")
def test_every_filter_selects_what_the_store_selects(corpus, given_, admin):
    agree(corpus, ArticleFilter(**given_) if given_ else None, admin)


def filters(words: list[str], topics: list[str]) -> st.SearchStrategy[ArticleFilter]:
    """Filters made of values the corpus has (and some it has not)."""
    moments = st.datetimes(min_value=datetime(2024, 6, 1), max_value=datetime(2025, 12, 31))

    def some(values: list[str]) -> st.SearchStrategy[str | None]:
        return st.none() | st.sampled_from(values)

    return st.builds(
        ArticleFilter,
        topic=some([*topics, "Nowhere"]),
        topicsAny=st.none() | st.lists(st.sampled_from([*topics, "Nowhere"]), max_size=3),
        providerDomain=some(["harborgazette.example", "orbitalweekly.example", "x.example"]),
        category=some(["news", "opinion", "community"]),
        type=some(["article", "video"]),
        publishedAfter=st.none() | moments,
        publishedBefore=st.none() | moments.map(lambda m: m.replace(tzinfo=UTC)),
        minQuality=st.none() | st.integers(-1, 101),
        minHeat=st.none() | st.integers(-2, 100),
        search=st.none() | st.lists(st.sampled_from(words), min_size=1, max_size=3).map(" ".join),
        published=st.none() | st.booleans(),
    )


def test_random_filters_select_what_the_store_selects(corpus):
    docs = list(corpus.articles.find())
    words = [*sorted({w for d in docs for w in d.get("_words", [])})[:60], "zzz"]
    topics = sorted({t for d in docs for t in d.get("topics", [])})

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(flt=filters(words, topics), admin=st.booleans())
    def check(flt: ArticleFilter, admin: bool) -> None:
        agree(corpus, flt, admin)

    check()


# -- MongoDB's rules where documents differ ------------------------------------


def test_a_list_matches_when_one_item_does():
    assert compile_filter({"topics": "a"})({"topics": ["b", "a"]})
    assert compile_filter({"topics": {"$in": ["x", "a"]}})({"topics": ["a"]})
    assert compile_filter({"provider.domain": "d"})(
        {"provider": [{"domain": "e"}, {"domain": "d"}]}
    )
    assert compile_filter({"_words": {"$all": ["a", "b"]}})({"_words": ["b", "c", "a"]})
    assert not compile_filter({"_words": {"$all": ["a", "z"]}})({"_words": ["a"]})
    assert not compile_filter({"_words": {"$all": []}})({"_words": ["a"]})


def test_a_range_compares_only_values_of_one_kind():
    at_least_50 = compile_filter({"quality": {"$gte": 50}})
    assert at_least_50({"quality": 50}) and at_least_50({"quality": 50.5})
    assert not at_least_50({"quality": "60"}) and not at_least_50({}) and not at_least_50({"q": 1})
    assert not at_least_50({"quality": True}) and not at_least_50({"quality": None})
    after = compile_filter({"publishedDateTime": {"$gte": datetime(2025, 1, 1, tzinfo=UTC)}})
    assert after({"publishedDateTime": datetime(2025, 1, 1)})  # stored naive, in UTC
    assert not after({"publishedDateTime": "2026-01-01"})


def test_true_is_not_one_and_null_matches_a_missing_field():
    assert not compile_filter({"published": True})({"published": 1})
    assert not compile_filter({"heat": 1})({"heat": True})
    assert compile_filter({"heat": 1})({"heat": 1.0})
    assert compile_filter({"category": None})({}) and not compile_filter({"category": None})(
        {"category": "x"}
    )


def test_and_or_nor():
    doc = {"a": 1, "b": 2}
    assert compile_filter({"$and": [{"a": 1}, {"b": 2}]})(doc)
    assert compile_filter({"$or": [{"a": 2}, {"b": 2}]})(doc)
    assert not compile_filter({"$nor": [{"a": 2}, {"b": 2}]})(doc)


@pytest.mark.parametrize(
    "query",
    [{"a": {"$regex": "x"}}, {"$where": "1"}, {"a": {"$gt": [1]}}, {"$or": []}, {"a": {"$in": 1}}],
)
def test_what_it_does_not_know_is_refused_when_compiled(query):
    with pytest.raises(UnsupportedFilter):
        compile_filter(query)


def test_search_words_fold_as_the_loader_stores_them():
    query = article_query(ArticleFilter(search="Café"), admin=False)
    assert compile_filter(query)({"published": True, "_words": search_words("le cafe")})
