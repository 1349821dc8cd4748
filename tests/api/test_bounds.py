"""Parsing and validation cost bounded work, and what they keep bounded memory,
whatever the document. Work is counted (tokens lexed, fields compared, whether
graphql-core's validate ran) rather than timed, so these hold on a busy machine."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import graphql.language.lexer as lexer_module
import graphql.validation.rules.overlapping_fields_can_be_merged as overlapping
import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import FieldNode, NameNode, Visitor, parse, print_ast, validate, visit
from graphql.language import Token
from starlette.testclient import TestClient

import api.operation.documents as documents_module
from api.app import create_app
from api.bounded import document_size
from api.operation.documents import (
    _TOKEN,
    CHARS_PER_TOKEN,
    DocumentCache,
    FindDocument,
    over_token_limit,
)
from api.operation.request import Operation, Refused, Request
from api.operation.schema import Schema, build_schema
from api.operation.selections import check_selections
from bench import queries
from core.config import Settings
from core.store import connect
from tests.api.fixtures import without_budget
from tests.api.test_persisted import extension, hash_only_get

DEFAULTS = Settings()
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
EXAMPLES = [
    *re.findall(r"```graphql\n(.*?)```", README, flags=re.S),
    queries.FRONT_PAGE,
    queries.MOBILE,
    queries.FILTERED,
    queries.SEARCH,
    queries.FACETS,
    queries.SAMPLE,
]
ARTICLE_FIELDS = (
    "id title excerpt body category type webUrl originalUrl ampWebUrl cdnAmpWebUrl "
    "publishedDateTime quality heat published"
)


def doubling_fragments(n: int) -> str:
    """Fragment k spreads fragment k-1 twice: n fragments, 2^(n-1) expansions
    of one field in under 40 bytes a fragment."""
    defs = ["fragment F0 on Query { a: __typename }"] + [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, n)
    ]
    return f"{{ ...F{n - 1} }} " + " ".join(defs)


def repeated(selection: str, times: int) -> str:
    return "{ " + " ".join([selection] * times) + " }"


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[TestClient]:
    """The API on an empty embedded store (requests here do not need articles)."""
    settings = dataclasses.replace(settings, db_name=f"t_{uuid.uuid4().hex[:12]}")
    store = connect(settings)
    try:
        with TestClient(create_app(settings, store)) as client:
            yield client
    finally:
        store.close()


@pytest.fixture
def app_client() -> Iterator[TestClient]:
    with serving(DEFAULTS) as client:
        yield client


def schema_of(client: TestClient) -> Schema:
    return next(r.endpoint for r in client.app.routes if r.path == "/graphql").schema


def messages(response) -> str:
    return " | ".join(e["message"] for e in response.json()["errors"])


def count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """One entry per call of ``module.name`` from now on."""
    calls: list[int] = []
    original = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs of graphql-core's validate through strawberry."""
    return count_calls(monkeypatch, strawberry_schema, "validate")


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pairs of fields graphql-core compares to see whether they merge."""
    return count_calls(monkeypatch, overlapping, "find_conflict")


# --- parsing ---------------------------------------------------------------


#: Documents over the token limit as an attacker sends them (each within the body limit).
OVER_THE_LIMIT = {
    "tokens": "{ " + "a " * 49_000 + "}",  # 98 KB of tokens
    "6,000 tokens": "{ " + "a " * 6000 + "}",
    "comments": "{ a " + "#\n" * 32_000 + "}",  # graphql-core keeps each as a token
    "comment flood": "{ a " + "# comment\n" * 9000 + "}",
    "one long comment": "{ a #" + "x" * 90_000 + "\n}",
    "block string": '{ a(s: """' + "x" * 96_000 + '""") }',  # one token, as long to lex
    "string": '{ a(s: "' + "x" * 96_000 + '") }',
    "spaces": "{ a" + " " * 90_000 + "}",
    "a long name": "{ " + "a" * 90_000 + " }",
    "just over": "{" + " a" * 1997 + "}",  # 1,999 tokens, and 3,996 characters
}


@pytest.fixture
def lexed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per Token graphql-core's lexer makes from now on."""
    made: list[int] = []

    class CountedToken(Token):
        def __init__(self, *args, **kwargs) -> None:
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(lexer_module, "Token", CountedToken)
    return made


@pytest.mark.parametrize("case", list(OVER_THE_LIMIT))
def test_a_document_over_the_token_limit_is_refused_before_the_lexer_runs(app_client, lexed, case):
    response = app_client.post("/graphql", json={"query": OVER_THE_LIMIT[case]})
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert f"Syntax Error: Document contains more than {DEFAULTS.max_tokens} tokens" in (
        messages(response)
    )
    assert lexed == []


