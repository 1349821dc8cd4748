"""The ``cpu`` scenario's load generator (bench/loadgen.py): it sends the
bytes httpx would, frames responses however they arrive (split, several in
one read), fails on a wrong answer or a closed connection, and stops in time.
Against small servers on loopback; nothing about speed is asserted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import h11
import httpx2 as httpx
import pytest

from bench import loadgen
from bench.loadgen import (
    LoadProcess,
    ProtocolError,
    Responses,
    Window,
    WrongAnswer,
    encode,
    run_window,
)

BODY = b'{"data":{"articles":[' + b'{"id":"a"},' * 500 + b"]}}"
HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}


def response(body: bytes = BODY, status: int = 200, name: bytes = b"content-length") -> bytes:
    reason = b"OK" if status == 200 else b"Bad Request"
    return (
        b"HTTP/1.1 %d %s\r\ndate: today\r\nserver: uvicorn\r\n%s: %d\r\n"
        b"content-type: application/json\r\n\r\n%s" % (status, reason, name, len(body), body)
    )


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_request_is_the_bytes_httpx_sends(method: str) -> None:
    """Parsed back by h11 (Uvicorn's parser): the method, target, headers in
    httpx's order and the body of httpx's own request."""
    body = b'{"query":"{ a }"}' if method == "POST" else b""
    path = "/graphql" if method == "POST" else "/graphql?query=%7B+a+%7D"
    sent = encode(method, "http://127.0.0.1:8000", path, body, HEADERS)

    server = h11.Connection(h11.SERVER)
    server.receive_data(sent)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    data = server.next_event()
    assert (data.data if isinstance(data, h11.Data) else b"") == body
    with httpx.Client(base_url="http://127.0.0.1:8000") as client:
        expected = client.build_request(method, path, content=body, headers=HEADERS)
    assert request.method == method.encode()
    assert request.target == expected.url.raw_path
    assert [(k.lower(), v) for k, v in expected.headers.raw] == list(request.headers)


def test_responses_split_anywhere_or_several_in_one_read_are_each_read() -> None:
    stream = response() + response(b"") + response(name=b"Content-Length") + response()
    for size in (1, 7, 100, 4096, len(stream)):  # a byte at a time ... all at once
        responses = Responses(BODY)
        read = [responses.feed(stream[i : i + size]) for i in range(0, len(stream), size)]
        assert sum(read) == responses.read == 4
        assert responses.wrong == 1  # the empty body
        assert responses.sample == response(b"")
    # Answers complete only when their last byte arrives.
    responses = Responses(BODY)
    assert responses.feed(response()[:-1]) == 0 and responses.read == 0
    assert responses.feed(response()[-1:] + response()) == 2


def test_a_wrong_status_or_body_is_counted_wrong() -> None:
    responses = Responses(BODY)
    responses.feed(response(status=400) + response(BODY[:-1] + b"!") + response())
    assert (responses.read, responses.wrong) == (3, 2)
    assert responses.sample is not None and responses.sample.startswith(b"HTTP/1.1 400")


def test_a_response_without_a_content_length_cannot_be_read() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    with pytest.raises(ProtocolError, match="cannot frame"):
        Responses(b"hello").feed(chunked)


Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _split_answer(writer: asyncio.StreamWriter) -> None:
    """The answer in two writes, a moment apart: the client reads it in parts."""
    whole = response()
    writer.write(whole[:50])
    await writer.drain()
    await asyncio.sleep(0.001)
    writer.write(whole[50:])


async def _serve(
    answer: Answer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers each request (head and ``Content-Length`` body) with ``answer``."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            await answer(writer)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[str]:
    """A server on loopback in this event loop: its URL."""
    served = await asyncio.start_server(lambda r, w: _serve(answer, r, w), "127.0.0.1", 0)
    port = served.sockets[0].getsockname()[1]
    async with served:
        yield f"http://127.0.0.1:{port}"


def _window(url: str, expected: bytes = BODY, seconds: float = 0.3, clients: int = 3) -> Window:
    request = encode("POST", url, "/graphql", b"{}", HEADERS)
    return Window(url, request, expected, clients, seconds, os.getpid())


def test_a_window_counts_answers_read_in_parts_and_ends_on_time() -> None:
    async def main() -> loadgen.Served:
        async with server(_split_answer) as url:
            return await run_window(_window(url))

    served = asyncio.run(main())
    assert served.answers >= 3  # every client answered at least once
    # It stopped sending at its end: the wall time is its length and a last
    # answer's (within a generous bound; nothing here measures speed).
    assert 0.3 <= served.wall < 2.3
    assert served.cpu >= 0 and served.client_cpu >= 0


async def _wrong(writer: asyncio.StreamWriter) -> None:
    writer.write(response(b'{"data":null}'))


async def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _silent(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(60)


def _run(answer: Answer, expected: bytes = BODY) -> loadgen.Served:
    async def main() -> loadgen.Served:
        async with server(answer) as url:
            return await run_window(_window(url, expected))

    return asyncio.run(main())


def test_a_wrong_answer_fails_the_window() -> None:
    with pytest.raises(WrongAnswer, match=r"answers wrong.*data.:null"):
        _run(_wrong)


def test_a_connection_closed_mid_window_fails_it() -> None:
    with pytest.raises(ProtocolError, match="closed"):
        _run(_hang_up)


def test_a_server_that_stops_answering_fails_the_window_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loadgen, "GRACE_S", 0.2)
    with pytest.raises(TimeoutError):
        _run(_silent)


@contextlib.contextmanager
def threaded_server(answer: Answer) -> Iterator[str]:
    """The same server in a thread of this process, for the child process."""
    loop = asyncio.new_event_loop()
    urls: list[str] = []
    ready = threading.Event()
    stopping = asyncio.Event()

    async def main() -> None:
        async with server(answer) as url:
            urls.append(url)
            ready.set()
            await stopping.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        assert ready.wait(10), "the server did not start"
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        loop.close()


def test_the_load_process_runs_windows_and_raises_what_they_raised() -> None:
    with threaded_server(_split_answer) as url, LoadProcess() as load:
        served = load.run(_window(url))
        assert served.answers >= 3 and served.wall >= 0.3
        # The same process, another window: a wrong answer crosses back as itself.
        with pytest.raises(WrongAnswer, match="answers wrong"):
            load.run(_window(url, expected=b"another answer"))
        assert load.run(_window(url, seconds=0.1, clients=1)).answers >= 1


def test_waits_counts_the_main_thread_giving_up_the_cpu() -> None:
    """What says whether a server ran out of requests (a sleep is such a wait)."""
    before = loadgen.waits(os.getpid())
    for _ in range(3):
        time.sleep(0.001)
    assert loadgen.waits(os.getpid()) >= before + 3
