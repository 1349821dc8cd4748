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
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.load import LoadResult, rss_mb, run_load

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


#: Leaf fields of an article, for documents that select many different ones.
ARTICLE_LEAVES = (
    "id",
    "title",
    "excerpt",
    "category",
    "type",
    "webUrl",
    "originalUrl",
    "ampWebUrl",
    "cdnAmpWebUrl",
    "publishedDateTime",
    "quality",
    "heat",
    "published",
)


def plan_flood(rng: random.Random) -> Body:
    """A distinct, valid 2.8 KB document each time: 28 aliased one-article
    pages (56 objects), cheap to answer, each a new entry in every cache a
    query fills (document, price, plan)."""
    prefix = f"x{rng.getrandbits(40):010x}"
    fields = " ".join(ARTICLE_LEAVES[:7])
    pages = " ".join(
        f"{prefix}{i:02}: articles(first: 1) {{ nodes {{ {fields} }} }}" for i in range(28)
    )
    return {"query": "{ " + pages + " }"}


def token_refusal(rng: random.Random) -> Body:
    """A document refused at the token limit: 6,000 tokens, or one 96 KB block
    string (a single token, but as long to lex), or a flood of comments; the
    same few texts again and again, as a careless or hostile client resends them."""
    kind = rng.randrange(3)
    if kind == 0:
        return {"query": "{ " + "a " * 6000 + "}"}
    if kind == 1:
        return {"query": '{ a(s: """' + "x" * 96_000 + '""") }'}
    return {"query": "{ a " + "# comment\n" * 9000 + "}"}


#: Deferred one-field fragments on each node: as many as the selection and
#: repeat limits let one document hold.
DEFERRED_FRAGMENTS = 238


def defer_flood(rng: random.Random) -> Body:
    """A hundred articles, each with 238 one-field ``@defer`` fragments: every
    fragment on every article is a part of its own when delivered in parts."""
    fragments = " ".join(
        f"... @defer {{ {ARTICLE_LEAVES[i % len(ARTICLE_LEAVES)]} }}"
        for i in range(DEFERRED_FRAGMENTS)
    )
    return {"query": "{ articles(first: 100) { nodes { id " + fragments + " } } }"}


ATTACKS: dict[str, Callable[[random.Random], Body]] = {
    "nested_lists": nested_lists,
    "related_chain": related_chain,
    "validation_work": validation_work,
    "cache_flood": cache_flood,
    "persisted_flood": persisted_flood,
    "plan_flood": plan_flood,
    "token_refusal": token_refusal,
    "defer_flood": defer_flood,
}
#: What a client reading incremental delivery (Apollo Client) accepts.
MULTIPART = "multipart/mixed;deferSpec=20220824,application/json"
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
    url: str,
    clients: int,
    attackers: int,
    seconds: float,
    pid: int | None = None,
    shapes: Sequence[str] | None = None,
) -> HostileResult:
    """The normal mix alone, then beside ``attackers`` clients sending the
    ``shapes`` in turn (every attack and hang-ups, when not given)."""
    quiet = await run_load(url, clients, seconds, pid)
    tally: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    turns = itertools.cycle(shapes or [*ATTACKS, "hangup"])
    attacked, *_ = await asyncio.gather(
        run_load(url, clients, seconds, pid),
        *(_attack(url, next(turns), n, deadline, tally) for n in range(attackers)),
    )
    return HostileResult(quiet, attacked, tally)


async def _attack(url: str, shape: str, n: int, deadline: float, tally: Counter[str]) -> None:
    rng = random.Random(n)
    hangup = shape == "hangup"
    build = related_chain if hangup else ATTACKS[shape]
    timeout = HANGUP_AFTER_S if hangup else 30.0
    # The deferred flood is read in parts, as a client asking for them would.
    headers = {"accept": MULTIPART} if shape == "defer_flood" else {}
    async with httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.post("/graphql", json=build(rng))
                tally[f"{shape}: {response.status_code}"] += 1
            except httpx.HTTPError as exc:
                tally[f"{shape}: {type(exc).__name__}"] += 1


# -- attacks measured on their own: memory held, and work per request -----------


async def plan_flood_memory(
    url: str, pid: int, documents: int = 1000, connections: int = 4
) -> dict[str, Any]:
    """The server's resident memory before and after ``documents`` distinct
    valid documents (:func:`plan_flood`), sent over ``connections`` at once."""
    rng = random.Random(7)
    bodies = [plan_flood(rng) for _ in range(documents)]
    statuses: Counter[str] = Counter()
    before = rss_mb(pid)
    peak = before
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:

        async def sender(n: int) -> None:
            nonlocal peak
            for body in bodies[n::connections]:
                response = await client.post("/graphql", json=body)
                answer = response.json()
                statuses[_outcome(response.status_code, answer)] += 1
                peak = max(peak, rss_mb(pid))

        await asyncio.gather(*(sender(n) for n in range(connections)))
    after = rss_mb(pid)
    return {
        "documents": documents,
        "rss_mb_before": round(before, 1),
        "rss_mb_after": round(after, 1),
        "rss_mb_peak": round(peak, 1),
        "growth_mb": round(after - before, 1),
        "answers": dict(statuses),
    }


async def defer_flood_cost(url: str, pid: int, requests: int = 5) -> dict[str, Any]:
    """Server CPU and bytes per :func:`defer_flood` request, read in parts and
    as one JSON answer (the median of ``requests`` of each)."""
    body = defer_flood(random.Random(1))
    found: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        for name, accept in (("multipart", MULTIPART), ("json", "application/json")):
            cpu, sizes, outcomes = [], [], Counter[str]()
            for _ in range(requests):
                started = cpu_seconds(pid)
                response = await client.post("/graphql", json=body, headers={"accept": accept})
                cpu.append(cpu_seconds(pid) - started)
                sizes.append(len(response.content))
                kind = response.headers.get("content-type", "").split(";")[0]
                outcomes[f"{response.status_code} {kind} {_code_in(response.content)}"] += 1
            found[name] = {
                "cpu_ms": round(sorted(cpu)[len(cpu) // 2] * 1000, 1),
                "bytes": sorted(sizes)[len(sizes) // 2],
                "answers": dict(outcomes),
            }
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _outcome(status: int, answer: dict[str, Any]) -> str:
    errors = answer.get("errors") or []
    code = (errors[0].get("extensions") or {}).get("code", "NO_CODE") if errors else "ok"
    return f"{status} {code}"


def _code_in(content: bytes) -> str:
    """The first error code in an answer's bytes, or "ok"."""
    marker = b'"code":"'
    at = content.find(marker)
    if at < 0:
        marker = b'"code": "'
        at = content.find(marker)
    if at < 0:
        return "ok"
    start = at + len(marker)
    return content[start : content.find(b'"', start)].decode(errors="replace")
