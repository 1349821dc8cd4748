"""The ``cpu`` scenario's load: lean HTTP/1.1 clients in a process of their own.

Why not httpx: a Python httpx client costs more per request than the bare
endpoint does to answer it, so eight of them in the benchmark's process kept
the API's server busy but the bare endpoints only about half busy, and a
half-idle server pays more per request (an epoll wake, a loop iteration and
their syscalls for each request, where a busy one reads several at a wake).
The servers were measured at different loads, to the API's advantage. These
clients cost a fraction of a bare request: each is an :class:`asyncio.Protocol`
on a keep-alive connection that writes one request encoded once beforehand
(the same bytes httpx would send: its request line, headers and their order)
and reads each response by its ``Content-Length``. Nothing is parsed that the
check does not need, yet every response's status and body are compared with
the expected answer, and a window with a wrong one fails (:class:`WrongAnswer`).

They run in a child process (``python -m bench.loadgen``, driven through
pipes by :class:`LoadProcess`), so they have a core's worth of time and no
GIL shared with the benchmark's own work (a tracing run's collector, for
one). The child also reads the server's CPU time at the window's edges:
after the connections are open and just after the last answer, so neither
the connects nor the round trip to the parent are in the window.

One request in flight per connection, as a browser or an HTTP client sends
them: no pipelining, which would let the server read several requests at a
wake and so measure something no ordinary client causes. The reader handles
several responses in one read all the same (:class:`Responses`), and
responses split across reads. Bounded: each window stops sending at its end,
and fails if the answers are not all in within :data:`GRACE_S` after it.
Loopback only: the servers the scenario starts.
"""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

#: How long after its end a window may wait for its last answers before it fails.
GRACE_S = 10.0


class WrongAnswer(AssertionError):
    """A server answered other than expected (status or body)."""


class ProtocolError(RuntimeError):
    """A response this reader cannot frame (no ``Content-Length``), or a
    connection the server closed mid-window."""


