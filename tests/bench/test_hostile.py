"""The hostile mix (bench/hostile.py): every attack shape reaches the server and
is answered or refused without a 5xx, while normal clients keep getting answers
with no errors and the server's memory stays bounded."""

from __future__ import annotations

import asyncio
import os
import random

import httpx2 as httpx
from graphql import parse

from bench.hostile import ATTACKS, run_hostile

SECONDS = float(os.environ.get("NEWSGRAPH_LOAD_SECONDS", "5")) / 2


def test_every_attack_is_a_graphql_request_of_the_shape_it_names():
    rng = random.Random(1)
    for name, build in ATTACKS.items():
        body = build(rng)
        parse(body["query"])  # well-formed GraphQL: the server must do the work to refuse it
        assert body != build(rng) or name in ("nested_lists", "related_chain"), name
    assert ATTACKS["related_chain"](rng)["query"].count("related") == 4
    assert ATTACKS["nested_lists"](rng)["query"].count("articles(first: 100)") == 3


def test_normal_clients_keep_answering_beside_attackers(live_server):
    url, pid = live_server
    result = asyncio.run(run_hostile(url, clients=4, attackers=6, seconds=SECONDS, pid=pid))
    summary = result.summary()
    print("hostile:", summary)
    assert result.quiet.errors == [] and result.attacked.errors == [], result.attacked.errors[:3]
    assert result.attacked.requests > 0
    shapes = {key.split(":")[0] for key in result.attacks}
    assert shapes == {*ATTACKS, "hangup"}, result.attacks
    assert not [key for key in result.attacks if key.split(": ")[1].startswith("5")], result.attacks
    assert summary["attacked"]["rss_mb_max"] <= summary["quiet"]["rss_mb_max"] + 150, summary
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200
