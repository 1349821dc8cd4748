"""A hostile repro, not a test: N subscribers over SSE and N over WebSocket
that never read (each a distinct query), one SSE subscriber that reads, and
articles of 360 kB published three at a time, on Uvicorn in this process with
`newsgraph serve`'s protocols and timeouts (send timeout 15 s). Prints the
process's RSS, the reader's latency and what was dropped (README, Subscriptions).

    python -m tests.api.slow_readers N WIDTH ARTICLES [BOUND]

WIDTH: copies of the body in each answer (1: ~360 kB). BOUND:
NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES (0: unbounded; default: the setting's)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from api.app import create_app
from api.http.connections import ConnectionLimits
from core.config import Settings
from core.store import connect
from loaders import load_paths
from tests.api.slow import serving
from tests.api.test_sse import Events
from tests.api.wsclient import Raw, metric, subscribed
from tests.articles import web_url, write_article

BODY = "Long story. " * 30_000


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def query(i: int, width: int) -> str:
    bodies = " ".join(f"b{j}: body" for j in range(width))
    return f"subscription {{ articlePublished {{ s{i}: id {bodies} }} }}"


def small_socket(url: str) -> socket.socket:
    """A socket to the server whose receive buffer is small from the start."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    return sock


def never_reading_stream(url: str, text: str) -> socket.socket:
    request = orjson.dumps({"query": text})
    sock = small_socket(url)
    sock.sendall(
        b"POST /graphql HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(request), request)
    )
    return sock


async def scenario(
    url: str, store: Any, settings: Settings, n: int, width: int, articles: int
) -> str:
    folder = Path(tempfile.mkdtemp())
    streams, sockets = [], []
    for i in range(n):
        streams.append(never_reading_stream(url, query(i, width)))
        ws = await Raw.connect(
            url, sock=small_socket(url), max_queue=1, max_size=None, compression=None
        )
        await ws.init()
        await ws.subscribe("1", query(n + i, width))
        sockets.append(ws)
    reader = Events(url, "subscription { articlePublished { id body } }").start()
    await subscribed(url, 2 * n + 1, timeout=60)
    gc.collect()
    base = peak = rss_mb()
    latencies, sent = [], 0
    while sent < articles:
        for _ in range(3):
            write_article(folder, f"{sent:03}.md", BODY, webUrl=web_url(f"s{sent}"))
            sent += 1
        await asyncio.to_thread(load_paths, store, [folder], settings)
        started = time.monotonic()
        await reader.until(sent, timeout=60)
        latencies.append(time.monotonic() - started)
        peak = max(peak, rss_mb())
    held = metric(url, "newsgraph_subscriptions")
    for _ in range(40):  # 20 s: past the send timeout
        await asyncio.sleep(0.5)
        peak = max(peak, rss_mb())
    later = metric(url, "newsgraph_subscriptions")
    for sock in streams:
        sock.close()
    await reader.stop()
    median = sorted(latencies)[len(latencies) // 2]
    return (
        f"{n} slow SSE + {n} slow WebSocket, {sent} articles, answers of "
        f"{width * len(BODY) // 1000} kB, bound {settings.subscription_unsent_bytes}: RSS "
        f"+{peak - base:.0f} MB (from {base:.0f}); reader per batch median "
        f"{median * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; subscriptions once "
        f"published {held:.0f}, 20 s later {later:.0f}; "
        f"dropped {metric(url, 'newsgraph_subscriptions_dropped_total'):.0f} "
        f"(for unsent bytes {metric(url, 'newsgraph_subscriptions_dropped_unsent_total'):.0f})"
    )


def main(argv: list[str]) -> None:
    n, width, articles = (int(a) for a in argv[:3])
    changes: dict[str, Any] = {
        "subscriptions_max": 10**4,
        "subscriptions_per_client": 10**4,
        "ws_connections_max": 10**4,
        "ws_connections_per_client": 10**4,
        "subscriptions_max_bytes": 10**10,
        "subscriptions_per_client_bytes": 10**10,
        "anonymous_burst": 10**12,
        "anonymous_points_per_s": 10**12,
    }
    if len(argv) > 3:
        changes["subscription_unsent_bytes"] = int(argv[3]) or 10**12
    settings = Settings(
        data_dir=tempfile.mkdtemp(),
        db_name="s" + uuid.uuid4().hex[:6],
        subscription_poll_ms=100,
        **changes,
    )
    store = connect(settings)
    limits = ConnectionLimits(
        idle_s=5, header_s=10, send_s=15, max_connections=1000, accept_batch=64
    )
    with serving(create_app(settings, store), limits) as url:
        print(
            asyncio.run(asyncio.wait_for(scenario(url, store, settings, n, width, articles), 300))
        )
    os._exit(0)  # the never-reading sockets' threads are not waited for


if __name__ == "__main__":
    main(sys.argv[1:])
