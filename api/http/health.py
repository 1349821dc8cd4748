"""Liveness and readiness that a busy server cannot delay, on a port of their own.

``/healthz`` and ``/readyz`` on the API's port are answered on the event loop,
after whatever else it is doing: under the heaviest query the budget allows, on
two connections, ``/healthz`` took 2.8 s at the median, the image's
``HEALTHCHECK`` (2 s) failed, and the container was restarted under attack. A
thread of the same process is no way out: the garbage collector holds the
interpreter while it walks the heap, and a heavy query's heap made each full
collection take up to 2 s (measured: a probe thread answered in 4.5 s at p99).
So ``newsgraph serve --health-port PORT`` answers both from a small process of
its own (:class:`ProbeProcess`, running :func:`main`): no event loop, no shared
interpreter, one selector and a few lines of HTTP.

What the server's state is, that process reads from a few numbers in shared
memory (:class:`Record`), which the server's event loop writes every 100 ms
(:class:`Health`, started with the app): when the loop last ran, whether the
store can be read, the store slots in use. Both ports answer from the same
numbers, by the same rules (:func:`liveness`, :func:`readiness`):

* liveness is 200 unless the event loop has not run for :data:`STALLED_S`
  (stuck that long, it is not coming back: restart it); it never asks the store,
  so neither an outage nor an attack gets a working process restarted;
* readiness is 503 while the store cannot be read, and also while the loop has
  not run for :data:`OVERLOADED_S` ("overloaded": every request waits that long
  before it starts), which is true, and lets a load balancer send the next
  request elsewhere.

What a load beside serving (``serve --load`` over a store that holds articles)
has done is the ``load`` part of the readiness body (:func:`load_part`):
readiness stays 200 while it runs, as what the store holds is served. The
process that loads answers it from its own record; the others, the workers of
``serve --workers`` (whose supervisor loads) and the probe process, from the
copy that load keeps in shared memory (:class:`LoadBoard`).

The probe process ends when the server does (it watches a pipe whose other end
only the server holds), whichever way the server ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from multiprocessing import reduction
from typing import TYPE_CHECKING

import orjson

from api.http.beats import Beats, DupFd

if TYPE_CHECKING:  # the probe process imports none of the server
    from api.data.gateway import Gateway

log = logging.getLogger("newsgraph.api")

#: Liveness fails when the event loop has not run for this long (seconds).
STALLED_S = 30.0
#: Readiness says "overloaded" when the event loop has not run for this long (seconds).
OVERLOADED_S = 1.0
#: How often the event loop writes the record (seconds).
PERIOD_S = 0.1

ProbeAnswer = tuple[int, dict[str, object]]


@dataclass(frozen=True)
class Snapshot:
    """The server's state as the probes see it."""

    #: When the event loop last ran (``time.monotonic_ns``); 0 before it started.
    beat_ns: int
    store_up: bool
    in_flight: int
    slots: int

    def lag_s(self, now_ns: int) -> float | None:
        """How long the loop has been kept from running (None: not started)."""
        if not self.beat_ns:
            return None
        return max(0.0, (now_ns - self.beat_ns) / 1e9 - PERIOD_S)


def liveness(state: Snapshot, now_ns: int) -> ProbeAnswer:
    lag = state.lag_s(now_ns)
    if lag is None:
        return 200, {"status": "starting"}
    if lag > STALLED_S:
        return 503, {"status": "stalled", "event_loop_lag_ms": round(lag * 1000)}
    return 200, {"status": "ok"}


def readiness(state: Snapshot, now_ns: int) -> ProbeAnswer:
    lag = state.lag_s(now_ns)
    if lag is None:
        status = "starting"
    elif not state.store_up:
        status = "unavailable"
    elif lag > OVERLOADED_S:
        status = "overloaded"
    else:
        status = "ready"
    body: dict[str, object] = {
        "status": status,
        "store": "up" if state.store_up else "down",
        "store_calls_in_flight": state.in_flight,
        "store_call_slots": state.slots,
        "event_loop_lag_ms": None if lag is None else round(lag * 1000),
    }
    return (200 if status == "ready" else 503), body


