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

The subscription attack (:func:`run_subscription_hostile`) is its own run:
one client's heavy subscriptions on a few sockets, then stories published to
them through the server's watched folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import multiprocessing
import os
import random
import re
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import websockets

from bench.load import FORWARDED, LoadResult, client_address, rss_mb, run_load
from bench.loadgen import cpu_seconds
from bench.report import percentiles

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
    shapes: Sequence[str] | None = None,
    attack: str = "mix",
) -> HostileResult:
    """The normal mix alone, then beside ``attackers`` clients sending the
    ``shapes`` in turn (every attack and hang-ups, when not given)."""
    quiet = await run_load(url, clients, seconds, pid)
    tally: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    attackers_ = (
        _mix(url, attackers, deadline, tally, shapes)
        if attack == "mix"
        else CLASSES[attack](url, attackers, deadline, tally)
    )
    attacked, *_ = await asyncio.gather(
        run_load(url, clients, seconds, pid),
        *attackers_,
    )
    return HostileResult(quiet, attacked, tally, attack)


Attackers = list[Coroutine[Any, Any, None]]


def _mix(
    url: str,
    attackers: int,
    deadline: float,
    tally: Counter[str],
    shapes: Sequence[str] | None = None,
) -> Attackers:
    """The ``shapes`` in turn (every attack and hang-ups, when not given)."""
    turns = itertools.cycle(shapes or [*ATTACKS, "hangup"])
    return [_attack(url, next(turns), n, deadline, tally) for n in range(attackers)]


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
    # The deferred flood is read in parts, as a client asking for them would.
    if shape == "defer_flood":
        headers["accept"] = MULTIPART
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.post("/graphql", json=build(rng), headers=headers)
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


# One attack class at a time, with probes (issue 20, items 5 and 6): attacks on
# connections rather than on work. Each opens ``count`` connections that hold
# something of the server's (a half-read request, an idle socket, an answer no
# one reads), or sends the heaviest query the budget allows; meanwhile the
# normal mix runs, and two probes open a new connection for each request, as a
# new client and a container's HEALTHCHECK do: the small query on the API's
# port, and /healthz wherever ``health_url`` says.

#: A request line and a first header, the rest never sent: Uvicorn waits for
#: the blank line that ends the headers.
HALF_REQUEST = b"GET /graphql?query=%7B__typename%7D HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Wait: "
#: A WebSocket upgrade without the blank line that ends it.
HALF_UPGRADE = (
    b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: graphql-transport-ws\r\nX-Wait: "
)
#: A byte every few seconds: a server that restarts its timer on each read
#: never times these out.
TRICKLE_S = 2.0
#: The heaviest query the default budget allows on the linked corpus
#: (tests/articles.py write_linked_corpus, with bodies of :data:`BODY`):
#: about 36,000 objects, seconds of CPU.
HEAVIEST = (
    "{ articles(first: 60) { nodes { related(first: 12) { title article { "
    "related(first: 12) { title article { related(first: 1) { title article { title } } } } "
    "} } } } }"
)
#: Each article's body ten times over, a part per article: about 5 MB on the
#: linked corpus with 8 KB bodies (:data:`BODY`), cheap to make (60 objects).
DEFERRED = (
    "{ articles(first: 60) { nodes { id ... @defer { "
    + " ".join(f"b{n}: body" for n in range(10))
    + " } } } }"
)
#: The body of each article of the linked corpus the attacks are measured on.
BODY = ("All work and no play. " * 400)[:8000]
MULTIPART = "multipart/mixed;deferSpec=20220824, application/json"
#: How long a probe waits for its answer before it counts as failed.
PROBE_TIMEOUT_S = 5.0


@dataclass
class Held:
    """The attacker's side: connections opened, and when the server closed each."""

    opened: int = 0
    failed: int = 0
    #: Seconds from opening to the server closing it, for those it closed.
    closed_after_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        closed = sorted(self.closed_after_s)
        return {
            "opened": self.opened,
            "failed_to_open": self.failed,
            "closed_by_server": len(closed),
            "closed_after_s_median": round(statistics.median(closed), 1) if closed else None,
            "closed_after_s_max": round(closed[-1], 1) if closed else None,
        }


