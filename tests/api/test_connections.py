"""Connections that cannot be held for free (api/http/connections.py), attacked
with real sockets on a live ``newsgraph serve`` whose open-files limit is
lowered to 128, so that a hundred and fifty connections run it out of them: for
each attack, a normal request is still answered while the attacker holds on,
and every connection the attacker holds is closed by the timeout that covers it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest
from websockets.sync.client import connect as ws_connect

from api.http.connections import (
    AUTO_MAX_CONNECTIONS,
    RESERVE_MIN,
    ConnectionLimits,
    limits_for,
)
from bench.hostile import BODY, DEFERRED, HALF_REQUEST, HALF_UPGRADE, MULTIPART, closed_by_peer
from core.config import Settings
from loaders import load_paths
from testing.live import running_server
from tests.api.slow import serving
from tests.api.wsclient import PROTOCOL, ws_url
from tests.articles import write_linked_corpus

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_INFO"),
    reason="whether the server closed a connection no one reads is asked of Linux (TCP_INFO)",
)

OPEN_FILES = 128
#: What the server is started with: short, so the tests are.
IDLE_S, HEADER_S, SEND_S, REQUEST_S = 1, 2, 2, 2
#: How much later than its timeout a connection may be seen closed (a busy machine).
SLACK_S = 3.0
#: More connections than the server has open files.
MANY = 150


@pytest.fixture
def server(engine: str, store, settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The linked corpus (with 8 KB bodies, for answers of megabytes) served
    with short timeouts and 128 open files."""
    corpus = write_linked_corpus(tmp_path / "linked", body=BODY)
    env = {
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
        "NEWSGRAPH_IDLE_TIMEOUT_S": str(IDLE_S),
        "NEWSGRAPH_HEADER_TIMEOUT_S": str(HEADER_S),
        "NEWSGRAPH_SEND_TIMEOUT_S": str(SEND_S),
        "NEWSGRAPH_REQUEST_TIMEOUT_MS": str(REQUEST_S * 1000),
    }
    args: list[str] = []
    if engine == "embedded":
        args = ["--load", str(corpus)]
    else:
        assert load_paths(store, [corpus], settings).ok
    with running_server(env, *args, open_files=OPEN_FILES) as (url, _pid):
        yield url


def address(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or 80


def hold(
    url: str, count: int, first: bytes, receive_buffer: int | None = None
) -> list[socket.socket]:
    """``count`` connections, each sent ``first`` and then left as they are."""
    held = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(5)
        sock.connect(address(url))
        sock.sendall(first)
        held.append(sock)
    return held


def normal_request_answers(url: str) -> None:
    """A new client, on a new connection, gets its answer."""
    response = httpx.post(f"{url}/graphql", json={"query": "{ __typename }"}, timeout=10)
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}


def closed_within(held: list[socket.socket], seconds: float) -> int:
    """How many of ``held`` the server closed (or reset) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(closed_by_peer(s) for s in held):
        time.sleep(0.1)
    return sum(closed_by_peer(s) for s in held)


@pytest.fixture
def cleanup() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


class Trickle:
    """A byte every half second on each connection still open: a timer that
    restarted on every read would never fire."""

    def __init__(self, held: list[socket.socket]) -> None:
        self.held, self.stop = held, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for sock in self.held:
                with contextlib.suppress(OSError):  # closed by the server, as it should be
                    sock.send(b"a")

    def __enter__(self) -> Trickle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_half_sent_headers_beyond_the_open_files_limit(server, cleanup):
    # Before: the server took every file descriptor (EMFILE), answered no one,
    # and held each connection for as long as the attacker liked.
    cleanup += hold(server, MANY, HALF_REQUEST)
    with Trickle(cleanup):
        normal_request_answers(server)
        assert closed_within(cleanup, HEADER_S + SLACK_S) == MANY
    normal_request_answers(server)


def test_silent_connections_beyond_the_open_files_limit(server, cleanup):
    cleanup += hold(server, MANY, b"")
    normal_request_answers(server)
    assert closed_within(cleanup, IDLE_S + SLACK_S) == MANY


def test_half_sent_websocket_upgrades(server, cleanup):
    cleanup += hold(server, MANY, HALF_UPGRADE)
    with Trickle(cleanup):
        # A real WebSocket client is let in, and greeted.
        with ws_connect(ws_url(server), subprotocols=[PROTOCOL], open_timeout=10) as ws:
            ws.send(orjson.dumps({"type": "connection_init"}).decode())
            assert orjson.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        assert closed_within(cleanup, HEADER_S + SLACK_S) == MANY


def test_multipart_answers_never_read(server, cleanup):
    # Megabytes in parts, a small receive window, and nothing read: the
    # server's buffers fill, its writing pauses, and the answer is stuck.
    body = orjson.dumps({"query": DEFERRED})
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Accept: {MULTIPART}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    cleanup += hold(server, 20, request, receive_buffer=4096)
    normal_request_answers(server)
    # Reset once its client has read nothing for SEND_S (or cut off at the
    # deadline, then closed when nothing follows its end).
    assert closed_within(cleanup, REQUEST_S + SEND_S + SLACK_S) == 20
    normal_request_answers(server)


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers each request after SLOW_S."""
    if scope["type"] != "http":
        return
    await receive()
    await asyncio.sleep(SLOW_S)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]}
    )
    await send({"type": "http.response.body", "body": b"done"})


SLOW_S = 1.5
QUICK = ConnectionLimits(idle_s=1, header_s=1, send_s=1, max_connections=100, accept_batch=16)


def test_a_request_that_takes_longer_than_the_timeouts_is_answered_and_the_connection_kept():
    # The header and idle timers stop when a request's headers are in, and
    # start again after its answer: a connection in use is never cut.
    with serving(slow_app, QUICK) as url, socket.create_connection(address(url), 10) as sock:
        for _ in range(2):  # 2 x SLOW_S on one connection, over each timeout
            sock.sendall(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")
            answer = b""
            while not answer.endswith(b"done"):
                chunk = sock.recv(4096)
                assert chunk, "the server closed the connection"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(QUICK.idle_s / 2)


def test_at_the_bound_the_longest_waiting_connection_makes_room():
    limits = dataclasses.replace(QUICK, idle_s=30, header_s=30, max_connections=5)
    with serving(slow_app, limits) as url, contextlib.ExitStack() as stack:
        waiting = [stack.enter_context(socket.create_connection(address(url))) for _ in range(5)]
        time.sleep(0.2)
        assert not any(closed_by_peer(s) for s in waiting)
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/").text == "done"  # one more: the oldest went for it
        assert closed_within(waiting, 2) >= 1 and closed_by_peer(waiting[0])


def test_the_bound_leaves_a_quarter_of_the_open_files_for_all_else():
    limits = limits_for(Settings(), open_files=1024)
    assert limits.max_connections == 768 and limits.accept_batch == 64
    assert limits_for(Settings(), open_files=1 << 20).max_connections == AUTO_MAX_CONNECTIONS
    assert limits_for(Settings(), open_files=64).max_connections == 64 - RESERVE_MIN
    asked = limits_for(Settings(max_connections=5000), open_files=1024)
    assert asked.max_connections == 768  # no more than the open files allow
    assert limits_for(Settings(max_connections=100), open_files=1024).max_connections == 100