class Record:
    """A :class:`Snapshot` in a few bytes that two processes share: one writer
    (the event loop), readers anywhere. Each field is aligned and written on
    its own, so a reader sees each whole, if perhaps one from the write before."""

    SIZE = 24
    _U64, _U32 = struct.Struct("<Q"), struct.Struct("<I")
    _BEAT, _IN_FLIGHT, _SLOTS, _UP = 0, 8, 12, 16

    def __init__(self, buffer: mmap.mmap | bytearray | None = None) -> None:
        self.buffer = buffer if buffer is not None else bytearray(self.SIZE)

    def write(self, state: Snapshot) -> None:
        self._U32.pack_into(self.buffer, self._IN_FLIGHT, state.in_flight)
        self._U32.pack_into(self.buffer, self._SLOTS, state.slots)
        self._U32.pack_into(self.buffer, self._UP, int(state.store_up))
        self._U64.pack_into(self.buffer, self._BEAT, state.beat_ns)

    def read(self) -> Snapshot:
        return Snapshot(
            beat_ns=self._U64.unpack_from(self.buffer, self._BEAT)[0],
            store_up=bool(self._U32.unpack_from(self.buffer, self._UP)[0]),
            in_flight=self._U32.unpack_from(self.buffer, self._IN_FLIGHT)[0],
            slots=self._U32.unpack_from(self.buffer, self._SLOTS)[0],
        )


