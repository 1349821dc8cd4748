"""Parsing in worker processes, so a load uses every core.

Parsing (YAML, normalizing, mojibake repair) is the loader's CPU-bound stage;
writing waits on the store. The pipeline hands each batch's files to a pool of
processes and writes the previous batch meanwhile. Small batches (a few files
changed under ``--watch``, the sample articles) are parsed inline: starting
workers would cost more than it saves.

Workers return one :data:`Outcome` per file, small values that pickle, not
exceptions: a bug's exception may not pickle at all, and the pipeline settles
each file by the type of its outcome.

The pool lives as long as one load. Its workers come from multiprocessing's
forkserver, helped by its resource tracker: two more processes (~40 MB) that
multiprocessing starts once and keeps for the life of the process, which for
``newsgraph serve --load`` or ``load --watch`` is days. So when the last pool in
the process closes, they are stopped too; the next pool starts them again.

The workers ignore SIGINT and SIGTERM, and so does the forkserver: Ctrl-C at a
terminal reaches the whole process group, and so does SIGTERM from systemd (its
default kill mode) or a runner that stops a process group; the loader stops them
itself, in order (``loaders.pipeline``). A worker killed while it sent its
batch's outcomes through the pool's pipe would leave half a message there, and
the pool's reader would wait for the rest forever (CPython 3.11; the OOM killer
chooses its moment): so a worker writes its outcomes to a file of the pool's
own directory and sends back only the file's name. That message is a few
hundred bytes, which a pipe takes whole or not at all (a write of up to
``PIPE_BUF`` bytes is atomic), and a worker killed mid-file leaves a file no
one reads, removed with the directory when the pool closes. A forkserver
killed makes the pool take every worker for dead, and leave them running: so
the forkserver never acts on these signals, from its first instruction,
whichever thread starts it, and its workers inherit that (``loaders.poolsignals``
says how). The loader's own handling of them is left alone meanwhile: this
module once had the loader ignore SIGTERM while its forkserver started, and a
SIGTERM sent to the loader then was lost. And each worker watches the
loader's process, and ends when it is gone: the workers are the forkserver's
children, not the loader's, so a loader that dies without closing its pool
(SIGKILL, the OOM killer) would leave them waiting for work forever, and the
forkserver and resource tracker with them (each lives while a worker holds its
pipe).

A worker that dies anyway (the OOM killer), or a forkserver gone when the pool
wants another worker, costs the pool, not the batch: the batches in flight and
those after are parsed inline. The pool ends the other workers of a broken pool
with SIGTERM, which they ignore, so closing it kills them (a pool breaks
unseen when no batch was in flight: it is asked).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import pickle
import select
import signal
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from loaders import poolsignals
from loaders.errors import Rejected
from loaders.parse import parse_article

log = logging.getLogger("newsgraph.loaders")

#: A batch with fewer files to parse than this is parsed inline.
PARALLEL_MIN = 100

#: (file bytes, path, content hash)
Item = tuple[bytes, str, str]

#: Pools open in this process (loaders in threads may overlap): the forkserver
#: is stopped only when none is left, as a running pool's workers need it.
_pools = 0
_pools_lock = threading.Lock()
#: Helpers already running when the first pool started: someone else's, kept.
_theirs: list[object] = []
#: Where multiprocessing keeps each helper, and the attribute that holds its
#: process id while it runs (None when not).
_HELPERS = (
    (multiprocessing.forkserver, "_forkserver", "_forkserver_pid"),
    (multiprocessing.resource_tracker, "_resource_tracker", "_pid"),
)


@dataclass(frozen=True)
class Parsed:
    """The file's document, ready to write."""

    document: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    """The file is not a valid article: :class:`Rejected`'s reason, line and
    field path."""

    reason: str
    line: int | None
    field: str | None


@dataclass(frozen=True)
class Crashed:
    """Parsing the file hit a bug; the reason asks the person to report it."""

    reason: str


#: What parsing one file came to.
Outcome = Parsed | Rejection | Crashed


def parse_outcomes(items: list[Item]) -> list[Outcome]:
    """Parse each file; one outcome per file, in order."""
    outcomes: list[Outcome] = []
    for data, path, digest in items:
        try:
            outcomes.append(Parsed(parse_article(data, path=path, content_hash=digest)))
        except Rejected as exc:
            outcomes.append(Rejection(exc.reason, exc.line, exc.field))
        except Exception as exc:  # a bug must cost one file, not the run
            reason = f"unexpected error ({type(exc).__name__}: {exc}); please report it"
            outcomes.append(Crashed(reason))
    return outcomes


