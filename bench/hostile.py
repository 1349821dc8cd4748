"""Normal clients beside hostile ones: does a quiet client notice an attack?

Two phases against one running server, each ``seconds`` long: the normal mix of
:mod:`bench.load` alone, then the same mix while ``attackers`` clients send the
request shapes an attacker would (below). The normal clients' p50/p99 and
errors in both phases are the result; the target is a p99 under attack within
2x of the quiet one. The attackers' answers are only tallied by status: what
matters is what they cost everyone else.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

from bench.load import LoadResult, run_load

Body = dict[str, Any]


def nested_lists(rng: random.Random) -> Body:
    """Lists of lists: each article's topics, each topic's articles, again."""
    inner = "title"
    for _ in range(3):
        inner = f"articles(first: 100) {{ nodes {{ topics {{ name {inner} }} }} }}"
    return {"query": "{ " + inner.replace("name title", "name", 1) + " }"}


def related_chain(rng: random.Random) -> Body:
    """Related stories' articles' related stories, four deep under 100 articles."""
    inner = "title"
    for _ in range(4):
        inner = f"related {{ title article {{ {inner} }} }}"
    return {"query": f"{{ articles(first: 100) {{ nodes {{ {inner} }} }} }}"}


def validation_work(rng: random.Random) -> Body:
    """One selection repeated with varying literals: quadratic field-merging
    checks, and a new text each time so no validation cache helps."""
    repeats = " ".join(
        f"articles(first: {rng.randrange(100)}) {{ totalCount }}" for _ in range(300)
    )
    return {"query": "{ " + repeats + " }"}


def cache_flood(rng: random.Random) -> Body:
    """A distinct, large, valid document each time, to fill parse caches."""
    names = " ".join(f"t{rng.getrandbits(40):x}: title" for _ in range(25))
    padding = "#" + "x" * 6000 + "\n"
    return {"query": padding + "{ articles(first: 1) { nodes { " + names + " } } }"}


def persisted_flood(rng: random.Random) -> Body:
    """Large distinct queries registered under their hashes."""
    query = f"#{rng.getrandbits(64):x}" + "y" * 20_000 + "\n{ topics { totalCount } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {
        "query": query,
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
    }


ATTACKS: dict[str, Callable[[random.Random], Body]] = {
    "nested_lists": nested_lists,
    "related_chain": related_chain,
    "validation_work": validation_work,
    "cache_flood": cache_flood,
    "persisted_flood": persisted_flood,
}
#: An attacker that hangs up: sends an expensive request and gives up soon.
HANGUP_AFTER_S = 0.5


@dataclass
class HostileResult:
    quiet: LoadResult
    attacked: LoadResult
    #: "<attack>: <status or exception>" -> count, for the attackers' requests.
    attacks: Counter[str]

    def summary(self) -> dict[str, Any]:
        quiet, attacked = self.quiet.summary(), self.attacked.summary()
        return {
            "quiet": quiet,
            "attacked": attacked,
            "p99_ratio": round(attacked["p99_ms"] / quiet["p99_ms"], 2)
            if quiet["p99_ms"]
            else None,
            "target": "<= 2",
            "attacks": dict(sorted(self.attacks.items())),
        }


async def run_hostile(
    url: str, clients: int, attackers: int, seconds: float, pid: int | None = None
) -> HostileResult:
    quiet = await run_load(url, clients, seconds, pid)
    tally: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    shapes = itertools.cycle([*ATTACKS, "hangup"])
    attacked, *_ = await asyncio.gather(
        run_load(url, clients, seconds, pid),
        *(_attack(url, next(shapes), n, deadline, tally) for n in range(attackers)),
    )
    return HostileResult(quiet, attacked, tally)


async def _attack(url: str, shape: str, n: int, deadline: float, tally: Counter[str]) -> None:
    rng = random.Random(n)
    hangup = shape == "hangup"
    build = related_chain if hangup else ATTACKS[shape]
    timeout = HANGUP_AFTER_S if hangup else 30.0
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.post("/graphql", json=build(rng))
                tally[f"{shape}: {response.status_code}"] += 1
            except httpx.HTTPError as exc:
                tally[f"{shape}: {type(exc).__name__}"] += 1