class SharedRecord:
    """A :class:`Record` in a file, that a process spawned by ``multiprocessing``
    maps again when it is unpickled there (the file passed as sockets are)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Callable[[DupFd], Record], tuple[DupFd]]:
        return _mapped, (reduction.DupFd(self.fd),)


def _mapped(dup: DupFd) -> Record:
    fd = dup.detach()
    try:
        return Record(mmap.mmap(fd, Record.SIZE))
    finally:
        os.close(fd)  # the map holds a file of its own


#: What the load beside serving has done, JSON-ready (``loaders.progress``);
#: None while there is none to tell of.
LoadState = Callable[[], "dict[str, object] | None"]


def load_part(body: dict[str, object], load: LoadState | None) -> dict[str, object]:
    """``body`` with the ``load`` part: the load beside serving, if one runs
    or ran (the part names the process that runs it). A probe must not fail
    for it: if it cannot be told, the part says so."""
    if load is not None:
        try:
            part = load()
        except Exception:
            log.warning("cannot tell how the load goes", exc_info=True)
            part = {"pid": os.getpid(), "error": "cannot tell"}
        if part is not None:
            body["load"] = part
    return body


class LoadBoard:
    """The ``load`` part, in a file that several processes map: the process
    that loads writes it as the load goes (:meth:`write`, one writer), the
    others read it (:meth:`read`). A sequence number, odd while a write is
    under way, lets a reader tell a copy that a write overlapped, and read
    again. Pickled to a spawned worker, it is mapped again there."""

    SIZE = 8192
    _HEAD = struct.Struct("<QI")  # sequence, length of the JSON that follows
    _READS = 100

    def __init__(self, buffer: mmap.mmap, fd: int) -> None:
        self.buffer = buffer
        self.fd = fd

    @classmethod
    def create(cls) -> LoadBoard:
        """An empty board, in a file no one else can open (deleted at once)."""
        with tempfile.TemporaryFile() as backing:
            backing.truncate(cls.SIZE)
            fd = os.dup(backing.fileno())
        return cls(mmap.mmap(fd, cls.SIZE), fd)

    def write(self, part: dict[str, object]) -> None:
        payload = orjson.dumps(part)
        if len(payload) > self.SIZE - self._HEAD.size:  # not expected: its text is short
            payload = orjson.dumps({"pid": part.get("pid"), "error": "cannot tell"})
        sequence, length = self._HEAD.unpack_from(self.buffer, 0)
        self._HEAD.pack_into(self.buffer, 0, sequence + 1, length)
        self.buffer[self._HEAD.size : self._HEAD.size + len(payload)] = payload
        self._HEAD.pack_into(self.buffer, 0, sequence + 2, len(payload))

    def read(self) -> dict[str, object] | None:
        """What was last written (None: nothing yet)."""
        for _ in range(self._READS):
            sequence, length = self._HEAD.unpack_from(self.buffer, 0)
            payload = self.buffer[self._HEAD.size : self._HEAD.size + length]
            if sequence % 2 == 0 and self._HEAD.unpack_from(self.buffer, 0)[0] == sequence:
                return orjson.loads(payload) if length else None
            time.sleep(0)  # a write is under way: let it end
        raise RuntimeError("the load part kept changing as it was read")

    def close(self) -> None:
        self.buffer.close()
        os.close(self.fd)

    def __reduce__(self) -> tuple[Callable[[DupFd], LoadBoard], tuple[DupFd]]:
        return _board, (reduction.DupFd(self.fd),)


def _board(dup: DupFd) -> LoadBoard:
    fd = dup.detach()
    return LoadBoard(mmap.mmap(fd, LoadBoard.SIZE), fd)


class Health:
    """The server's side: the record its event loop keeps (:meth:`start` on
    that loop), and the answers of ``/healthz`` and ``/readyz`` on its port."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        #: Replaced by the probe process's shared record when there is one.
        self.record = Record()
        #: How the load beside serving goes, when this process runs one.
        self.load: LoadState | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failing = False
        #: A worker of ``serve --workers``: its heartbeat (``api.http.beats``).
        self.on_beat: Callable[[int], None] | None = None

    def start(self) -> None:
        self._beat(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        # The next beat first: nothing that fails below may stop the beats
        # (liveness would then fail, and the process be restarted for it).
        self._timer = loop.call_later(PERIOD_S, self._beat, loop)
        beat_ns = time.monotonic_ns()
        self.record.write(self.now(beat_ns=beat_ns))
        if self.on_beat is not None:
            self.on_beat(beat_ns)

    def now(self, beat_ns: int | None = None) -> Snapshot:
        """The state now, from here (the store's as the driver sees it: no
        round trip queued behind busy store calls)."""
        try:
            up = self.gateway.ready()
            self._failing = False
        except Exception:  # the driver cannot tell: not ready, and say why (once)
            if not self._failing:
                log.warning("cannot tell whether the store is up", exc_info=True)
            self._failing, up = True, False
        slots = self.gateway.slots
        return Snapshot(
            beat_ns=self.record.read().beat_ns if beat_ns is None else beat_ns,
            store_up=up,
            in_flight=slots.in_flight,
            slots=slots.size,
        )

    def liveness(self) -> ProbeAnswer:
        # From the record alone: liveness never asks about the store.
        return liveness(self.record.read(), time.monotonic_ns())

    def readiness(self) -> ProbeAnswer:
        status, body = readiness(self.now(), time.monotonic_ns())
        return status, load_part(body, self.load)


class ProbeProcess:
    """The process that answers probes on ``sock``, reading ``record``: started
    at once, so probes are answered (alive, starting) while ``serve --load`` loads."""

    def __init__(
        self, sock: socket.socket, beats: Beats | None = None, load: LoadBoard | None = None
    ) -> None:
        self.port: int = sock.getsockname()[1]
        # A file no one else can open (deleted at once): the shared record.
        with tempfile.TemporaryFile() as backing:
            backing.truncate(Record.SIZE)
            self.record = Record(mmap.mmap(backing.fileno(), Record.SIZE))
            # Kept open for ``serve --workers``: each worker maps it too (see shared()).
            self._backing = os.dup(backing.fileno())
            watched, self._alive = os.pipe()
            try:
                fds: tuple[int, ...] = (sock.fileno(), backing.fileno(), watched)
                # With --workers, each worker's beat, reported on /healthz.
                table = (beats.fd, beats.size) if beats is not None else (-1, 0)
                # With --load, the load part of /readyz.
                board = load.fd if load is not None else -1
                passed = tuple(fd for fd in (*fds, table[0], board) if fd >= 0)
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "api.http.health", *map(str, (*fds, *table, board))],
                    pass_fds=passed,
                    stdin=subprocess.DEVNULL,
                )
            finally:
                os.close(watched)

    def shared(self) -> SharedRecord:
        """The record, for worker processes that ``multiprocessing`` spawns
        (Uvicorn's workers): pickled, it is mapped again in the worker. All
        workers write the one record, so the probes answer for the fleet: alive
        while any worker's event loop runs (Uvicorn's supervisor restarts a
        worker that exits), ready as the last to beat saw the store."""
        return SharedRecord(self._backing)

    def stop(self) -> None:
        os.close(self._backing)
        os.close(self._alive)  # the process sees the pipe close, and ends
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ProbeServer:
    """``/healthz`` and ``/readyz`` on a listening socket, one selector for all.

    A connection gets :data:`READ_TIMEOUT_S` to send its request's head, at
    most :data:`PENDING_MAX` wait at once (the oldest is dropped for a new
    one), and each gets one answer, then is closed.
    """

    READ_TIMEOUT_S = 2.0
    PENDING_MAX = 64
    REQUEST_MAX = 8192

    def __init__(
        self,
        sock: socket.socket,
        record: Record,
        watched: int,
        beats: Beats | None = None,
        load: LoadBoard | None = None,
    ) -> None:
        self.sock = sock
        self.record = record
        self.watched = watched
        self.beats = beats
        self.load = load
        self.selector = selectors.DefaultSelector()
        #: connection -> (when it must have sent its request, what it sent)
        self.pending: dict[socket.socket, tuple[float, bytearray]] = {}

    def answer(self, request: bytes) -> bytes:
        """The whole HTTP answer to one request's head."""
        method, _, rest = request.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        state, now = self.record.read(), time.monotonic_ns()
        answer: ProbeAnswer
        if method not in (b"GET", b"HEAD"):
            answer = 405, {"status": "GET only"}
        elif path == b"/healthz":
            answer = liveness(state, now)
            if self.beats is not None:  # serve --workers: each worker's last beat
                answer[1]["workers"] = self.beats.report(now)
        elif path == b"/readyz":
            status, body = readiness(state, now)
            answer = status, load_part(body, self.load.read if self.load else None)
        else:
            answer = 404, {"status": "not found: /healthz and /readyz are served here"}
        status, body = answer
        payload = orjson.dumps(body)
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        ).encode()
        return head if method == b"HEAD" else head + payload

    def run(self) -> None:
        """Serve until the watched pipe closes."""
        self.sock.setblocking(False)
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.selector.register(self.watched, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select(timeout=0.5):
                if key.fileobj is self.sock:
                    self._accept()
                elif key.fileobj == self.watched:
                    return  # the server is gone
                else:
                    assert isinstance(key.fileobj, socket.socket)
                    self._read(key.fileobj)
            now = time.monotonic()
            for conn in [c for c, (due, _) in self.pending.items() if due < now]:
                self._close(conn)

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.05)  # out of descriptors: wait, rather than spin
            return
        conn.setblocking(False)
        if len(self.pending) >= self.PENDING_MAX:
            self._close(next(iter(self.pending)))
        self.pending[conn] = (time.monotonic() + self.READ_TIMEOUT_S, bytearray())
        self.selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        received = self.pending[conn][1]
        received += data
        if data and b"\r\n\r\n" not in received and len(received) < self.REQUEST_MAX:
            return  # the rest of the head is on its way
        if data:
            with contextlib.suppress(OSError):
                conn.settimeout(0.5)
                conn.sendall(self.answer(bytes(received)))
        self._close(conn)

    def _close(self, conn: socket.socket) -> None:
        self.pending.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()


def main(argv: list[str]) -> None:
    """The probe process: ``python -m api.http.health LISTEN_FD RECORD_FD PIPE_FD
    BEATS_FD WORKERS LOAD_FD`` (-1: no beats, no load board)."""
    # Ctrl-C reaches the whole process group: the server stops, then this does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listen_fd, record_fd, watched, beats_fd, workers, board = map(int, argv)
    sock = socket.socket(fileno=listen_fd)
    record = Record(mmap.mmap(record_fd, Record.SIZE))
    beats = Beats.mapped(beats_fd, workers) if beats_fd >= 0 else None
    load = LoadBoard(mmap.mmap(board, LoadBoard.SIZE), board) if board >= 0 else None
    ProbeServer(sock, record, watched, beats, load).run()


if __name__ == "__main__":
    main(sys.argv[1:])
