"""A subscriber's connection holds at most ``NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES``
its client has not read (``api.live.unsent``, ``api.live.feed.Feed.admits``):
a client that reads nothing is dropped for its bytes, over WebSocket (4008)
and over SSE (its stream ends), on the server ``newsgraph serve`` runs, long
before its queue or the send timeout would drop it; one that reads is not.
On both engines (the articles are loaded into the store and polled from it)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.data.gateway import Gateway
from api.http.connections import ConnectionLimits
from api.live.feed import Feed
from api.live.unsent import EXTENSION, Unsent
from core.config import Settings
from core.store import Store
from tests.api.slow import serving
from tests.api.test_sse import Events
from tests.api.test_subscriptions import load, run, subscription_settings
from tests.api.wsclient import Raw, metric, subscribed
from tests.articles import web_url, write_article

#: Answers of ~360 kB: past the bound below with the one before them unread.
BODY = "Long story. " * 30_000
HEAVY = "subscription { articlePublished { id body } }"
LIGHT = "subscription { articlePublished { id } }"


class Owner:
    def __init__(self) -> None:
        self.writing = asyncio.Lock()
        self.why: list[str | None] = []

    def overflowed(self, why: str | None = None) -> None:
        self.why.append(why)


class Answers:
    def __init__(self, key: str) -> None:
        self.key, self.own = key, 100

    def size(self) -> int:
        return 1000

    async def answer(self, event: Any) -> Any:
        return event


def test_a_connection_that_reads_takes_any_answer_one_that_does_not_only_up_to_the_bound():
    async def scenario() -> None:
        feed = Feed(Gateway(None, 5000), 100, 10, 10, 5000, unsent_bytes=1000)  # type: ignore[arg-type]
        slow, other = Owner(), Owner()
        for key in ("a", "b"):
            feed.join(lambda doc: True, slow, Answers(key), "slow")
        feed.join(lambda doc: True, other, Answers("a"), "other")
        assert feed.admits(slow, 0, 10**7)  # nothing unread: however large
        assert feed.admits(slow, 600, 400)  # within the bound
        assert feed.count == 3 and not slow.why
        assert not feed.admits(slow, 600, 401)  # over it: dropped, not sent
        assert feed.count == 1 and (feed.dropped, feed.dropped_unsent) == (2, 2)
        assert slow.why == ["too slow: 600 bytes were waiting to be read"]
        assert not other.why and feed.allowance.held_by("slow") == 0
        await feed.close()

    asyncio.run(scenario())


def test_unsent_counts_what_waits_in_send_and_what_the_server_says_its_transport_holds():
    async def scenario() -> None:
        buffered = [0]
        unsent = Unsent({"extensions": {EXTENSION: lambda: buffered[0]}})
        release = asyncio.Event()
        sending = asyncio.create_task(unsent.send(release.wait(), 500))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        buffered[0] = 300
        assert unsent.bytes == 800
        release.set()
        await sending
        assert unsent.bytes == 300
        assert Unsent({}).bytes == 0  # another server: only what waits in send

    asyncio.run(scenario())


async def never_reading_websocket(url: str) -> Raw:
    """A WebSocket client that subscribes, then reads nothing: its library
    stops reading the socket once one message waits, and the socket's
    receive buffer is small, so the server's fills fast."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    client = await Raw.connect(url, sock=sock, max_queue=1, max_size=None, compression=None)
    await client.init()
    await client.subscribe("1", HEAVY)
    return client


def never_reading_stream(url: str) -> socket.socket:
    """An SSE client that subscribes and reads nothing, its socket's receive
    buffer small from before it connects (the kernel holds less for it)."""
    host, port = url.removeprefix("http://").split(":")
    request = orjson.dumps({"query": HEAVY})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        b"POST /graphql HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(request), request)
    )
    return sock


def read_to_the_end(sock: socket.socket) -> bytes:
    """What a never-reading SSE client was sent, read now, to the end of its answer."""
    sock.settimeout(10)
    got = bytearray()
    while not got.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(1 << 20)
        assert chunk, "closed before its answer ended"
        got += chunk
    return bytes(got)


def test_a_subscriber_that_reads_nothing_is_dropped_for_its_bytes_on_either_transport(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """A queue too long to fill and a send timeout too long to act: what
    drops the two clients that read nothing (one over SSE, one over
    WebSocket) is what their connections hold unread, at their second
    answer of ~360 kB; a client that reads keeps its subscription."""
    limits = ConnectionLimits(
        idle_s=60, header_s=60, send_s=60, max_connections=100, accept_batch=16
    )
    changes = {"subscription_queue": 1000, "subscription_unsent_bytes": 300_000}
    app = create_app(subscription_settings(settings, **changes), store)
    with serving(app, limits) as url:
        sse = never_reading_stream(url)

        async def scenario() -> None:
            ws = await never_reading_websocket(url)
            reader = Events(url, LIGHT).start()
            await subscribed(url, 3)
            sent = 0
            while metric(url, "newsgraph_subscriptions_dropped_unsent_total") < 2:
                assert sent < 12, f"not dropped after {sent} answers of {len(BODY)} bytes"
                for _ in range(3):
                    write_article(tmp_path, f"{sent:03}.md", BODY, webUrl=web_url(f"u{sent}"))
                    sent += 1
                await load(store, settings, tmp_path)
                deadline = time.monotonic() + 10
                while len(reader.articles()) < sent:  # each batch has reached the reader
                    assert reader.error is None and time.monotonic() < deadline, reader.error
                    await asyncio.sleep(0.02)
            assert metric(url, "newsgraph_subscriptions") == 1  # the reader's
            assert metric(url, "newsgraph_subscriptions_dropped_total") == 2  # not for the queue
            # Read now, each finds its answer ended as falling behind ends it.
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.ws.recv(), 10)
            assert ws.ws.close_code == 4008, ws.ws.close_code
            assert "bytes were waiting to be read" in (ws.ws.close_reason or "")
            answer = await asyncio.to_thread(read_to_the_end, sse)
            assert b"event: next" in answer and b"event: complete" not in answer
            await reader.stop()

        try:
            run(scenario(), timeout=90)
        finally:
            sse.close()


def test_a_websocket_that_reads_nothing_is_reset_by_the_send_timeout(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """With the bytes and the queue out of reach, a WebSocket subscriber that
    reads nothing is reset once it has read nothing for the send timeout, as
    an HTTP connection is: its close frame could never be written, and
    asyncio's close would wait for its buffer for as long as it stayed."""
    limits = ConnectionLimits(
        idle_s=60, header_s=60, send_s=1, max_connections=100, accept_batch=16
    )
    changes = {"subscription_queue": 1000, "subscription_unsent_bytes": 10**12}
    app = create_app(subscription_settings(settings, **changes), store)
    with serving(app, limits) as url:

        async def scenario() -> None:
            ws = await never_reading_websocket(url)
            await subscribed(url, 1)
            sent = 0
            while metric(url, "newsgraph_subscriptions") > 0:
                assert sent < 30, f"not reset after {sent} answers of {len(BODY)} bytes"
                for _ in range(3):
                    write_article(tmp_path, f"{sent:03}.md", BODY, webUrl=web_url(f"t{sent}"))
                    sent += 1
                await load(store, settings, tmp_path)
                await asyncio.sleep(0.5)
            assert metric(url, "newsgraph_subscriptions_dropped_total") == 0  # reset, not dropped
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.ws.recv(), 10)
            assert ws.ws.close_code != 4008

        run(scenario(), timeout=90)