@dataclass
class Probes:
    """What the normal clients and the probes saw in one phase."""

    load: LoadResult
    fresh_ms: list[float] = field(default_factory=list)
    fresh_failed: Counter[str] = field(default_factory=Counter)
    health_ms: list[float] = field(default_factory=list)
    health_failed: Counter[str] = field(default_factory=Counter)
    server_sockets: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        load = self.load.summary()
        answered = bool(self.load.latencies_ms)
        out: dict[str, Any] = {
            "normal_p50_ms": load["p50_ms"] if answered else None,
            "normal_p99_ms": load["p99_ms"] if answered else None,
            "normal_requests": load["requests"],
            "normal_errors": load["errors"],
        }
        for name, samples, failed in (
            ("new_connection", self.fresh_ms, self.fresh_failed),
            ("healthz", self.health_ms, self.health_failed),
        ):
            p50, p99 = percentiles(samples) if samples else (0.0, 0.0)
            out[f"{name}_p50_ms"] = round(p50, 1)
            out[f"{name}_p99_ms"] = round(p99, 1)
            out[f"{name}_failed"] = dict(failed)
        if self.server_sockets:
            out["server_sockets_max"] = max(self.server_sockets)
            out["server_sockets_last"] = self.server_sockets[-1]
        return out


@dataclass
class AttackResult:
    attack: str
    count: int
    quiet: Probes
    attacked: Probes
    held: Held

    def summary(self) -> dict[str, Any]:
        quiet, attacked = self.quiet.summary(), self.attacked.summary()

        def ratio(key: str) -> float | None:
            return round(attacked[key] / quiet[key], 2) if quiet[key] and attacked[key] else None

        return {
            "attack": self.attack,
            "count": self.count,
            "quiet": quiet,
            "attacked": attacked,
            "normal_p99_ratio": ratio("normal_p99_ms"),
            "healthz_p99_ratio": ratio("healthz_p99_ms"),
            "targets": "normal p99 <= 2x quiet; healthz p99 < 100 ms",
            "attacker": self.held.summary(),
        }


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or 80


async def _hold(reader: asyncio.StreamReader, opened: float, held: Held) -> None:
    """Wait for the server to close the connection (reading whatever it sends)."""
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass
    held.closed_after_s.append(time.monotonic() - opened)


async def _open_and_hold(
    url: str, first: bytes, trickle: bool, stop: asyncio.Event, held: Held
) -> None:
    host, port = _host_port(url)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        writer.write(first)
    except (TimeoutError, OSError):
        held.failed += 1
        return
    held.opened += 1
    opened = time.monotonic()
    watcher = asyncio.ensure_future(_hold(reader, opened, held))
    try:
        while trickle and not stop.is_set() and not watcher.done():
            await asyncio.wait([watcher], timeout=TRICKLE_S)
            if not watcher.done():
                writer.write(b"a")
        await asyncio.wait(
            [watcher, asyncio.ensure_future(stop.wait())], return_when="FIRST_COMPLETED"
        )
    finally:
        watcher.cancel()
        writer.transport.abort()


async def half_sent_headers(url: str, stop: asyncio.Event, held: Held) -> None:
    """A request whose headers never end, a byte of them every few seconds."""
    await _open_and_hold(url, HALF_REQUEST, True, stop, held)


async def silent_connection(url: str, stop: asyncio.Event, held: Held) -> None:
    """A connection that never sends a byte."""
    await _open_and_hold(url, b"", False, stop, held)


async def half_sent_upgrade(url: str, stop: asyncio.Event, held: Held) -> None:
    """A WebSocket upgrade whose headers never end, a byte every few seconds."""
    await _open_and_hold(url, HALF_UPGRADE, True, stop, held)


async def unread_multipart(url: str, stop: asyncio.Event, held: Held) -> None:
    """A deferred answer of megabytes, asked for and never read (a small
    receive window, so the server's buffers fill sooner). Nothing is read, so
    whether the server closed it is asked of the kernel: the socket's TCP state."""
    host, port = _host_port(url)
    body = orjson.dumps({"query": DEFERRED})
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Accept: {MULTIPART}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
            await loop.sock_sendall(sock, request)
        except (TimeoutError, OSError):
            held.failed += 1
            return
        held.opened += 1
        opened = time.monotonic()
        while not stop.is_set():
            if closed_by_peer(sock):
                held.closed_after_s.append(time.monotonic() - opened)
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


#: Linux's TCP states (tcp_states.h) of a socket the other side closed or reset.
_CLOSE, _CLOSE_WAIT = 7, 8


