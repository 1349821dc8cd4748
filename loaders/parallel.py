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

The workers ignore SIGINT: Ctrl-C at a terminal reaches the whole process
group, and the loader stops them itself, in order (``loaders.pipeline``); a
worker interrupted on its own would die mid-batch and break the pool. And each
watches the loader's process, and ends when it is gone: the workers are the
forkserver's children, not the loader's, so a loader that dies without closing
its pool (SIGKILL, the OOM killer) would leave them waiting for work forever,
and the forkserver and resource tracker with them (each lives while a worker
holds its pipe).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import select
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

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


class Parser:
    """Parses batches in up to ``workers`` processes (0: one per CPU)."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """How many batches to keep in flight: one per worker."""
        return self.workers

    def submit(self, items: list[Item]) -> Future[list[Outcome]]:
        if self.workers > 1 and len(items) >= PARALLEL_MIN:
            try:
                return self._start().submit(parse_outcomes, items)
            except BrokenProcessPool:
                log.warning("parsing worker died; parsing inline from now on")
                self.workers = 1
        done: Future[list[Outcome]] = Future()
        done.set_result(parse_outcomes(items))
        return done

    def _start(self) -> ProcessPoolExecutor:
        global _pools
        if self._pool is None:
            # forkserver, not fork: the loader holds pymongo's threads, and
            # forking a threaded process can deadlock the child.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["loaders.parse"])
            with _pools_lock:
                if _pools == 0:  # before the pool: making it starts the tracker
                    _theirs[:] = _running_helpers()
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
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
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
    """In each worker, as it starts: Ctrl-C is the loader's to act on, and the
    worker ends with the loader process ``loader`` (see the module)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
