"""Sustained load: N concurrent clients on loopback for a fixed time.

Each client sends the mixed queries of ``bench.queries`` back to back. The
result counts requests and errors, gives p50/p99 latency, and samples the
server's resident memory (from /proc, when its pid is given) to show whether
it stays flat.

A client sending back to back stands for many people, each reading at a
person's pace: its requests name :data:`PEOPLE` addresses in turn in
``X-Forwarded-For`` (:func:`client_address`). A server that trusts the bench as
its proxy (``NEWSGRAPH_TRUSTED_PROXIES=127.0.0.1``) gives each of them the
budget of one client, as it would those people; any other ignores the header,
and all the clients share the budget of one address.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.queries import SAMPLE, Corpus, mixed
from bench.report import percentiles


@dataclass
class LoadResult:
    seconds: float
    clients: int
    requests: int = 0
    #: One line per failed request: its scenario, status and every error it got.
    errors: list[str] = field(default_factory=list)
    #: How often each kind of error came: a GraphQL error's code (NO_CODE for
    #: one without, as a masked internal error is), ``HTTP <status>`` for a
    #: failed response without GraphQL errors, the exception's name for no response.
    error_codes: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    #: Points the answers cost their clients (``extensions.cost.actualQueryCost``).
    points: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> dict[str, Any]:
        p50, p99 = percentiles(self.latencies_ms) if self.latencies_ms else (0.0, 0.0)
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "errors": len(self.errors),
            "rps": round(self.rps, 1),
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "rss_mb_first": round(statistics.mean(self.rss_mb[:3]), 1) if self.rss_mb else None,
            "rss_mb_last": round(statistics.mean(self.rss_mb[-3:]), 1) if self.rss_mb else None,
            "rss_mb_max": round(max(self.rss_mb), 1) if self.rss_mb else None,
            # What one client spent of its budget a second, back to back.
            "points_per_client_s": round(self.points / self.seconds / self.clients, 1),
        }


#: The ``X-Forwarded-For`` header: the name servers read it by.
FORWARDED = "X-Forwarded-For"


#: The people one bench client stands for (addresses it names in turn).
PEOPLE = 50
#: For the benchmarks that time what a request costs the server (``cpu``,
#: ``throughput``), from clients that do not say who they stand for: each
#: client's budget is kept, as its bookkeeping is part of every request, but
#: refills faster than any request follows another and holds any number at
#: once, so it never refuses (and reports the same full bucket in every answer).
#: Every answer made, none kept (``api.operation.answered``): the scenarios
#: measure making an answer against their floors (the store read raw, a bare
#: endpoint); only ``cpu_kept`` (bench/cpu.py) runs the server as it is
#: deployed by default, keeping them.
MADE = {"NEWSGRAPH_ANSWER_CACHE_BYTES": "0"}
UNTHROTTLED = {
    "NEWSGRAPH_ANONYMOUS_POINTS_PER_S": str(10**15),
    "NEWSGRAPH_ANONYMOUS_CONCURRENCY": str(10**6),
}


def client_address(group: int, n: int) -> str:
    """The address the ``n``-th client of a ``group`` says it is, behind the
    bench as its proxy: normal clients are group 1, attackers others."""
    return f"10.{group}.{n // 256 % 256}.{n % 256}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_load(
    url: str,
    clients: int,
    seconds: float,
    pid: int | None = None,
    seed: int = 1,
    timeout: float = 10.0,
    group: int = 1,
) -> LoadResult:
    result = LoadResult(seconds=seconds, clients=clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        sampler = {FORWARDED: client_address(group, clients * PEOPLE)}
        sample = await client.post("/graphql", json={"query": SAMPLE}, headers=sampler)
        corpus = Corpus.from_sample(sample.json()["data"])
        deadline = time.monotonic() + seconds

        async def one_client(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            people = itertools.cycle(client_address(group, n * PEOPLE + k) for k in range(PEOPLE))
            while time.monotonic() < deadline:
                headers = {FORWARDED: next(people)}
                scenario, query, variables = mixed(rng, corpus)
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/graphql", json={"query": query, "variables": variables}, headers=headers
                    )
                    body = response.json()
                    cost = (body.get("extensions") or {}).get("cost") or {}
                    result.points += cost.get("actualQueryCost") or 0
                    errors = body.get("errors") or []
                    if response.status_code != 200 or errors:
                        result.errors.append(
                            f"{scenario}: {response.status_code} {describe(errors)}"
                        )
                        codes = [code(e) for e in errors] or [f"HTTP {response.status_code}"]
                        result.error_codes.update(codes)
                except (httpx.HTTPError, ValueError) as exc:
                    result.errors.append(f"{scenario}: {type(exc).__name__}: {exc}")
                    result.error_codes[type(exc).__name__] += 1
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.requests += 1

        async def sample_memory() -> None:
            while pid and time.monotonic() < deadline:
                result.rss_mb.append(rss_mb(pid))
                await asyncio.sleep(max(seconds / 20, 0.1))

        await asyncio.gather(sample_memory(), *(one_client(n) for n in range(clients)))
    return result


def code(error: dict[str, Any]) -> str:
    """A GraphQL error's code, NO_CODE if it has none."""
    value = (error.get("extensions") or {}).get("code")
    return value if isinstance(value, str) else "NO_CODE"


def describe(errors: list[dict[str, Any]]) -> str:
    """Every GraphQL error of a response, each as code, message and path:
    shortened, but none left out."""
    parts = []
    for error in errors:
        path = ".".join(str(step) for step in error.get("path") or [])
        where = f" at {path}" if path else ""
        parts.append(f"[{code(error)}] {str(error.get('message'))[:120]}{where}")
    return "; ".join(parts)
