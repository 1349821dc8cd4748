"""Read a file's bytes, bounded in size, and fingerprint them.

Only regular files are read. A folder can also hold a FIFO (opening one for
reading waits for a writer, for ever), a socket or a device; those are skipped
on what ``stat`` says, before any ``open``. Files also change under a loader:
one can vanish between being listed and being read, or be half-written while
it is read; those are skipped too, with a reason, rather than stored torn.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from core.document import SHAPE_VERSION
from loaders.errors import Rejected

_SALT = f"newsgraph-shape-{SHAPE_VERSION}\n".encode()

#: Not blocking: belt and braces, should a FIFO replace the file between the
#: ``stat`` and the ``open``. Not making a terminal ours. No leaking into workers.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Skipped(Exception):
    """A file that is not loaded, for a reason other than its content: it is
    not a regular file, or it vanished or kept changing while it was read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Changed(Exception):
    """The file changed while it was read (its size, time or identity)."""


#: A file's (size, mtime_ns, ctime_ns): what tells a reload it is untouched.
Stat = tuple[int, int, int]


def file_stat(path: Path) -> Stat | None:
    """The regular file's :data:`Stat`; None if it is anything else or gone
    (reading it then says why)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return regular_stat(st)


def regular_stat(st: os.stat_result | None) -> Stat | None:
    """The :data:`Stat` of what ``os.stat`` said, if it is a regular file."""
    return _stat(st) if st is not None and stat.S_ISREG(st.st_mode) else None


def _stat(st: os.stat_result) -> Stat:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def read_file(path: Path, max_bytes: int) -> bytes:
    """:func:`read_file_stat`'s bytes."""
    return read_file_stat(path, max_bytes)[0]


def read_file_stat(path: Path, max_bytes: int) -> tuple[bytes, Stat]:
    """The file's bytes, and its :data:`Stat` while they were read;
    :class:`Rejected` if it cannot be read or is too large; :class:`Skipped`
    if it is not a regular file, vanished, or changed while it was read and
    again on a second try.

    The size is checked before reading, so a huge file costs nothing.
    """
    try:
        return _read_settled(path, max_bytes)
    except _Changed:
        pass  # caught mid-write, most likely: once more
    try:
        return _read_settled(path, max_bytes)
    except _Changed:
        raise Skipped(
            "kept changing while it was being read (twice); it is loaded once "
            "it stops changing: load again, or let --watch pick it up"
        ) from None


def _read_settled(path: Path, max_bytes: int) -> tuple[bytes, Stat]:
    try:
        listed = os.stat(path)  # follows a symlink: a link to a FIFO is a FIFO
        _require_regular(listed)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise Rejected("cannot read file: it is a symbolic link to a missing file") from None
        raise Skipped(
            "vanished before it could be read: no such file now (deleted or moved since it "
            "was found)"
        ) from None
    except OSError as exc:
        raise Rejected(f"cannot read file: {exc.strerror or exc}") from None
    with open(fd, "rb") as f:
        opened = os.fstat(fd)
        if _identity(opened) != _identity(listed):
            raise _Changed  # replaced between the stat and the open
        if opened.st_size > max_bytes:
            raise Rejected(
                f"file is {opened.st_size:,} bytes, over the {max_bytes:,}-byte limit "
                "(raise NEWSGRAPH_MAX_FILE_BYTES to allow it)"
            )
        data = _read_bytes(f, max_bytes + 1)
        after = os.fstat(fd)
        if _state(after) != _state(opened) or len(data) != opened.st_size:
            raise _Changed
    return data, _stat(after)


def _require_regular(st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        raise Rejected("is a directory that cannot be listed")
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "an unusual kind of file")
    raise Skipped(f"is {kind}, not a regular file; skipped without opening it")


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode)


def _state(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read_bytes(f: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes (a seam the tests use to change a file mid-read)."""
    return f.read(limit)


def content_hash(data: bytes) -> str:
    """A fingerprint of what the file will turn into: its bytes and the rules
    (:data:`SHAPE_VERSION`) that turn them into a document."""
    return hashlib.blake2b(_SALT + data, digest_size=16).hexdigest()