def test_the_count_allocates_no_object_per_token_and_stops_at_the_limit():
    dense = OVER_THE_LIMIT["tokens"]
    tracemalloc.start()
    try:
        assert over_token_limit(dense, 2000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The text after where it stopped, copied once, and a pointer per match:
    # graphql-core's lexer made a Token of about 100 bytes per token, and kept them.
    assert peak < len(dense) + 2001 * 8 + 4096
    # A text the limit cannot cover is refused without being read.
    assert over_token_limit("x" * (32 * 2001), 2000)


def documents_of_every_kind() -> list[str]:
    """Valid documents with every kind of token, and the README's queries."""
    return [
        *EXAMPLES,
        'query Q($a: Int = -12, $b: Float = 1.5e-3, $c: [ID!] = ["x", "y"]) '
        "{ ...F a(s: $a, t: $b) @include(if: true) } fragment F on Query { __typename }",
        '{ a(s: """block "" \\""" string\n with lines""", t: "esc \\" \\u00e9 \\\\") }',
        "# comment first\n{ a # a comment\n b, c ,, d }",
        "\ufeff{ a }",
    ]


@pytest.mark.parametrize("query", documents_of_every_kind(), ids=lambda q: " ".join(q.split())[:30])
def test_the_count_is_graphql_cores_for_valid_documents(query):
    counted = _TOKEN.subn("", query)[1]
    assert counted == parse(query).token_count
    # So a document passes when its tokens and length are within the limit.
    weight = counted + len(query) // CHARS_PER_TOKEN
    assert not over_token_limit(query, weight) and over_token_limit(query, weight - 1)


def test_a_document_at_the_limit_is_answered_and_one_over_refused(app_client):
    # "{ __typename __typename … }": 1 + n + 1 tokens of 11 characters each.
    def doc(n: int) -> str:
        return "{" + " __typename" * n + " }"

    fits = max(n for n in range(1000, 2000) if not over_token_limit(doc(n), DEFAULTS.max_tokens))
    answered = app_client.post("/graphql", json={"query": doc(fits)}).json()
    assert "tokens" not in json.dumps(answered)  # refused later, for its repeats
    refused = app_client.post("/graphql", json={"query": doc(fits + 1)})
    assert "more than 2000 tokens" in messages(refused)


def test_a_refused_document_sent_again_is_refused_without_being_read_again(
    app_client, lexed, monkeypatch
):
    counted = count_calls(monkeypatch, documents_module, "over_token_limit")
    parsed = count_calls(monkeypatch, documents_module, "parse")
    over, broken = OVER_THE_LIMIT["6,000 tokens"], "{ a(x: 1) \n  b(y: ) }"
    first = [app_client.post("/graphql", json={"query": q}).json() for q in (over, broken)]
    assert (len(counted), len(parsed)) == (2, 1)
    made = len(lexed)
    for _ in range(3):
        again = [app_client.post("/graphql", json={"query": q}).json() for q in (over, broken)]
        assert [without_budget(a) for a in again] == [without_budget(a) for a in first]
    assert (len(counted), len(parsed), len(lexed)) == (2, 1, made)
    assert first[1]["errors"][0]["locations"] == [{"line": 2, "column": 8}]
    assert first[1]["errors"][0]["message"] == "Syntax Error: Unexpected ')'."


def test_refusals_are_remembered_within_their_bytes():
    cache = DocumentCache(1_000_000)
    finder = FindDocument(cache, DEFAULTS.max_tokens)
    for i in range(3000):  # syntax errors quoting a name up to 20 kB long, all distinct
        query = "{ a } " + f"n{i}" + "y" * (i * 7 % 20_000)  # quoted in the message
        with pytest.raises(Refused):
            finder(Operation(Request(query), query=query))
        assert cache.refusals.currsize <= DocumentCache.REFUSALS_BYTES
    assert 20 <= len(cache.refusals) < DocumentCache.REFUSALS_KEPT
    assert max(r.size for r in cache.refusals.values()) > 10_000
    # JSON may carry a lone surrogate, which UTF-8 cannot: still remembered.
    odd = '{ a(s: "\ud800") } }'
    for _ in range(2):
        with pytest.raises(Refused, match="Invalid character within String"):
            finder(Operation(Request(odd), query=odd))


# --- validation ------------------------------------------------------------

HOSTILE = {
    # 820 bytes; strawberry's alias limit expanded it a million times (3 s).
    "21 doubling fragments": (doubling_fragments(21), "is selected more than 20 times"),
    # 1.2 KB, which would have taken about half an hour.
    "30 doubling fragments": (doubling_fragments(30), "is selected more than 20 times"),
    # The longest within the token limit (which counts each 32 characters too).
    "same field 340 times": (
        repeated("articles { totalCount }", 340),
        "'articles' is selected more than 20 times",
    ),
    "same alias 250 times": (repeated("a: articles { totalCount }", 250), "'a' is selected"),
    "nested leaf 240 times": (
        repeated("articles { nodes { title } }", 240),
        "'articles' is selected",
    ),
    "a fragment of 270 fields spread 270 times": (
        repeated("articles { ...F }", 270)
        + " fragment F on ArticleConnection { "
        + " ".join(["totalCount"] * 270)
        + " }",
        "selected more than 20 times",
    ),
    "an unused fragment of 400 fields": (
        "{ __typename } fragment F on Query { " + " ".join(["__typename"] * 400) + " }",
        "'__typename' is selected",
    ),
    "500 distinct paths and more": (
        "{ "
        + " ".join(
            f"a{i}: articles {{ nodes {{ {ARTICLE_FIELDS} provider {{ name domain }} }} }}"
            for i in range(30)
        )
        + " }",
        "more than 500 selections",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_documents_are_refused_before_graphql_core_validates(app_client, validations, case):
    query, message = HOSTILE[case]
    response = app_client.post("/graphql", json={"query": query})
    assert response.status_code == 200
    assert message in messages(response)
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert validations == []


def test_the_worst_accepted_shape_compares_few_fields(app_client, comparisons):
    # Every field repeated as often as allowed, at as many places as allowed.
    query = repeated(f"articles(first: 1) {{ nodes {{ {ARTICLE_FIELDS} }} }}", 20)
    assert check_selections(parse(query), DEFAULTS.max_selections, 20) is None
    response = app_client.post("/graphql", json={"query": query})
    assert "errors" not in response.json()
    # One comparison per pair of copies at each of its 16 places: 16 × C(20, 2).
    assert len(comparisons) == 16 * 190
    repeats = DEFAULTS.max_field_repeats
    places = DEFAULTS.max_selections // repeats
    assert len(comparisons) <= places * repeats * (repeats - 1) // 2


def test_without_the_limits_the_same_shape_costs_quadratic_work(comparisons):
    # Why the repeat limit exists: graphql-core alone compares every pair.
    schema = build_schema()
    validate(schema._schema, parse(repeated("articles { totalCount }", 300)))
    assert len(comparisons) > 40_000


class AddTypename(Visitor):
    """What Apollo Client does to every query it sends."""

    def leave_selection_set(self, node, *_args):
        typename = FieldNode(name=NameNode(value="__typename"))
        return node.__class__(selections=(typename, *node.selections))


@pytest.mark.parametrize("query", EXAMPLES, ids=lambda q: " ".join(q.split())[:30])
def test_every_example_query_is_well_within_the_limits(query):
    apollo = print_ast(visit(parse(query), AddTypename()))
    # A tenth of the selections and a fifth of the repeats (Apollo adds a
    # __typename to each inline fragment too: three at `nodes` in the README's
    # refetch): room for apps far larger than these examples.
    for document in (parse(query), parse(apollo)):
        repeats = DEFAULTS.max_field_repeats // 5
        assert check_selections(document, DEFAULTS.max_selections // 10, repeats) is None


def test_the_limits_are_settings():
    tight = dataclasses.replace(DEFAULTS, max_selections=10, max_field_repeats=1)
    with serving(tight) as client:
        front_page = client.post("/graphql", json={"query": queries.FRONT_PAGE})
        assert "more than 10 selections" in messages(front_page)
        twice = client.post("/graphql", json={"query": "{ __typename __typename }"})
        assert "'__typename' is selected more than 1 times" in messages(twice)


def test_cycles_are_left_to_validation_and_unknown_fragments_refused(app_client, validations):
    cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A __typename }"
    assert check_selections(parse(cycle), 500, 20) is None
    response = app_client.post("/graphql", json={"query": cycle})
    assert "Cannot spread fragment" in messages(response)
    # Strawberry's depth limiter would fail on it with a KeyError ('Nope').
    unknown = app_client.post("/graphql", json={"query": "{ a: __typename ...Nope }"})
    assert messages(unknown) == "Unknown fragment 'Nope'."
    assert len(validations) == 1


def test_a_chain_of_fragments_deeper_than_the_recursion_limit_is_walked():
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(1500))
    document = parse("{ ...F0 } " + chain + " fragment F1500 on Query { __typename }")
    assert check_selections(document, 5000, 20) is None
    assert "more than 1000 selections" in str(check_selections(document, 1000, 20))


# --- memory ----------------------------------------------------------------


def padded(i: int, comments: int) -> str:
    """A valid query that never reaches the store, of about ``comments``
    tokens (graphql-core keeps every comment as a token)."""
    return f"query Q{i} {{ __typename }}" + f"\n# {i}" * comments


@pytest.mark.parametrize(
    "query",
    [
        queries.MOBILE,
        "{" + " a" * 1998 + "}",
        "{ " + " ".join(f"a{i}: x(y: {i})" for i in range(240)) + " }",
        padded(1, 1990),
        '{ a(s: "' + "x" * 90_000 + '") }',
    ],
    ids=["mobile", "dense", "arguments", "comments", "long string"],
)
def test_the_size_estimate_is_not_below_what_a_document_holds(query):
    tracemalloc.start()
    try:
        document = parse(query, max_tokens=2000)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held <= document_size(query, document) <= 3 * held + 200_000


def test_distinct_documents_never_fill_the_cache_past_its_bound():
    bound = 1_000_000
    with serving(dataclasses.replace(DEFAULTS, query_cache_bytes=bound)) as client:
        cache = schema_of(client).documents
        for i in range(40):  # each about 40 KB: 1.6 times the bound in all
            response = client.post("/graphql", json={"query": padded(i, 150)})
            assert response.json()["data"] == {"__typename": "Query"}
            assert cache.bytes <= bound
        assert 10 <= len(cache.entries) < 40
        # A document over a sixteenth of the bound is not kept at all (nor
        # evicts anything).
        kept = list(cache.entries)
        big = client.post("/graphql", json={"query": padded(99, 1000)})
        assert big.json()["data"] == {"__typename": "Query"}
        assert list(cache.entries) == kept


def test_documents_that_fail_to_parse_or_validate_are_not_cached(app_client):
    cache = schema_of(app_client).documents
    for query in ["{ __typename", "{ nope }", repeated("__typename", 30)]:
        assert "errors" in app_client.post("/graphql", json={"query": query}).json()
    assert len(cache.entries) == 0
    app_client.post("/graphql", json={"query": "{ __typename }"})
    assert len(cache.entries) == 1


def test_large_persisted_queries_never_fill_the_registry_past_its_bound():
    bound = 200_000
    settings = dataclasses.replace(DEFAULTS, persisted_queries_max_bytes=bound)
    with serving(settings) as client:
        registry = schema_of(client).persisted
        sent = []
        # Each about 12 KB, in one comment (short enough to be kept in the store
        # too): nearly 5 times the bound in all.
        for i in range(80):
            query = f"query Q{i} {{ __typename }} # {i} " + "x" * 12_000
            sent.append(query)
            body = client.post("/graphql", json={"query": query, "extensions": extension(query)})
            assert body.json()["data"] == {"__typename": "Query"}
            assert registry.bytes <= bound
        assert 5 <= len(registry) < 80
        assert hash_only_get(client, sent[-1]).json()["data"] == {"__typename": "Query"}
        # Gone from this worker's cache, but kept in the store for the fleet
        # (NEWSGRAPH_PERSISTED_QUERIES_SHARED): found there, and cached within the bound.
        again = hash_only_get(client, sent[0]).json()
        assert again["data"] == {"__typename": "Query"}
        assert registry.bytes <= bound
    apart = dataclasses.replace(settings, persisted_queries_shared=False)
    with serving(apart) as client:
        for query in sent[:20]:
            client.post("/graphql", json={"query": query, "extensions": extension(query)})
        missing = hash_only_get(client, sent[0]).json()  # this worker's only: forgotten
        assert missing["errors"][0]["message"] == "PersistedQueryNotFound"


def test_a_read_marks_its_entry_used_and_a_miss_gives_the_default():
    # BoundedLRU.get reads cachetools' entries itself: it must keep its order.
    from api.bounded import BoundedLRU

    cache: BoundedLRU[str, int] = BoundedLRU(2, 1000, lambda _: 1)
    assert cache._found is not None and cache._recency is not None  # the pinned cachetools'
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1 and cache.get("x") is None and cache.get("x", 5) == 5
    cache["c"] = 3  # past two entries: the least recently used goes, "b"
    assert sorted(cache) == ["a", "c"]
    # Where cachetools keeps them elsewhere, the same by its own `[]`.
    cache._found = None
    assert cache.get("a") == 1 and cache.get("b") is None
    cache["d"] = 4
    assert sorted(cache) == ["a", "d"]