def encode(method: str, url: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The request an httpx client would send to ``url`` for ``path``: its
    request line, then httpx's own headers (host, accept, connection,
    user-agent) and ``headers``, in httpx's order, then ``body``."""
    import httpx2 as httpx  # only here: the child process never encodes

    with httpx.Client(base_url=url) as client:
        request = client.build_request(method, path, content=body, headers=dict(headers))
    lines = [b"%s %s HTTP/1.1" % (method.encode(), request.url.raw_path)]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) that process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name, which is in parentheses and may hold
        # spaces: the 14th and 15th of the line (utime, stime) are 11th and 12th.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waits(pid: int) -> int:
    """How often process ``pid``'s main thread (a Uvicorn server's event
    loop) has given up the CPU of its own accord: slept in ``epoll_wait``
    with nothing to do, or waited for a lock. A server that always has a
    request waiting hardly ever does, however loaded the machine (being
    preempted is an involuntary switch, not counted)."""
    with open(f"/proc/{pid}/task/{pid}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise RuntimeError(f"no voluntary_ctxt_switches for {pid}")


class Responses:
    """HTTP/1.1 responses read from a byte stream in whatever pieces it
    arrives, each framed by its ``Content-Length`` and checked: ``read``
    responses so far, ``wrong`` of them with another status or body than
    expected (the first such kept in ``sample``)."""

    def __init__(self, expected: bytes, status: int = 200) -> None:
        self.expected = expected
        self.status = status
        self.read = 0
        self.wrong = 0
        self.sample: bytes | None = None
        self._buffer = bytearray()
        self._head = 0  # the current response's head length (to its blank line), once known
        self._length = 0  # and its body's

    def feed(self, data: bytes) -> int:
        """Reads what ``data`` completes; returns how many responses it did."""
        buffer = self._buffer
        buffer += data
        done = 0
        while True:
            if not self._head:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return done
                self._head, self._length = end + 4, _content_length(bytes(buffer[:end]))
            total = self._head + self._length
            if len(buffer) < total:
                return done
            right = buffer[9:12] == b"%d" % self.status and buffer[self._head : total] == (
                self.expected
            )
            if not right:
                self.wrong += 1
                if self.sample is None:
                    self.sample = bytes(buffer[:total])
            del buffer[:total]
            self._head = 0
            self.read += 1
            done += 1


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if not head.startswith(b"HTTP/1.1 ") or at < 0:
        raise ProtocolError(f"a response this reader cannot frame: {head[:200]!r}")
    start = at + len(b"\r\ncontent-length:")
    end = head.find(b"\r\n", start)
    return int(head[start : end if end >= 0 else len(head)])


class _Client(asyncio.Protocol):
    """One connection: the request, again after each answer, until ``deadline``."""

    def __init__(self, request: bytes, responses: Responses, opened: asyncio.Future[None]) -> None:
        self.request = request
        self.responses = responses
        self.opened = opened
        self.done: asyncio.Future[None] = opened.get_loop().create_future()
        self.deadline = float("inf")  # set when the window starts
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.opened.set_result(None)

    def start(self, deadline: float) -> None:
        assert self.transport is not None
        self.deadline = deadline
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            answered = self.responses.feed(data)
        except ProtocolError as error:
            self._finish(error)
            return
        if answered and not self.done.done():
            if time.monotonic() < self.deadline:
                assert self.transport is not None
                self.transport.write(self.request)
            else:
                self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(ProtocolError(f"the server closed a connection mid-window ({exc})"))

    def _finish(self, error: Exception | None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)


@dataclass(frozen=True)
class Window:
    """One window's load: ``clients`` connections to ``url``, each sending
    ``request`` back to back for ``seconds``; every answer must be
    ``status`` with body ``expected``. ``pid``: the server, whose CPU time
    is read at the window's edges."""

    url: str
    request: bytes
    expected: bytes
    clients: int
    seconds: float
    pid: int
    status: int = 200


@dataclass(frozen=True)
class Served:
    """What a window measured: the server's CPU seconds, the wall seconds,
    the answers (all checked), the clients' own CPU seconds (this
    process's: what the load cost to make), and the times the server's
    event loop waited (:func:`waits`)."""

    cpu: float
    wall: float
    answers: int
    client_cpu: float
    server_waits: int


async def run_window(window: Window) -> Served:
    """``window``'s load, in this event loop. Raises :class:`WrongAnswer` if
    an answer was wrong, :class:`ProtocolError` if the server closed a
    connection or sent what cannot be framed, and :class:`TimeoutError` if
    the answers were not in by :data:`GRACE_S` after the window's end."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(window.url)
    assert parts.hostname in ("127.0.0.1", "localhost"), "loopback only"
    host, port = parts.hostname, parts.port or 80
    responses = [Responses(window.expected, window.status) for _ in range(window.clients)]
    clients: list[_Client] = []
    try:
        for checked in responses:
            opened: asyncio.Future[None] = loop.create_future()
            connect = functools.partial(_Client, window.request, checked, opened)
            _, client = await loop.create_connection(connect, host, port)
            await opened
            clients.append(client)
        waited, own = waits(window.pid), time.process_time()
        cpu_started, started = cpu_seconds(window.pid), time.monotonic()
        for client in clients:
            client.start(started + window.seconds)
        waiting = asyncio.gather(*(client.done for client in clients))
        await asyncio.wait_for(waiting, window.seconds + GRACE_S)
        cpu, wall = cpu_seconds(window.pid) - cpu_started, time.monotonic() - started
        own, waited = time.process_time() - own, waits(window.pid) - waited
    finally:
        for client in clients:
            if not client.done.done():
                client.done.cancel()
            elif not client.done.cancelled():
                client.done.exception()  # retrieved, so that asyncio does not log it
            if client.transport is not None:
                client.transport.close()
    answers = sum(r.read for r in responses)
    wrong = sum(r.wrong for r in responses)
    if wrong:
        sample = next(r.sample for r in responses if r.sample is not None) or b""
        raise WrongAnswer(
            f"{wrong} of {answers} answers wrong; the first: {sample[:300]!r}, "
            f"expected a {window.status} with {window.expected[:300]!r}"
        )
    return Served(cpu, wall, answers, own, waited)


class LoadProcess:
    """The child process that runs windows (``python -m bench.loadgen``):
    :meth:`run` sends it a :class:`Window` and returns its :class:`Served`,
    or raises what the window raised there. Use as a context manager; the
    child ends when its input closes."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LoadProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            process.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def run(self, window: Window) -> Served:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        pickle.dump(window, process.stdin)
        process.stdin.flush()
        try:
            outcome = pickle.load(process.stdout)
        except EOFError:
            raise RuntimeError(f"the load process ended (exit {process.wait()})") from None
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, Served)
        return outcome


def serve(commands: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: a :class:`Window` in, its :class:`Served` (or the
    exception it raised) out, until ``commands`` ends."""
    while True:
        try:
            window = pickle.load(commands)
        except EOFError:
            return
        outcome: Any
        try:
            outcome = asyncio.run(run_window(window))
        except Exception as error:  # handed to the parent, which raises it
            outcome = error
        pickle.dump(outcome, replies)
        replies.flush()


if __name__ == "__main__":
    # From the module by its name, not this ``__main__`` copy, so that what
    # goes back pickles as bench.loadgen's classes, which the parent knows.
    from bench.loadgen import serve as serving

    serving(sys.stdin.buffer, sys.stdout.buffer)
