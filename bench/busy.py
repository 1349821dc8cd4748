"""Liveness while the store is busy: ``/healthz`` and ``/readyz`` sampled while
one server answers concurrent front pages with ``totalCount`` (a count walks
the whole published range) and another process loads new articles into the
same database.

Probes are sampled on both ports the server answers them on: its own
``--health-port`` process, where the README tells operators to point them
(``healthz_busy``, the target), and the API's port (``healthz_busy_api_port``,
reported), where a probe waits its turn on an event loop the clients keep
busy, so its latency says how busy the server is rather than whether it lives.

Before the embedded engine ran its calls in worker threads (issue 21), each
query held the event loop for its whole scan, and ``/healthz`` waited behind
them (1.6 s at 10k articles, 7.4 s at 50k): a liveness probe would have
killed a server that was only busy. The target is 50 ms at p99.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

from bench.gen import generate
from bench.report import Row, percentiles
from testing.live import serving, stop
from testing.ports import free_port

BUSY_PAGE = """{ articles(first: 20) { totalCount nodes { id title publishedDateTime
  provider { name } topics { name } } } }"""
#: Articles the loader writes beside the server (a fresh corpus of its own).
EXTRA = 5000


async def _sample(
    url: str, health_url: str, clients: int, seconds: float
) -> tuple[dict[str, list[float]], list[float], dict[str, int]]:
    """Latencies (ms) of the probes on each port (``api``, ``health``) and of
    the pages, and the failed probes on each port."""
    probes: dict[str, list[float]] = {"api": [], "health": []}
    pages: list[float] = []
    failed = {"api": 0, "health": 0}
    limits = httpx.Limits(max_connections=clients + 2)
    async with (
        httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client,
        httpx.AsyncClient(base_url=health_url, timeout=30) as health,
    ):
        deadline = time.monotonic() + seconds

        async def page() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await client.post("/graphql", json={"query": BUSY_PAGE})
                pages.append((time.perf_counter() - started) * 1000)

        async def probe(port: str, prober: httpx.AsyncClient) -> None:
            while time.monotonic() < deadline:
                for path in ("/healthz", "/readyz"):
                    started = time.perf_counter()
                    response = await prober.get(path)
                    probes[port].append((time.perf_counter() - started) * 1000)
                    failed[port] += response.status_code != 200
                await asyncio.sleep(0.02)

        await asyncio.gather(
            probe("api", client), probe("health", health), *(page() for _ in range(clients))
        )
    return probes, pages, failed


def healthz_busy(
    env: dict[str, str],
    size: int,
    engine: str,
    workdir: Path,
    clients: int,
    seconds: float,
    with_load: bool = True,
) -> list[Row]:
    extra = workdir / f"busy-extra-{EXTRA}"
    if not (extra / ".complete").exists():
        generate(EXTRA, extra, seed=99)
        (extra / ".complete").write_text("")
    health_port = free_port()
    argv = ["newsgraph", "serve", "--log-level", "warning", "--health-port", str(health_port)]
    with serving(argv, env, health="/healthz") as (url, _):
        loader = (
            subprocess.Popen(
                [sys.executable, "-m", "newsgraph", "load", str(extra)],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if with_load
            else None
        )
        try:
            health_url = f"http://127.0.0.1:{health_port}"
            probes, pages, failed = asyncio.run(_sample(url, health_url, clients, seconds))
        finally:
            if loader is not None:
                stop(loader)
    page_p50, _ = percentiles(pages)
    rows = []
    for scenario, port in (("healthz_busy", "health"), ("healthz_busy_api_port", "api")):
        p50, p99 = percentiles(probes[port])
        rows.append(
            Row(
                scenario,
                size,
                engine,
                p50,
                p99,
                ratio=p99,
                extra={
                    "probes": len(probes[port]),
                    "probe_max_ms": max(probes[port]),
                    "failed_probes": failed[port],
                    "pages": len(pages),
                    "page_p50_ms": page_p50,
                    "clients": clients,
                },
            )
        )
    return rows
