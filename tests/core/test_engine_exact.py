"""The embedded engine answers as an unindexed evaluation does.

Hypothesis drives random sequences of the writes the loader makes (inserts,
upserts, replacements that change indexed fields, deletes, unpublishing,
facet rows rebuilt) into the engine and into mongomock, which scans every
document for every query, then asks both the queries the API builds (its own
filter, order and cursor code: ``api.filters``, ``api.pagination``) and
compares: the same documents in the same order, the same counts, the same
duplicate-key refusals. The engine runs strict, so every shape asked is also
one a declared index serves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import mongomock
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mongomock.collection import BulkOperationBuilder
from pymongo import DeleteMany, InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from api.data.cursors import Position, after
from api.data.facets import facet_page
from api.data.filters import ORDERINGS, article_query, merge, words
from api.live.feed import PollPosition as NewsPosition
from api.schema.context import by_ids
from api.schema.filters import ArticleFilter, ArticleOrder
from core.engine import Client
from core.indexes import ARTICLES, FACETS, INDEXES, PROVIDERS, PROVIDERS_FACET, TOPICS_FACET

IDS = ["a1", "b2", "c3", "d4", "e5", "f6"]
URLS = [f"https://example.com/{i}" for i in range(5)]
DATES = [datetime(2024, 1, day, 12) for day in (1, 2, 3)]
TOPICS = ["AI", "Energy", "Health"]
DOMAINS = ["a.com", "b.com"]
WORDS = ["solar", "grid", "clinic"]

article = st.fixed_dictionaries(
    {
        "_id": st.sampled_from(IDS),
        "webUrl": st.sampled_from(URLS),
        # Mostly published, as the loader writes them; a few without the flag.
        "published": st.sampled_from([True, True, True, False]),
        "topics": st.lists(st.sampled_from(TOPICS), max_size=3),
        "publishedDateTime": st.sampled_from([*DATES, None]),
    },
    optional={
        "provider": st.fixed_dictionaries({"domain": st.sampled_from(DOMAINS)}),
        "category": st.sampled_from(["news", "sport"]),
        "type": st.sampled_from(["story", "video"]),
        "quality": st.integers(0, 3),
        "heat": st.integers(-1, 2),
        "_words": st.lists(st.sampled_from(WORDS), max_size=3, unique=True),
        "_titleWords": st.lists(st.sampled_from(WORDS), max_size=2, unique=True),
        "_source": st.fixed_dictionaries({"newsSeq": st.integers(0, 4)}),
    },
)
write = st.one_of(
    st.tuples(st.just("insert"), article),
    st.tuples(st.just("upsert"), article),
    st.tuples(st.just("bulk"), st.lists(article, max_size=4)),
    st.tuples(st.just("insert_many"), st.lists(article, min_size=2, max_size=4)),
    st.tuples(st.just("delete"), st.sampled_from(IDS)),
    st.tuples(st.just("delete_many"), st.lists(st.sampled_from(IDS), max_size=3)),
    st.tuples(st.just("unpublish"), st.sampled_from(IDS)),
    st.tuples(st.just("retopic"), st.sampled_from(IDS), st.lists(st.sampled_from(TOPICS))),
    st.tuples(st.just("facets"), st.dictionaries(st.sampled_from(DOMAINS), st.integers(0, 3))),
)
FILTER_FIELDS = {
    "topic": st.sampled_from(TOPICS),
    "topicsAny": st.lists(st.sampled_from(TOPICS), min_size=1, max_size=2),
    "providerDomain": st.sampled_from(DOMAINS),
    "category": st.just("news"),
    "type": st.just("story"),
    "publishedAfter": st.sampled_from(DATES),
    "publishedBefore": st.sampled_from(DATES),
    "minQuality": st.integers(0, 3),
    "minHeat": st.integers(-1, 2),
    "search": st.sampled_from(["solar", "grid clinic", "Solar GRID"]),
    "published": st.booleans(),
}
# A few conditions at a time: with many, every answer is empty.
article_filter = (
    st.lists(st.sampled_from(sorted(FILTER_FIELDS)), max_size=3, unique=True)
    .flatmap(lambda names: st.fixed_dictionaries({n: FILTER_FIELDS[n] for n in names}))
    .map(lambda values: ArticleFilter(**values))
)
cursor_value = st.none() | st.sampled_from(DATES) | st.integers(-1, 3)
query = st.tuples(
    article_filter,
    st.sampled_from(list(ArticleOrder)),
    st.booleans(),  # admin
    st.none() | st.tuples(st.integers(0, 1), cursor_value, st.sampled_from(IDS)),
    st.integers(0, 4),  # limit
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    engine = Client(str(tmp_path_factory.mktemp("engine")), strict=True, durable=False)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("add_replace", "add_update"):
            patch.setattr(
                BulkOperationBuilder, name, _without_sort(getattr(BulkOperationBuilder, name))
            )
        yield engine
    engine.close()


def _without_sort(method: Any) -> Any:
    """pymongo >= 4.11 passes ``sort=`` to mongomock 4.3's bulk builder, which
    predates it; the reference never sorts a bulk write."""

    def compat(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        assert sort is None
        return method(self, *args, **kwargs)

    return compat


def both(client: Client) -> tuple[Any, Any]:
    """A fresh database on each engine, with the declared indexes."""
    ours = client[f"t{uuid.uuid4().hex[:10]}"]
    theirs = mongomock.MongoClient()["t"]
    for name, models in INDEXES.items():
        ours[name].create_indexes(models)
        theirs[name].create_indexes(models)
    return ours, theirs


def apply(db: Any, step: tuple[Any, ...]) -> Any:
    """One write; what it refused (duplicate keys), to compare."""
    kind, *args = step
    articles = db[ARTICLES]
    try:
        if kind == "insert":
            articles.insert_one(dict(args[0]))
        elif kind == "upsert":
            articles.replace_one({"_id": args[0]["_id"]}, dict(args[0]), upsert=True)
        elif kind == "bulk":
            # Inserts first (a run of them is written at once unless one is
            # refused), then replacements.
            ops: list[Any] = [InsertOne(dict(d)) for d in args[0][:3]]
            ops += [ReplaceOne({"_id": d["_id"]}, dict(d), upsert=True) for d in args[0]]
            if ops:
                articles.bulk_write(ops, ordered=False)
        elif kind == "insert_many":
            articles.insert_many([dict(d) for d in args[0]], ordered=False)
        elif kind == "delete":
            articles.delete_one({"_id": args[0]})
        elif kind == "delete_many":
            articles.delete_many(by_ids(args[0]) if args[0] else {"_id": {"$in": []}})
        elif kind == "unpublish":
            articles.update_one({"_id": args[0]}, {"$set": {"published": False}})
        elif kind == "retopic":
            articles.update_one({"_id": args[0]}, {"$set": {"topics": args[1]}})
        elif kind == "facets":  # as loaders.facets rebuilds them
            rows = [
                ReplaceOne({"_id": k}, {"count": n, "countAll": n}, upsert=True)
                for k, n in args[0].items()
            ]
            db[PROVIDERS].bulk_write([*rows, DeleteMany({"_id": {"$nin": list(args[0])}})])
    except DuplicateKeyError:
        return "duplicate"
    except BulkWriteError as exc:
        return sorted((e["index"], e["code"]) for e in exc.details["writeErrors"])
    return None


def article_queries(
    flt: ArticleFilter, order: ArticleOrder, admin: bool, cursor: Any
) -> list[tuple[dict[str, Any], list[tuple[str, int]]]]:
    """The store queries the API sends for one page (one per RELEVANCE tier)."""
    ordering = ORDERINGS[order.value]
    base = article_query(flt, admin=admin)
    tiers = [base]
    if order is ArticleOrder.RELEVANCE:
        if flt.search is None:
            return []
        in_title = {"_titleWords": {"$all": words(flt.search)}}
        tiers = [merge([base, in_title]), merge([base, {"$nor": [in_title]}])]
    queries = [(base, ordering.sort)]
    for tier, tier_query in enumerate(tiers):
        if cursor is not None and cursor[0] == tier:
            value = cursor[1]
            if ordering.kind == "date" and isinstance(value, int):
                value = DATES[value % len(DATES)]
            if ordering.kind == "int" and isinstance(value, datetime):
                value = 1
            tier_query = merge([tier_query, after(ordering, Position(tier, value, cursor[2]))])
        queries.append((tier_query, ordering.sort))
    return queries


def same(
    ours: Any, theirs: Any, collection: str, flt: dict[str, Any], sort: Any, limit: int
) -> None:
    mine = ours[collection].find(flt)
    reference = theirs[collection].find(flt)
    if sort:
        mine, reference = mine.sort(sort), reference.sort(sort)
    if limit:
        mine, reference = mine.limit(limit), reference.limit(limit)
    got = [d["_id"] for d in mine]
    want = [d["_id"] for d in reference]
    if not sort:
        got, want = sorted(got), sorted(want)
    assert got == want, (flt, sort, limit)
    assert ours[collection].count_documents(flt) == theirs[collection].count_documents(flt), flt


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    writes=st.lists(write, min_size=2, max_size=20), queries=st.lists(query, min_size=1, max_size=6)
)
def test_indexed_answers_equal_a_scan(
    client: Client, writes: list[Any], queries: list[Any]
) -> None:
    ours, theirs = both(client)
    try:
        for step in writes:
            assert apply(ours, step) == apply(theirs, step), step
        # Every stored document, compared whole.
        assert list(ours[ARTICLES].find({}).sort("_id", 1)) == list(
            theirs[ARTICLES].find({}).sort("_id", 1)
        )
        for flt, order, admin, cursor, limit in queries:
            for q, sort in article_queries(flt, order, admin, cursor):
                same(ours, theirs, ARTICLES, q, sort, limit + 1)
        for facet in FACETS:
            for admin in (False, True):
                for search in (None, "a.", "B"):
                    page = facet_page(facet, 3, None, search, admin=admin)
                    same(ours, theirs, facet.collection, page.query, page.ordering.sort, 4)
        same(ours, theirs, ARTICLES, by_ids(IDS[:3]), None, 0)
        same(ours, theirs, ARTICLES, by_ids(IDS[:1]), None, 0)
        news = NewsPosition(1, "c3")
        same(ours, theirs, ARTICLES, news.query(3), [("_source.newsSeq", 1), ("_id", 1)], 3)
        same(
            ours,
            theirs,
            ARTICLES,
            NewsPosition(0).query(4),
            [("_source.newsSeq", 1), ("_id", 1)],
            0,
        )
    finally:
        client.drop_database(ours.name)


def test_the_facets_named_are_those_declared() -> None:
    """The test above walks every facet collection the API serves."""
    assert {f.collection for f in FACETS} == {PROVIDERS_FACET.collection, TOPICS_FACET.collection}


def test_a_walk_narrowed_by_other_indexes_finds_what_a_scan_finds(client: Client) -> None:
    """A rare combination (one topic of twenty, one category of twenty: five
    of 2,000 articles): the walk of one index, once its first documents seldom
    match, skips in SQL what the other index's range does not hold. A topic
    and a provider, combined in an index of their own, walk that index alone."""
    ours, theirs = both(client)
    try:
        docs = [
            {
                "_id": f"{i:04d}",
                "webUrl": f"https://example.com/{i}",
                "published": i % 9 != 0,
                "publishedDateTime": DATES[i % 3],
                "topics": [f"t{i % 20}"],
                "provider": {"domain": f"p{(i // 20) % 20}.com"},
                "category": f"c{(i // 20) % 20}",
            }
            for i in range(2000)
        ]
        ours[ARTICLES].insert_many([dict(d) for d in docs])
        theirs[ARTICLES].insert_many([dict(d) for d in docs])
        newest = [("publishedDateTime", -1), ("_id", -1)]
        for topic, n in (("t3", 7), ("t1", 0), ("t19", 5)):
            by_category = article_query(ArticleFilter(topic=topic, category=f"c{n}"), admin=False)
            by_provider = article_query(
                ArticleFilter(topic=topic, providerDomain=f"p{n}.com"), admin=False
            )
            for flt in (by_category, by_provider):
                plan = ours[ARTICLES].find(flt).sort(newest).limit(5).explain()["queryPlanner"]
                if flt is by_category:
                    assert plan["winningPlan"]["semijoins"], plan
                else:
                    assert plan["winningPlan"]["index"] == "provider_topic_date", plan
                    assert plan["winningPlan"]["sorted"], plan
                for limit in (0, 3, 200):
                    same(ours, theirs, ARTICLES, flt, newest, limit)
    finally:
        client.drop_database(ours.name)
