"""Requests per second of one Uvicorn worker under concurrent clients, against a
bare Starlette endpoint that returns the raw-pymongo answer to the same query."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx2 as httpx

from bench.load import rss_mb
from bench.queries import FRONT_PAGE
from bench.report import Row, percentiles
from tests.wire import free_port


def _serve(target: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            target,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            "1",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode())
        try:
            httpx.get(url + "/", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{target} did not start")


async def _hammer(
    url: str, path: str, body: dict | None, clients: int, seconds: float, pid: int
) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    peak = 0.0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def one() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.post(path, json=body)
                assert response.status_code == 200, response.text
                latencies.append((time.perf_counter() - started) * 1000)

        async def watch() -> None:
            nonlocal peak
            while time.monotonic() < deadline:
                peak = max(peak, rss_mb(pid))
                await asyncio.sleep(0.2)

        await asyncio.gather(watch(), *(one() for _ in range(clients)))
    return len(latencies), latencies, peak


def throughput(
    env: dict[str, str], size: int, engine: str, clients: int, seconds: float
) -> list[Row]:
    results = {}
    for name, target, path, body in (
        ("api", "api.app:create_app", "/graphql", {"query": FRONT_PAGE}),
        ("bare", "bench.bare:create_app", "/front", None),
    ):
        process, url = _serve(target, env)
        try:
            results[name] = asyncio.run(_hammer(url, path, body, clients, seconds, process.pid))
        finally:
            process.terminate()
            process.wait(10)
    (api_n, api_lat, api_rss), (bare_n, _, _) = results["api"], results["bare"]
    p50, p99 = percentiles(api_lat)
    api_rps, bare_rps = api_n / seconds, bare_n / seconds
    return [
        Row(
            "throughput",
            size,
            engine,
            p50,
            p99,
            ratio=api_rps / bare_rps,
            extra={"rps": api_rps, "bare_rps": bare_rps, "clients": clients},
        ),
        Row("rss_server", size, engine, ratio=api_rss, extra={"peak_rss_mb": api_rss}),
    ]
