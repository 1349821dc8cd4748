"""Session 13's attacks: each test is a way one hostile client got around a
guard, reproduced; it fails while the gap is open."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from bench.hostile import ARTICLE_LEAVES
from core.config import Settings
from core.store import Store

#: What Apollo Client sends for a query with @defer.
MULTIPART = "multipart/mixed;deferSpec=20220824,application/json"
#: Thirteen scalar fields of Article, one per fragment: its leaves but `id`,
#: which every flood selects undeferred, and with `body`.
FIELDS = ["body", *ARTICLE_LEAVES[1:]]
CHEAP = "{ topics(first: 1) { totalCount } }"


def spread_flood(fragments: int = 12, spreads: int = 20) -> str:
    """``fragments`` one-field fragments, each spread ``spreads`` times with
    ``@defer`` on each of 100 articles (the README's defer flood, spelled with
    named fragments instead of inline ones)."""
    defined = " ".join(f"fragment F{i} on Article {{ {FIELDS[i]} }}" for i in range(fragments))
    spread = " ".join(f"...F{i} @defer" for i in range(fragments) for _ in range(spreads))
    return "{ articles(first: 100) { nodes { id " + spread + " } } } " + defined


def inline_flood(fragments: int) -> str:
    spread = " ".join(f"... @defer {{ {FIELDS[i % len(FIELDS)]} }}" for i in range(fragments))
    return "{ articles(first: 100) { nodes { id " + spread + " } } }"


@pytest.fixture
def frozen_budget(loaded: Store, api_settings: Settings) -> Iterator[TestClient]:
    """The sample articles, with budgets that (nearly) never refill: what a
    request paid is what the bucket lost."""
    settings = dataclasses.replace(api_settings, anonymous_points_per_s=0.001)
    with TestClient(create_app(settings, loaded)) as c:
        yield c


def available(client: TestClient) -> int:
    body = client.post("/graphql", json={"query": CHEAP}).json()
    return int(body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"])


def envelopes(text: str) -> int:
    """The ``pending`` and ``completed`` entries of a multipart answer
    (each ``{"id": …}``): objects the cost analysis prices on every part."""
    return text.count('{"id":')


# -- 1. @defer on a named fragment spread, repeated, is priced once ---------


def test_repeated_deferred_spreads_are_priced_as_the_inline_flood_is(client: TestClient) -> None:
    # graphql-core makes a deferred part of every `...F @defer` (it dedupes
    # a spread by its @defer directive, not by the fragment's name), but
    # cost.py's walk counts a fragment once per level (`seen`), deferred or
    # not: 240 spreads on 100 articles are priced 12 parts an article. On
    # 100 articles: priced 4,901 objects, 24,000 parts, 1.56 MB and 0.5 s of
    # the event loop per request; the same flood spelled inline is refused.
    inline = client.post(
        "/graphql", json={"query": inline_flood(240)}, headers={"accept": MULTIPART}
    )
    assert inline.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    spread = client.post("/graphql", json={"query": spread_flood()}, headers={"accept": MULTIPART})
    assert spread.headers["content-type"].startswith("application/json"), (
        f"ran in {envelopes(spread.text):,} part entries, {len(spread.content):,} bytes"
    )
    assert spread.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


# -- 2. An answer in parts pays only for its data, not for its parts --------


def test_an_answer_in_parts_pays_for_its_parts(frozen_budget: TestClient) -> None:
    # 100 one-field deferred fragments on the 12 sample articles: priced
    # 40,101 objects (a heavy query), 1,200 parts, 83 kB; once made, settle()
    # gives back all but its data's objects (api/operation/pipeline.py
    # _part_objects counts only `data`/`items`), so it pays 33 points, what
    # the undeferred query pays: the price's parts are never paid. On 100
    # articles, 119 fragments are priced 47,701 (a heavy query: it takes one
    # of the worker's 2 heavy slots), make 23,900 part entries, 832 kB and
    # 0.31 s of the event loop, and pay 121 points: one address, refilled
    # 1,000 a second, keeps both heavy slots and the loop busy for good.
    # Fixed: _part_objects counts the pending/completed/incremental entries
    # and each fragment's data object, as cost.py prices them (test_budget's
    # test_an_answer_in_parts_pays_for_the_parts_it_made states the rule).
    client = frozen_budget
    before = available(client)
    answer = client.post(
        "/graphql", json={"query": inline_flood(100)}, headers={"accept": MULTIPART}
    )
    assert answer.headers["content-type"].startswith("multipart/mixed")
    parts = envelopes(answer.text)
    assert parts >= 2_000  # 11 published articles, 100 fragments each
    paid = before - available(client) - 31  # the cheap query pays 31
    assert paid >= parts, f"{parts:,} part entries paid {paid} points"


# -- 3. Subscriptions hold what the client sent, bounded by count alone -----
# Its repro (40 subscriptions, each a 1,400-token document and 90 kB of
# undeclared variables, held 228 MB under tracemalloc) was removed: the
# variables are dropped now (api.operation.allowed; the WebSocket lets go of
# its copy), and what is left, 25.8 MB (0.65 MB a subscription, its parsed
# document), is bounded by the subscription counts alone, not in bytes.
