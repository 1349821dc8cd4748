"""Normal clients beside hostile ones: does a quiet client notice an attack?

Two phases against one running server, each ``seconds`` long: the normal mix of
:mod:`bench.load` alone, then the same mix while ``attackers`` clients send the
request shapes an attacker would (below). The normal clients' p50/p99 and
errors in both phases are the result; the target is a p99 under attack within
2x of the quiet one. The attackers' answers are only tallied by status: what
matters is what they cost everyone else.

The subscription attack (:func:`run_subscription_hostile`) is its own run:
one client's heavy subscriptions on a few sockets, then stories published to
them through the server's watched folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import multiprocessing
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import websockets

from bench.cpu import cpu_seconds
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


# -- subscriptions: heavy ones held open, then news ---------------------------------

#: How deep ``related(first: 6) { article { … } }`` nests under each article a
#: heavy subscription is sent: its price stays under the default budget.
SUBSCRIPTION_DEPTH = 5
#: Related stories each published story cites (a heavy subscription takes 6).
STORY_LINKS = 12
#: The ``type`` of a graphql-transport-ws message, near its start.
MESSAGE_TYPE = re.compile(r'"type"\s*:\s*"(\w+)"')


def heavy_subscription(alias: str = "") -> str:
    """A subscription whose every article is answered with its related
    stories' articles, theirs, and so on, ``SUBSCRIPTION_DEPTH`` deep; an
    alias makes it distinct from the others (no answer shared with them)."""
    inner = "title"
    for _ in range(SUBSCRIPTION_DEPTH):
        inner = f"related(first: 6) {{ title webUrl article {{ title {inner} }} }}"
    field = f"{alias}: articlePublished" if alias else "articlePublished"
    return f"subscription {{ {field} {{ title {inner} }} }}"


def story_text(n: int, cites: list[str]) -> str:
    """An article file (the seed format) citing ``cites`` as its related stories."""
    related = "".join(
        f'\n  - title: "Cited {i}"\n    webUrl: "{url}"\n'
        "    provider:\n      name: Bench Wire\n      domain: benchwire.example"
        for i, url in enumerate(cites)
    )
    stamp = f"{time.time_ns():x}-{n}"
    return (
        "---\n"
        f'title: "Breaking story {stamp}"\n'
        f'webUrl: "https://www.benchwire.example/breaking/{stamp}"\n'
        "publishedDateTime: 2025-06-01T08:00:00Z\n"
        "published: true\n"
        "provider:\n  name: Bench Wire\n  domain: benchwire.example\n"
        f"related:{related}\n"
        "---\n"
    )


@dataclass
class SubscriptionAttack:
    """One client's subscriptions, on a few sockets, held while news is published."""

    #: Where the server's loader watches (``newsgraph serve --load DIR --watch``):
    #: the published stories are written under it.
    publish_into: Path
    sockets: int = 5
    subscriptions: int = 100
    stories: int = 5
    #: Each subscription distinct (its own alias), so none shares an answer.
    distinct: bool = False


async def subscription_attack(
    url: str, attack: SubscriptionAttack, deadline: float, tally: Counter[str]
) -> None:
    """Open the sockets, subscribe, let a poll pass, publish the stories, and
    read what comes until ``deadline``; every message and close is tallied."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        found = await client.post(
            "/graphql",
            json={"query": f"{{ articles(first: {STORY_LINKS}) {{ nodes {{ webUrl }} }} }}"},
        )
    cites = [node["webUrl"] for node in found.json()["data"]["articles"]["nodes"]]
    endpoint = url.replace("http://", "ws://", 1) + "/graphql"
    sockets = []
    for _ in range(attack.sockets):
        ws = await websockets.connect(
            endpoint,
            subprotocols=["graphql-transport-ws"],
            max_size=None,  # type: ignore[list-item]
        )
        await ws.send(orjson.dumps({"type": "connection_init"}).decode())
        sockets.append(ws)
    for n in range(attack.subscriptions):
        query = heavy_subscription(f"s{n}" if attack.distinct else "")
        message = {"id": str(n), "type": "subscribe", "payload": {"query": query}}
        await sockets[n % len(sockets)].send(orjson.dumps(message).decode())

    async def read(ws: Any) -> None:
        try:
            while (left := deadline - time.monotonic()) > 0:
                message = await asyncio.wait_for(ws.recv(), left)
                # An attacker reads what it is sent, but parses only the small
                # messages: the type leads every one of them.
                kind = MESSAGE_TYPE.search(message[:100])
                name = kind.group(1) if kind else "?"
                if name == "error":
                    errors = orjson.loads(message)["payload"]
                    codes = sorted({str((e.get("extensions") or {}).get("code")) for e in errors})
                    name = f"error {','.join(codes)}"
                tally[f"subscriptions: {name}"] += 1
        except TimeoutError:
            pass
        except websockets.ConnectionClosed as closed:
            tally[f"subscriptions: closed {closed.rcvd.code if closed.rcvd else None}"] += 1

    async def publish() -> None:
        await asyncio.sleep(2.5)  # the subscriptions hear what is news from their first poll
        folder = attack.publish_into / f"bench-{time.time_ns():x}"
        folder.mkdir(parents=True)
        for n in range(attack.stories):
            (folder / f"story{n}.md").write_text(story_text(n, cites), encoding="utf-8")

    try:
        await asyncio.gather(publish(), *(read(ws) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()


@dataclass
class SubscriptionHostileResult(HostileResult):
    #: The server's CPU seconds (user + system) in each phase: steadier than
    #: latencies on a machine shared with other work.
    quiet_cpu_s: float | None = None
    attacked_cpu_s: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),
            "server_cpu_s": {"quiet": self.quiet_cpu_s, "attacked": self.attacked_cpu_s},
        }


async def run_subscription_hostile(
    url: str, clients: int, seconds: float, attack: SubscriptionAttack, pid: int | None = None
) -> SubscriptionHostileResult:
    """Normal clients alone, then beside one client's heavy subscriptions
    that news is published to. The attacker runs in a process of its own, as
    on a machine of its own: reading what it is sent costs it CPU that the
    normal clients' measurement must not pay."""
    started = _cpu_seconds(pid)
    quiet = await run_load(url, clients, seconds, pid)
    between = _cpu_seconds(pid)
    spawn = multiprocessing.get_context("spawn")
    tallies: multiprocessing.Queue[Counter[str]] = spawn.Queue()
    attacker = spawn.Process(target=_attacker, args=(url, attack, seconds, tallies))
    attacker.start()
    try:
        attacked = await run_load(url, clients, seconds, pid)
        ended = _cpu_seconds(pid)
        tally = await asyncio.to_thread(tallies.get, True, seconds + 30)
    finally:
        attacker.join(10)
        if attacker.is_alive():
            attacker.kill()
    result = SubscriptionHostileResult(quiet, attacked, tally)
    if started is not None and between is not None and ended is not None:
        result.quiet_cpu_s = round(between - started, 2)
        result.attacked_cpu_s = round(ended - between, 2)
    return result


def _cpu_seconds(pid: int | None) -> float | None:
    return None if pid is None else cpu_seconds(pid)


def _attacker(
    url: str, attack: SubscriptionAttack, seconds: float, tallies: multiprocessing.Queue[Any]
) -> None:
    tally: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    try:
        asyncio.run(subscription_attack(url, attack, deadline, tally))
    finally:
        tallies.put(tally)
