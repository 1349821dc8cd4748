"""Query scenarios, each beside its limit in the same process and run.

The API is called through its ASGI app (HTTP parsing, GraphQL, JSON encoding,
all in-process); the limit fetches the same documents with raw pymongo and
serializes them with orjson. ``execution`` takes the store out altogether: the
same queries on documents already in memory, against graphql-core's own
``execute`` on plain dicts with a schema of the same shape, and against orjson.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import bson
import graphql
import httpx2 as httpx
import orjson
import strawberry

from api.app import create_app
from api.data.cursors import after, decode_cursor
from api.data.filters import ORDERINGS, article_query, merge
from api.data.gateway import Gateway, answered_on_loop
from api.operation.schema import build_schema, sdl
from api.schema.context import Context
from api.schema.filters import ArticleFilter
from api.schema.scalars import parse as parse_datetime
from api.schema.scalars import serialize as serialize_datetime
from bench.queries import FACETS, FILTERED, FRONT_PAGE, MOBILE, SEARCH
from bench.report import Row, percentiles
from core.config import Settings
from core.document import article_id, search_words
from core.indexes import ARTICLES
from core.store import Store

T = TypeVar("T")

FRONT_FIELDS = {
    "title": 1,
    "excerpt": 1,
    "publishedDateTime": 1,
    "provider": 1,
    "topics": 1,
    "images": 1,
}
MOBILE_FIELDS = {
    "title": 1,
    "excerpt": 1,
    "publishedDateTime": 1,
    "webUrl": 1,
    "provider": 1,
    "images": 1,
    "related": 1,
    "published": 1,
}
NEWEST = [("publishedDateTime", -1), ("_id", -1)]
#: ``first`` in :data:`bench.queries.FRONT_PAGE`.
FRONT_PAGE_SIZE = 20


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def atimed(fn: Callable[[], Awaitable[Any]], reps: int) -> list[float]:
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


#: Seconds a query scenario's timed runs may take on each side, roughly: on a
#: store that scans for every query (FerretDB v1: ~5 s per query at 10k
#: articles) the default 30 runs would take hours at 100k.
BUDGET_S = 60.0
MIN_REPS = 3


def reps_within(one_ms: float, reps: int, budget_s: float = BUDGET_S) -> int:
    """``reps``, or fewer (never under :data:`MIN_REPS`) if that many runs of a
    query taking ``one_ms`` would overrun the budget."""
    fit = int(budget_s * 1000 / max(one_ms, 1e-3))
    return max(min(reps, MIN_REPS), min(reps, fit))


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


class Limits:
    """The raw-pymongo + orjson version of each scenario."""

    def __init__(self, store: Store) -> None:
        self.articles = store.articles
        self.store = store

    def front_page(self) -> bytes:
        docs = list(self.articles.find({"published": True}, FRONT_FIELDS).sort(NEWEST).limit(20))
        return dumps(docs)

    def mobile(self, _id: str) -> bytes:
        doc = self.articles.find_one({"_id": _id}, MOBILE_FIELDS)
        ids = [article_id(r["webUrl"]) for r in doc.get("related", [])]
        linked = list(
            self.articles.find(
                {"_id": {"$in": ids}}, {"title": 1, "related.title": 1, "published": 1}
            )
        )
        return dumps([doc, linked])

    def filtered_page(self, query: dict) -> bytes:
        fields = {"title": 1, "quality": 1, "publishedDateTime": 1}
        return dumps(list(self.articles.find(query, fields).sort(NEWEST).limit(6)))

    def search(self, words: list[str]) -> bytes:
        query = {"published": True, "_words": {"$all": words}}
        return dumps(
            list(
                self.articles.find(query, {"title": 1, "excerpt": 1, "publishedDateTime": 1})
                .sort(NEWEST)
                .limit(21)
            )
        )

    def facets(self) -> bytes:
        top = [("count", -1), ("_id", 1)]
        return dumps(
            [
                list(self.store.providers.find({"count": {"$gt": 0}}).sort(top).limit(21)),
                list(self.store.topics.find({"count": {"$gt": 0}}).sort(top).limit(61)),
            ]
        )


async def query_scenarios(
    store: Store, settings: Settings, size: int, engine: str, reps: int
) -> list[Row]:
    app = create_app(settings, store)
    transport = httpx.ASGITransport(app=app)
    limits = Limits(store)
    rows = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def api(query: str, variables: dict | None = None) -> dict:
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables or {}}
            )
            body = response.json()
            assert "errors" not in body, body["errors"]
            return body["data"]

        # Arguments drawn from the stored corpus.
        sample = store.articles.find_one(
            {"published": True, "related.2": {"$exists": True}},
            {"topics": 1, "provider": 1, "title": 1},
        )
        topic, domain = sample["topics"][0], sample["provider"]["domain"]
        words = search_words(sample["title"])[:2]
        filtered_vars: dict = {"topic": topic, "domain": domain, "after": None}
        for _ in range(4):  # walk to page 5 through cursors
            page = await api(FILTERED, filtered_vars)
            if not page["articles"]["pageInfo"]["hasNextPage"]:
                break
            filtered_vars["after"] = page["articles"]["pageInfo"]["endCursor"]
        ordering = ORDERINGS["PUBLISHED_DESC"]
        base = article_query(
            ArticleFilter(
                topic=topic,
                providerDomain=domain,
                minQuality=30,
                publishedAfter=parse_datetime("2020-01-01T00:00:00Z"),
                publishedBefore=parse_datetime("2030-01-01T00:00:00Z"),
            ),
            admin=False,
        )
        if filtered_vars["after"]:
            base = merge([base, after(ordering, decode_cursor(ordering, filtered_vars["after"]))])

        scenarios = {
            "front_page": (lambda: api(FRONT_PAGE), limits.front_page),
            "mobile": (
                lambda: api(MOBILE, {"id": sample["_id"]}),
                lambda: limits.mobile(sample["_id"]),
            ),
            "filtered": (lambda: api(FILTERED, filtered_vars), lambda: limits.filtered_page(base)),
            "search": (lambda: api(SEARCH, {"q": " ".join(words)}), lambda: limits.search(words)),
            "facets": (lambda: api(FACETS), limits.facets),
        }
        for name, (api_call, limit_call) in scenarios.items():
            await api_call()
            warm_ms = timed(limit_call, 1)[0]  # warms both, and sizes the run
            n = reps_within(warm_ms, reps)
            api_p50, api_p99 = percentiles(await atimed(api_call, n))
            limit_p50, _ = percentiles(timed(limit_call, n))
            rows.append(Row(name, size, engine, api_p50, api_p99, limit_p50, extra={"reps": n}))
    return rows


# -- execution: the GraphQL layer alone ------------------------------------------


def call_key(*call: object) -> bytes:
    """One store call's arguments in canonical form: their BSON, as the store
    receives them. Equal calls give equal bytes; types are kept (a date is not
    its text) and so is key order, which MongoDB heeds (sort specifications,
    equality on embedded documents)."""
    return bson.encode({"call": list(call)})


@dataclass
class Found:
    """One ``find`` the store answered: its arguments and the documents."""

    collection: str
    query: dict[str, Any]
    projection: dict[str, int] | None
    sort: list[tuple[str, int]] | None
    limit: int
    docs: list[dict[str, Any]]


class Uncaptured(LookupError):
    """A store call that a replaying :class:`MemoryGateway` has no answer for."""


class MemoryGateway(Gateway):
    """The API's gateway with the store taken out of the timings: each distinct
    call (by :func:`call_key`) goes to the store once, and is answered from
    memory with what the store said from then on. One ``replaying`` answers
    only from memory (a server replaying what another process captured): a call
    it was not given fails, so a stubbed answer is never made up.

    Each call's answer is where the app's would be: on the event loop or from
    a worker thread (``api.data.gateway``), and the keys of those the loop
    answered are kept (``on_loop``), for a replay to answer them the same way."""

    #: Its calls go through Gateway.find and Gateway.count, to the store itself.
    reads_on_loop = True

    def __init__(self, store: Store, op_timeout_ms: int, *, replaying: bool = False) -> None:
        super().__init__(store, op_timeout_ms)
        self.found: dict[bytes, Found] = {}
        self.counted: dict[bytes, int] = {}
        self.on_loop: set[bytes] = set()
        self.replaying = replaying

    async def find(
        self,
        collection: str,
        query: dict[str, Any],
        projection: dict[str, int] | None = None,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        key = call_key("find", collection, query, projection, sort, limit)
        if key not in self.found:
            if self.replaying:
                raise Uncaptured(f"find on {collection}: {query!r}")
            answered_on_loop.set(False)
            docs = await super().find(collection, query, projection, sort, limit)
            self.found[key] = Found(collection, query, projection, sort, limit, docs)
            if answered_on_loop.get():
                self.on_loop.add(key)
        return self.found[key].docs

    async def find_patiently(
        self, collection: str, query: dict[str, Any], projection: dict[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """The worker's own read (the change marker's): a find like the
        others, captured and replayed (no benchmark's slots are full)."""
        return await self.find(collection, query, projection)

    async def count(self, collection: str, query: dict[str, Any]) -> int:
        key = call_key("count", collection, query)
        if key not in self.counted:
            if self.replaying:
                raise Uncaptured(f"count on {collection}: {query!r}")
            answered_on_loop.set(False)
            self.counted[key] = await super().count(collection, query)
            if answered_on_loop.get():
                self.on_loop.add(key)
        return self.counted[key]

    def articles_found(self) -> list[Found]:
        """The finds on the articles collection answered so far, in call order."""
        return [found for found in self.found.values() if found.collection == ARTICLES]


def graphql_core_schema(docs_by_id: dict[str, dict], front: list[dict]) -> graphql.GraphQLSchema:
    """The same schema (built from its SDL), resolving from plain dicts in memory."""
    schema = graphql.build_schema(sdl())
    # graphql-core's plain execute refuses a schema declaring @defer/@stream
    # (experimental); the timed queries use neither.
    schema.directives = tuple(d for d in schema.directives if d.name not in ("defer", "stream"))
    date_time = schema.get_type("DateTime")
    assert isinstance(date_time, graphql.GraphQLScalarType)
    # graphql-core 3.3 serializes a leaf with coerce_output_value.
    date_time.coerce_output_value = serialize_datetime
    query = _object_type(schema, "Query")
    article = _object_type(schema, "Article")
    related = _object_type(schema, "RelatedStory")
    query.fields["articles"].resolve = lambda _root, _info, **_: {"nodes": front}
    query.fields["article"].resolve = lambda _root, _info, id=None, **_: docs_by_id.get(id)
    article.fields["id"].resolve = lambda doc, _info: doc["_id"]
    article.fields["topics"].resolve = lambda doc, _info: [
        {"name": t} for t in doc.get("topics") or ()
    ]
    for type_ in (article, related):
        type_.fields["images"].resolve = lambda doc, _info: doc.get("images") or []
    # Its first and filter arrive as their defaults (null): all stories, as ours.
    article.fields["related"].resolve = lambda doc, _info, **_: doc.get("related") or []
    related.fields["article"].resolve = lambda story, _info: docs_by_id.get(
        article_id(story["webUrl"])
    )
    return schema


def _object_type(schema: graphql.GraphQLSchema, name: str) -> graphql.GraphQLObjectType:
    type_ = schema.get_type(name)
    assert isinstance(type_, graphql.GraphQLObjectType), name
    return type_


async def execution_scenario(
    store: Store, settings: Settings, size: int, engine: str, reps: int
) -> list[Row]:
    """Each query executed by strawberry (a resolver per field) and by its
    compiled plan (``api.execution.compiled``), each beside graphql-core's ``execute``."""
    # The run so far has built up a large heap; collect it and leave it out of
    # later collections, so this allocation-heavy measurement pays for its own
    # garbage only (measured: 2.5x graphql-core after the other scenarios vs
    # 1.3x in a fresh process, same corpus).
    gc.collect()
    gc.freeze()
    schemas = {
        "execution": build_schema(dataclasses.replace(settings, compiled=False)),
        "execution_compiled": build_schema(dataclasses.replace(settings, compiled=True)),
    }
    sample = store.articles.find_one({"published": True, "related.2": {"$exists": True}})
    rows = []
    for name, text, variables in (
        ("front_page", FRONT_PAGE, {}),
        ("mobile", MOBILE, {"id": sample["_id"]}),
    ):
        gateway = MemoryGateway(store, settings.store_op_timeout_ms)
        rows += await _execution(schemas, gateway, name, text, variables, size, engine, reps)
    return rows


async def _execution(
    schemas: dict[str, strawberry.Schema],
    gateway: MemoryGateway,
    name: str,
    text: str,
    variables: dict,
    size: int,
    engine: str,
    reps: int,
) -> list[Row]:
    def ours(schema: strawberry.Schema) -> Callable[[], Awaitable[dict]]:
        async def execute() -> dict:
            result = await schema.execute(
                text, variable_values=variables, context_value=Context(gateway=gateway)
            )
            assert not result.errors, result.errors
            return result.data

        return execute

    runs = {scenario: ours(schema) for scenario, schema in schemas.items()}
    answers = [await run() for run in runs.values()]  # fills the gateway's memory
    data = answers[0]
    assert all(answer == data for answer in answers), "compiled must answer as strawberry"
    articles = gateway.articles_found()
    docs_by_id = {d["_id"]: d for found in articles for d in found.docs if d.get("published", True)}
    # A list field's page is the one sorted find (lookups by id are unsorted); the
    # API fetches one more than the page (FRONT_PAGE asks for 20) to see if more follow.
    pages = [found.docs[:FRONT_PAGE_SIZE] for found in articles if found.sort]
    core_schema = graphql_core_schema(docs_by_id, pages[0] if pages else [])
    document = graphql.parse(text)

    def core() -> Any:
        result = graphql.execute(core_schema, document, variable_values=variables)
        assert not result.errors, result.errors
        return result.data

    assert core() == data, "graphql-core's answer must equal ours"
    # Sub-millisecond timings drift with the machine: interleave rounds of each
    # and keep each one's best median, so every side sees the same conditions.
    reps = max(reps, 200)
    rounds: dict[str, list[list[float]]] = {key: [] for key in [*runs, "core", "json"]}
    for _ in range(3):
        for scenario, run in runs.items():
            rounds[scenario].append(await atimed(run, reps))
        rounds["core"].append(timed(core, reps))
        rounds["json"].append(timed(lambda: orjson.dumps(data), reps))
    core_p50 = min(percentiles(r)[0] for r in rounds["core"])
    json_p50 = min(percentiles(r)[0] for r in rounds["json"])
    rows = []
    for scenario in runs:
        p50, p99 = min((percentiles(r) for r in rounds[scenario]), key=lambda p: p[0])
        extra = {"query": name, "orjson_p50_ms": json_p50, "ratio_vs_orjson": p50 / json_p50}
        rows.append(Row(scenario, size, engine, p50, p99, core_p50, extra=extra))
    return rows


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
