"""Each worker's heartbeat, for the supervisor of ``serve --workers N``.

A probe reaches whichever worker accepts its connection, so a fleet where one
worker's event loop is stuck still answers its probes from the others, and the
stuck worker sits on the connections it accepted. Process managers solve this
with a heartbeat per worker (gunicorn's arbiter: each worker touches its own
file; a worker silent for longer than ``--timeout`` is killed and replaced).
Here each worker's event loop writes the time of its last beat into its own
slot of a small shared table (:class:`Beats`), as often as it writes the
probes' record (:data:`api.http.health.PERIOD_S`); the supervisor reads the
table twice a second, and the probe process reports each slot's age on
``/healthz``. Shared memory rather than files: a beat is one aligned 8-byte
store, no system call, so beating costs the loop nothing measurable.

Each slot holds a worker's pid and when it was started (written by the
supervisor before the worker runs) and its last beat (written by the worker's
event loop, ``time.monotonic_ns``, which all processes of the host share).
Like :class:`api.http.health.Record`, each field is aligned and written on its
own, so a reader sees each whole. Imports nothing of the server: the probe
process reads it.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Protocol

#: A worker that has not beaten yet is given at least this long from its start
#: (seconds): importing and building the app is not a stuck event loop.
STARTING_S = 60.0


@dataclass(frozen=True)
class Slot:
    """One worker as the table says: its pid (0: no worker yet), when it was
    started and when it last beat (``time.monotonic_ns``; 0: not yet)."""

    index: int
    pid: int
    started_ns: int
    beat_ns: int

    def silent_s(self, now_ns: int, timeout_s: float) -> float | None:
        """How far past its allowance the worker is (seconds, > 0: too long
        silent), or None for an empty slot. Its allowance is ``timeout_s``
        from its last beat, or, before its first, ``max(timeout_s,
        STARTING_S)`` from its start."""
        if not self.pid:
            return None
        if self.beat_ns:
            return (now_ns - self.beat_ns) / 1e9 - timeout_s
        return (now_ns - self.started_ns) / 1e9 - max(timeout_s, STARTING_S)

    def age_ms(self, now_ns: int) -> int | None:
        """Milliseconds since the last beat (None: it has not beaten yet)."""
        return round((now_ns - self.beat_ns) / 1e6) if self.beat_ns else None


class Beats:
    """The table: ``size`` slots of three unsigned 64-bit fields, in a file no
    one else can open (deleted at once), mapped by each process that uses it."""

    _FIELD = struct.Struct("<Q")
    _PID, _STARTED, _BEAT = 0, 8, 16
    SLOT_SIZE = 24

    def __init__(self, buffer: mmap.mmap, size: int, fd: int = -1) -> None:
        self.buffer = buffer
        self.size = size
        #: The backing file, kept open to be passed on (-1: a mapping only).
        self.fd = fd

    @classmethod
    def create(cls, size: int) -> Beats:
        with tempfile.TemporaryFile() as backing:
            backing.truncate(size * cls.SLOT_SIZE)
            buffer = mmap.mmap(backing.fileno(), size * cls.SLOT_SIZE)
            return cls(buffer, size, os.dup(backing.fileno()))

    @classmethod
    def mapped(cls, fd: int, size: int) -> Beats:
        """The table in another process, from its file (``fd`` is not kept)."""
        return cls(mmap.mmap(fd, size * cls.SLOT_SIZE), size)

    def _put(self, index: int, field: int, value: int) -> None:
        self._FIELD.pack_into(self.buffer, index * self.SLOT_SIZE + field, value)

    def _get(self, index: int, field: int) -> int:
        value: int = self._FIELD.unpack_from(self.buffer, index * self.SLOT_SIZE + field)[0]
        return value

    def started(self, index: int, pid: int, now_ns: int) -> None:
        """The supervisor's: slot ``index`` is now worker ``pid``, not yet beaten."""
        self._put(index, self._BEAT, 0)
        self._put(index, self._STARTED, now_ns)
        self._put(index, self._PID, pid)

    def beat(self, index: int, now_ns: int) -> None:
        """The worker's event loop's: it ran at ``now_ns``."""
        self._put(index, self._BEAT, now_ns)

    def slot(self, index: int) -> Slot:
        return Slot(
            index,
            self._get(index, self._PID),
            self._get(index, self._STARTED),
            self._get(index, self._BEAT),
        )

    def slots(self) -> list[Slot]:
        return [self.slot(i) for i in range(self.size)]

    def report(self, now_ns: int) -> list[dict[str, int | None]]:
        """What ``/healthz`` says of each worker: its pid and the age of its last beat."""
        return [
            {"pid": slot.pid, "beat_age_ms": slot.age_ms(now_ns)}
            for slot in self.slots()
            if slot.pid
        ]

    def beater(self, index: int) -> Beater:
        """What a worker process is given (pickled to it): its slot's beat."""
        return Beater(self.fd, self.size, index)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class DupFd(Protocol):
    """What ``multiprocessing.reduction.DupFd`` gives: the file in the child."""

    def detach(self) -> int: ...


class Beater:
    """One worker's beat: called with ``time.monotonic_ns()`` by its event loop.
    Pickled to a spawned worker, it maps the table again there."""

    def __init__(self, fd: int, size: int, index: int, beats: Beats | None = None) -> None:
        self.fd, self.size, self.index = fd, size, index
        self.beats = beats

    def __call__(self, now_ns: int) -> None:
        if self.beats is not None:
            self.beats.beat(self.index, now_ns)

    def __reduce__(self) -> tuple[Callable[[DupFd, int, int], Beater], tuple[DupFd, int, int]]:
        return _beater, (reduction.DupFd(self.fd), self.size, self.index)


def _beater(dup: DupFd, size: int, index: int) -> Beater:
    fd = dup.detach()
    try:
        return Beater(-1, size, index, Beats.mapped(fd, size))
    finally:
        os.close(fd)  # the map holds a file of its own