def closed_by_peer(sock: socket.socket) -> bool:
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    return state in (_CLOSE, _CLOSE_WAIT)


async def heaviest_query(url: str, stop: asyncio.Event, held: Held) -> None:
    """The heaviest query the budget allows, again and again on one connection."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        held.opened += 1
        while not stop.is_set():
            try:
                await client.post("/graphql", json={"query": HEAVIEST})
            except httpx.HTTPError:
                held.failed += 1


Attacker = Callable[[str, asyncio.Event, Held], Awaitable[None]]
#: Attack classes run one at a time: name -> one attacker (one connection).
ONE_AT_A_TIME: dict[str, Attacker] = {
    "half_sent_headers": half_sent_headers,
    "silent_connections": silent_connection,
    "half_sent_upgrades": half_sent_upgrade,
    "unread_multipart": unread_multipart,
    "heaviest_query": heaviest_query,
}


def _probe(
    url: str, request: bytes, stop: threading.Event, samples: list[float], failed: Counter[str]
) -> None:
    """One request on a new connection every 100 ms, as a new client (or a
    HEALTHCHECK) makes; a failure counts as PROBE_TIMEOUT_S in the percentiles.
    In a thread of its own, with blocking sockets: what the attackers cost the
    benchmark's own event loop must not count as the server's delay."""
    address = _host_port(url)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with socket.create_connection(address, timeout=PROBE_TIMEOUT_S) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65536):  # to the end: Connection: close
                    answer += chunk
                    if time.perf_counter() - started > PROBE_TIMEOUT_S:
                        raise TimeoutError
            status = answer.split(b" ")[1:2]
            if status != [b"200"]:
                failed[f"HTTP {status[0].decode() if status else '?'}"] += 1
            samples.append((time.perf_counter() - started) * 1000)
        except OSError as exc:  # TimeoutError among them
            failed[type(exc).__name__] += 1
            samples.append(PROBE_TIMEOUT_S * 1000)
        stop.wait(0.1)


def _get(url: str) -> bytes:
    parsed = httpx.URL(url)
    target = parsed.raw_path.decode()
    return f"GET {target} HTTP/1.1\r\nHost: {parsed.host}\r\nConnection: close\r\n\r\n".encode()


def _server_sockets(pid: int) -> int:
    """The server's open sockets, from /proc."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


async def _phase(
    url: str, health_url: str, clients: int, seconds: float, pid: int | None
) -> Probes:
    stop = threading.Event()
    load = asyncio.ensure_future(run_load(url, clients, seconds, pid))
    probes = Probes(LoadResult(seconds, clients))
    small = _get(url + "/graphql?query=%7B__typename%7D")
    threads = [
        threading.Thread(
            target=_probe, args=(url, small, stop, probes.fresh_ms, probes.fresh_failed)
        ),
        threading.Thread(
            target=_probe,
            args=(health_url, _get(health_url), stop, probes.health_ms, probes.health_failed),
        ),
    ]
    for thread in threads:
        thread.start()
    while not load.done():
        if pid:
            probes.server_sockets.append(_server_sockets(pid))
        await asyncio.wait([load], timeout=0.5)
    stop.set()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    try:
        probes.load = load.result()
    except httpx.HTTPError as exc:  # not even its first request was answered
        probes.load.errors.append(f"could not start: {type(exc).__name__}")
    return probes


async def run_attack(
    url: str,
    attack: str,
    count: int,
    seconds: float,
    clients: int = 2,
    health_url: str | None = None,
    pid: int | None = None,
) -> AttackResult:
    """The normal mix and the probes alone for ``seconds``, then again while
    ``count`` attackers of the class ``attack`` (ONE_AT_A_TIME) hold on."""
    health_url = health_url or url + "/healthz"
    quiet = await _phase(url, health_url, clients, seconds, pid)
    stop, held = asyncio.Event(), Held()
    attacker = ONE_AT_A_TIME[attack]
    attackers = []
    for n in range(count):
        attackers.append(asyncio.ensure_future(attacker(url, stop, held)))
        if n % 100 == 99:
            await asyncio.sleep(0.05)  # a hundred at a time, as a script would
    await asyncio.sleep(min(2.0, seconds / 4))  # let them take hold
    attacked = await _phase(url, health_url, clients, seconds, pid)
    stop.set()
    await asyncio.gather(*attackers)
    return AttackResult(attack, count, quiet, attacked, held)


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
