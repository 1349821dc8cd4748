"""Parsing in worker processes, so a load uses every core.

Parsing (YAML, normalizing, mojibake repair) is the loader's CPU-bound stage;
writing waits on the store. The pipeline hands each batch's files to a pool of
processes and writes the previous batch meanwhile. Small batches (a few files
changed under ``--watch``, the sample articles) are parsed inline: starting
workers would cost more than it saves.

Workers return one :data:`Outcome` per file, small values that pickle, not
exceptions: a bug's exception may not pickle at all, and the pipeline settles
each file by the type of its outcome.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
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
        if self._pool is None:
            # forkserver, not fork: the loader holds pymongo's threads, and
            # forking a threaded process can deadlock the child.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["loaders.parse"])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Parser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
