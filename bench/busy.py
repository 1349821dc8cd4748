"""Liveness while the store is busy: ``/healthz`` and ``/readyz`` sampled while
one server answers concurrent front pages with ``totalCount`` (a count walks
the whole published range) and another process loads new articles into the
same database.

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

BUSY_PAGE = """{ articles(first: 20) { totalCount nodes { id title publishedDateTime
  provider { name } topics { name } } } }"""
#: Articles the loader writes beside the server (a fresh corpus of its own).
EXTRA = 5000


async def _sample(url: str, clients: int, seconds: float) -> tuple[list[float], list[float], int]:
    """Latencies (ms) of the probes and of the pages, and failed probes."""
    probes: list[float] = []
    pages: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def page() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await client.post("/graphql", json={"query": BUSY_PAGE})
                pages.append((time.perf_counter() - started) * 1000)

        async def probe() -> None:
            nonlocal failed
            while time.monotonic() < deadline:
                for path in ("/healthz", "/readyz"):
                    started = time.perf_counter()
                    response = await client.get(path)
                    probes.append((time.perf_counter() - started) * 1000)
                    failed += response.status_code != 200
                await asyncio.sleep(0.02)

        await asyncio.gather(probe(), *(page() for _ in range(clients)))
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
    with serving(["newsgraph", "serve", "--log-level", "warning"], env, health="/healthz") as (
        url,
        _,
    ):
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
            probes, pages, failed = asyncio.run(_sample(url, clients, seconds))
        finally:
            if loader is not None:
                stop(loader)
    p50, p99 = percentiles(probes)
    page_p50, _ = percentiles(pages)
    return [
        Row(
            "healthz_busy",
            size,
            engine,
            p50,
            p99,
            ratio=p99,
            extra={
                "probes": len(probes),
                "probe_max_ms": max(probes),
                "failed_probes": failed,
                "pages": len(pages),
                "page_p50_ms": page_p50,
                "clients": clients,
            },
        )
    ]
