"""Normal clients beside hostile ones: does a quiet client notice an attack?

Two phases against one running server, each ``seconds`` long: the normal mix of
:mod:`bench.load` alone, then the same mix beside an attack. The normal clients'
p50/p99 and errors in both phases are the result; the target is a p99 under
attack within 2x of the quiet one. The attackers' answers are only tallied by
status: what matters is what they cost everyone else. The attacks
(:data:`CLASSES`):

- ``mix``: ``attackers`` clients, each an address of its own, sending the
  request shapes an attacker would (:data:`ATTACKS`), back to back;
- ``heavy_client``: one client (one address) sending the heaviest query the
  cost limit lets through (:data:`HEAVY`) on 2 connections, back to back, and
  waiting as long as ``Retry-After`` says when refused (sending more would only
  make it the next class);
- ``cheap_flood``: one client sending a cheap query on 16 connections, back to
  back, and never waiting.

Every client names its address in ``X-Forwarded-For`` (``bench.load``): serve
with ``NEWSGRAPH_TRUSTED_PROXIES=127.0.0.1`` so that the normal clients and the
attackers are the different clients they stand for.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

from bench.load import FORWARDED, LoadResult, client_address, run_load

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


#: The heaviest query the default cost limit lets through (48,322 objects and
#: 162 store calls, 49,952 points, of 50,000 objects and 250 calls) whose answer
#: is nearly as large on the bench's 10,000-article corpus: every list a
#: connection that fills on a corpus that size.
HEAVY = """{
  t: topics(first: 60) { nodes { name articles(first: 100) { edges { cursor node {
    id title excerpt webUrl publishedDateTime provider { name domain } } } } } }
  p: providers(first: 100) { nodes { name articles(first: 100) { edges { cursor node {
    id title excerpt webUrl provider { name } } } } } }
}"""
#: A query that costs next to nothing.
CHEAP = "{ topics(first: 1) { totalCount } }"
#: The address group of attackers (normal clients are group 1).
ATTACKERS = 2

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
    attack: str = "mix"

    def summary(self) -> dict[str, Any]:
        quiet, attacked = self.quiet.summary(), self.attacked.summary()
        return {
            "attack": self.attack,
            "quiet": quiet,
            "attacked": attacked,
            "p99_ratio": round(attacked["p99_ms"] / quiet["p99_ms"], 2)
            if quiet["p99_ms"]
            else None,
            "target": "<= 2",
            "attacks": dict(sorted(self.attacks.items())),
        }


async def run_hostile(
    url: str,
    clients: int,
    attackers: int,
    seconds: float,
    pid: int | None = None,
    attack: str = "mix",
) -> HostileResult:
    quiet = await run_load(url, clients, seconds, pid)
    tally: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    attacked, *_ = await asyncio.gather(
        run_load(url, clients, seconds, pid),
        *CLASSES[attack](url, attackers, deadline, tally),
    )
    return HostileResult(quiet, attacked, tally, attack)


Attackers = list[Coroutine[Any, Any, None]]


def _mix(url: str, attackers: int, deadline: float, tally: Counter[str]) -> Attackers:
    shapes = itertools.cycle([*ATTACKS, "hangup"])
    return [_attack(url, next(shapes), n, deadline, tally) for n in range(attackers)]


def _heavy_client(url: str, attackers: int, deadline: float, tally: Counter[str]) -> Attackers:
    return [_one_client(url, "heavy_client", HEAVY, deadline, tally, True) for _ in range(2)]


def _cheap_flood(url: str, attackers: int, deadline: float, tally: Counter[str]) -> Attackers:
    return [_one_client(url, "cheap_flood", CHEAP, deadline, tally, False) for _ in range(16)]


#: Each attack: the attackers' coroutines, given the server, the ``attackers``
#: option, when to stop and the tally to count their answers in.
CLASSES: dict[str, Callable[[str, int, float, Counter[str]], Attackers]] = {
    "mix": _mix,
    "heavy_client": _heavy_client,
    "cheap_flood": _cheap_flood,
}


async def _one_client(
    url: str, name: str, query: str, deadline: float, tally: Counter[str], patient: bool
) -> None:
    """One connection of the one attacking client (every connection says the
    same address): ``query`` back to back; ``patient``, it waits as long as a
    refusal's ``Retry-After`` says."""
    headers = {FORWARDED: client_address(ATTACKERS, 0)}
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.post("/graphql", json={"query": query}, headers=headers)
            except httpx.HTTPError as exc:
                tally[f"{name}: {type(exc).__name__}"] += 1
                continue
            tally[f"{name}: {response.status_code}"] += 1
            wait = response.headers.get("retry-after")
            if patient and response.status_code in (429, 503) and wait:
                await asyncio.sleep(min(float(wait), max(0.0, deadline - time.monotonic())))


async def _attack(url: str, shape: str, n: int, deadline: float, tally: Counter[str]) -> None:
    rng = random.Random(n)
    hangup = shape == "hangup"
    build = related_chain if hangup else ATTACKS[shape]
    timeout = HANGUP_AFTER_S if hangup else 30.0
    headers = {FORWARDED: client_address(ATTACKERS, n)}
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.post("/graphql", json=build(rng), headers=headers)
                tally[f"{shape}: {response.status_code}"] += 1
            except httpx.HTTPError as exc:
                tally[f"{shape}: {type(exc).__name__}"] += 1
