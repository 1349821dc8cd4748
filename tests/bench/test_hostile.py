"""The hostile mix (bench/hostile.py): every attack shape reaches the server and
is answered or refused without a 5xx, while normal clients keep getting answers
with no errors and the server's memory stays bounded."""

from __future__ import annotations

import asyncio
import os
import random

import httpx2 as httpx
import pytest
from graphql import parse

from bench.hostile import (
    ATTACKS,
    BODY,
    ONE_AT_A_TIME,
    defer_flood_cost,
    plan_flood_memory,
    run_attack,
    run_hostile,
)
from core.config import Settings
from loaders import load_paths
from testing.live import running_server
from testing.ports import free_port
from tests.articles import write_linked_corpus

SECONDS = float(os.environ.get("NEWSGRAPH_LOAD_SECONDS", "5")) / 2


def test_every_attack_is_a_graphql_request_of_the_shape_it_names():
    rng = random.Random(1)
    for name, build in ATTACKS.items():
        body = build(rng)
        parse(body["query"])  # well-formed GraphQL: the server must do the work to refuse it
        # The same text again: refused ones resent, or one whose cost is its answer.
        repeats = ("nested_lists", "related_chain", "token_refusal", "defer_flood")
        assert body != build(rng) or name in repeats, name
    assert ATTACKS["related_chain"](rng)["query"].count("related") == 4
    assert ATTACKS["nested_lists"](rng)["query"].count("articles(first: 100)") == 3
    flood = parse(ATTACKS["plan_flood"](rng)["query"])
    assert len(flood.definitions[0].selection_set.selections) == 28
    assert ATTACKS["defer_flood"](rng)["query"].count("@defer") == 238
    refusals = {len(ATTACKS["token_refusal"](rng)["query"]) for _ in range(30)}
    assert len(refusals) == 3 and max(refusals) < Settings().max_body_bytes


@pytest.fixture
def linked_server(engine, store, settings, tmp_path):
    """A live server over articles that cite each other densely."""
    corpus = write_linked_corpus(tmp_path / "linked")
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    args: list[str] = []
    if engine == "embedded":
        args = ["--load", str(corpus)]
    else:
        assert load_paths(store, [corpus], settings).ok
    with running_server(env, *args) as (url, pid):
        yield url, pid


def test_related_chains_fan_out_on_the_linked_corpus_and_are_priced(linked_server):
    url, _pid = linked_server
    chain = (
        "{ articles(first: 2) { nodes { related { article { related { article { title } } } } } } }"
    )
    body = httpx.post(url + "/graphql", json={"query": chain}, timeout=10).json()
    assert "errors" not in body, body["errors"]
    cost = body["extensions"]["cost"]
    assert cost["actual"]["objects"] > 2 * 12 * 12  # every level really fans out
    assert cost["actual"]["objects"] <= cost["requested"]["objects"]
    deeper = (
        "{ articles(first: 100) { nodes { "
        + "related { article { " * 3
        + "title"
        + " } }" * 3
        + " } } }"
    )
    refused = httpx.post(url + "/graphql", json={"query": deeper}, timeout=10).json()
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


def test_normal_clients_keep_answering_beside_attackers(linked_server):
    url, pid = linked_server
    attackers = len(ATTACKS) + 1  # one of each, and one that hangs up
    result = asyncio.run(run_hostile(url, clients=4, attackers=attackers, seconds=SECONDS, pid=pid))
    summary = result.summary()
    print("hostile:", summary)
    assert result.quiet.errors == [] and result.attacked.errors == [], result.attacked.errors[:3]
    assert result.attacked.requests > 0
    shapes = {key.split(":")[0] for key in result.attacks}
    assert shapes == {*ATTACKS, "hangup"}, result.attacks
    assert not [key for key in result.attacks if key.split(": ")[1].startswith("5")], result.attacks
    assert summary["attacked"]["rss_mb_max"] <= summary["quiet"]["rss_mb_max"] + 150, summary
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("attack", sorted(ONE_AT_A_TIME))
def test_each_attack_class_runs_beside_the_normal_clients_and_the_probes(attack, tmp_path):
    """``python -m bench hostile --attack``, briefly: the attack reaches the
    server, the normal mix and both probes are measured in each phase (what
    each attack does to the server is tests/api/test_connections.py's)."""
    corpus = write_linked_corpus(tmp_path / "linked", body=BODY)
    probes = free_port()
    with running_server(
        {"MONGODB_URI": ""}, "--load", str(corpus), "--health-port", str(probes)
    ) as (
        url,
        pid,
    ):
        health_url = f"http://127.0.0.1:{probes}/healthz"
        count = 1 if attack == "heaviest_query" else 20
        result = asyncio.run(run_attack(url, attack, count, 1.0, 1, health_url, pid))
    summary = result.summary()
    print(attack, summary)
    assert summary["attacker"]["opened"] == count
    for phase in (result.quiet, result.attacked):
        assert phase.health_ms and phase.fresh_ms and phase.server_sockets
    assert result.quiet.load.requests > 0 and not result.quiet.load.errors
    assert not result.quiet.health_failed and not result.attacked.health_failed
    assert max(result.attacked.server_sockets) >= (count if attack != "heaviest_query" else 1)


def test_the_memory_and_defer_measures_report_what_the_server_did(linked_server):
    url, pid = linked_server
    flood = asyncio.run(plan_flood_memory(url, pid, documents=24, connections=2))
    assert flood["answers"] == {"200 ok": 24}, flood
    assert flood["rss_mb_after"] >= flood["rss_mb_before"] > 0
    cost = asyncio.run(defer_flood_cost(url, pid, requests=1))
    # Priced by its parts, the flood is refused before it runs, either way.
    for way in ("multipart", "json"):
        assert cost[way]["answers"] == {"200 application/json QUERY_TOO_COSTLY": 1}, cost
        assert cost[way]["bytes"] < 2000 and cost[way]["cpu_ms"] >= 0