def parse_to_file(items: list[Item], directory: str) -> str:
    """In a worker: :func:`parse_outcomes`, written to a new file in
    ``directory``; its name is what goes back through the pool's pipe (see
    the module). :func:`read_outcomes` reads it, once."""
    outcomes = parse_outcomes(items)
    fd, path = tempfile.mkstemp(suffix=".outcomes", dir=directory)
    with os.fdopen(fd, "wb") as out:
        pickle.dump(outcomes, out, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def read_outcomes(path: str) -> list[Outcome]:
    """The outcomes a worker wrote to ``path`` (our own pool's file), which
    is removed."""
    try:
        with open(path, "rb") as written:
            outcomes: list[Outcome] = pickle.load(written)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return outcomes


class Parser:
    """Parses batches in up to ``workers`` processes (0: one per CPU)."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        #: Where the workers write their outcomes (see the module).
        self._outbox: tempfile.TemporaryDirectory[str] | None = None
        self._broken = False

    @property
    def depth(self) -> int:
        """How many batches to keep in flight: one per worker."""
        return self.workers

    def submit(self, items: list[Item]) -> Parsing:
        if self.workers > 1 and len(items) >= PARALLEL_MIN:
            try:
                pool = self._start()
                assert self._outbox is not None
                return Parsing(self, items, pool.submit(parse_to_file, items, self._outbox.name))
            # OSError: no forkserver to ask; EOFError: it died before it answered.
            except (BrokenProcessPool, OSError, EOFError) as exc:
                self.broken(exc)
        done: Future[list[Outcome] | str] = Future()
        done.set_result(parse_outcomes(items))
        return Parsing(self, items, done)

    def broken(self, exc: BaseException) -> None:
        """The pool cannot parse: parse inline from now on."""
        if self.workers > 1:
            log.warning("parsing worker died (%s); parsing inline from now on", exc)
            self.workers = 1
        self._broken = True

    def _start(self) -> ProcessPoolExecutor:
        global _pools
        if self._pool is None:
            # forkserver, not fork: the loader holds pymongo's threads, and
            # forking a threaded process can deadlock the child.
            context = multiprocessing.get_context("forkserver")
            # poolsignals first: the forkserver ignores the loader's signals
            # before it imports anything else (see the module).
            context.set_forkserver_preload([poolsignals.__name__, "loaders.parse"])
            with _pools_lock:
                if _pools == 0:  # before the pool: making it starts the tracker
                    _theirs[:] = _running_helpers()
                _start_forkserver()
                self._outbox = tempfile.TemporaryDirectory(prefix="newsgraph-parse-")
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_worker_start,
                    initargs=(os.getpid(),),
                )
                _pools += 1
        return self._pool

    def close(self) -> None:
        """Stop the workers, and the forkserver if no other pool needs it."""
        global _pools
        if self._pool is not None:
            if self._broken or getattr(self._pool, "_broken", False):
                _kill_workers(self._pool)
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
            if self._outbox is not None:  # with any file a killed worker left
                self._outbox.cleanup()
                self._outbox = None
            with _pools_lock:
                _pools -= 1
                if _pools == 0:
                    _stop_helpers()

    def __enter__(self) -> Parser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: How often a worker looks for its loader where it cannot be told of its end
#: (no pidfd: not Linux 5.3+), in seconds.
_PARENT_POLL_S = 1.0


def _worker_start(loader: int) -> None:
    """In each worker, as it starts: Ctrl-C and SIGTERM are the loader's to act
    on, and the worker ends with the loader process ``loader`` (see the module)."""
    poolsignals.ignore_stop_signals()  # inherited so from our forkserver; not from another's
    threading.Thread(target=_end_with, args=(loader,), name="loader-watch", daemon=True).start()


def _end_with(pid: int) -> None:
    """Wait for process ``pid`` to end, then end this process."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)  # gone already
    except (AttributeError, OSError):  # no pidfd here: look now and then
        while _alive(pid):
            time.sleep(_PARENT_POLL_S)
    else:
        select.select([handle], [], [])  # readable once the process has ended
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, someone else's: the pid was reused
        return False
    return True


class Parsing:
    """A batch being parsed: its outcomes, when asked for. If the pool broke
    meanwhile, the batch is parsed inline then."""

    def __init__(
        self, parser: Parser, items: list[Item], future: Future[list[Outcome] | str]
    ) -> None:
        self.parser = parser
        self.items = items
        #: The outcomes (parsed inline), or the name of the file a worker wrote them to.
        self.future = future

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> list[Outcome]:
        try:
            found = self.future.result(timeout)
        except BrokenProcessPool as exc:
            self.parser.broken(exc)
            return parse_outcomes(self.items)
        return read_outcomes(found) if isinstance(found, str) else found


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a broken pool's workers, which its own SIGTERM does not end (see
    the module); its clean-up waits for them."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
        return
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for pid in list(processes):
        # By pid: a pool whose forkserver died takes its workers for ended.
        with contextlib.suppress(OSError):  # gone already
            os.kill(pid, signal.SIGKILL)


def _start_forkserver() -> None:
    """Start multiprocessing's forkserver unless it runs, so that it ignores
    Ctrl-C and SIGTERM from its first instruction (``loaders.poolsignals``).

    This thread holds them back while it starts the forkserver, which inherits
    that; this process's handling of them is left as it is. (Changing it would
    lose them: while this process ignored SIGTERM, one sent to it could be
    taken by another thread, pymongo's or the progress bar's, and dropped.)
    """
    # The resource tracker first, or the forkserver's start starts it, and
    # that ends by letting these signals through in this thread (CPython 3.11
    # unblocks them, rather than putting the mask back). Were the tracker to
    # die between these two lines, that would undo the hold for this start.
    multiprocessing.resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, poolsignals.STOP_SIGNALS)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _running_helpers() -> list[object]:
    """multiprocessing's forkserver and resource tracker, those running now."""
    running = []
    for module, name, pid in _HELPERS:
        helper = getattr(module, name, None)
        if getattr(helper, pid, None) is not None:
            running.append(helper)
    return running


def _stop_helpers() -> None:
    """Stop the forkserver and resource tracker that our pools started.

    multiprocessing has no public way to; ``_stop`` is what its own tests use,
    so on a Python without it they are left running, as before.
    """
    # The closed pool's semaphores unregister from the tracker when collected:
    # collect them first, or the tracker warns of "leaked" semaphores as it stops.
    gc.collect()
    for helper in _running_helpers():
        stop = getattr(helper, "_stop", None)
        if helper in _theirs or stop is None:
            continue
        try:
            stop()
        except OSError as exc:  # already gone: nothing to stop
            log.debug("stopping %r: %s", helper, exc)
