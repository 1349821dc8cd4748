"""Requests per second of one Uvicorn worker under concurrent clients, against a
bare Starlette endpoint that returns the raw-pymongo answer to the same query."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx2 as httpx

from bench.load import UNTHROTTLED, rss_mb
from bench.queries import FRONT_PAGE
from bench.report import Row, percentiles
from testing.live import serving


@dataclass
class Hammered:
    latencies_ms: list[float] = field(default_factory=list)  # of successful answers
    failures: int = 0
    peak_rss_mb: float = 0.0


async def _hammer(
    url: str, path: str, body: dict | None, clients: int, seconds: float, pid: int
) -> Hammered:
    result = Hammered()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def one() -> None:
            # Only answers that arrive within the window count: a saturated
            # store queues requests, and those still queued at the end are
            # abandoned, not waited for.
            while (left := deadline - time.monotonic()) > 0:
                started = time.perf_counter()
                try:
                    response = await client.post(path, json=body, timeout=left)
                except httpx.TimeoutException:
                    return
                if response.status_code != 200 or b'"errors"' in response.content[:20]:
                    result.failures += 1
                else:
                    result.latencies_ms.append((time.perf_counter() - started) * 1000)

        async def watch() -> None:
            while time.monotonic() < deadline:
                result.peak_rss_mb = max(result.peak_rss_mb, rss_mb(pid))
                await asyncio.sleep(0.2)

        await asyncio.gather(watch(), *(one() for _ in range(clients)))
    return result


def throughput(
    env: dict[str, str], size: int, engine: str, clients: int, seconds: float
) -> list[Row]:
    # A throughput run saturates the store on purpose: let queries queue rather
    # than time out, on both sides alike.
    env = {**env, "NEWSGRAPH_STORE_OP_TIMEOUT_MS": "600000", **UNTHROTTLED}
    runs: dict[str, Hammered] = {}
    for name, target, path, body in (
        ("api", "api.app:create_app", "/graphql", {"query": FRONT_PAGE}),
        ("bare", "bench.bare:create_app", "/front", None),
    ):
        uvicorn = ["uvicorn", "--factory", target, "--log-level", "warning", "--workers", "1"]
        with serving(uvicorn, env, timeout=30) as (url, pid):
            runs[name] = asyncio.run(_hammer(url, path, body, clients, seconds, pid))
    api, bare = runs["api"], runs["bare"]
    api_rps = len(api.latencies_ms) / seconds
    bare_rps = len(bare.latencies_ms) / seconds
    p50, p99 = percentiles(api.latencies_ms) if api.latencies_ms else (None, None)
    return [
        Row(
            "throughput",
            size,
            engine,
            p50,
            p99,
            ratio=api_rps / bare_rps if bare_rps else None,
            extra={
                "rps": api_rps,
                "bare_rps": bare_rps,
                "clients": clients,
                "failed": api.failures,
                "bare_failed": bare.failures,
            },
        ),
        Row(
            "rss_server",
            size,
            engine,
            ratio=api.peak_rss_mb,
            extra={"peak_rss_mb": api.peak_rss_mb},
        ),
    ]
