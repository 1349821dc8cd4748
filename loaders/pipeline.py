"""The load: discover -> read -> (skip unchanged) -> parse -> write, in batches.

Files stream through in batches of ``batch_size``: memory holds one batch of
files, not the corpus. What the store holds is read once at the start (content
hashes and ids, see ``loaders.stored``): a file whose content hash is stored is
unchanged and is neither parsed nor written again, which makes a re-load cheap.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from core.config import Settings
from core.store import Store, StoreUnavailable, unavailable_as_error
from loaders.discover import discover
from loaders.errors import Rejected
from loaders.facets import facets_of, rebuild_facets
from loaders.parallel import Crashed, Item, Outcome, Parsed, Parser, Rejection
from loaders.paths import path_text
from loaders.read import Skipped, content_hash, read_file
from loaders.report import Failure, LoadReport
from loaders.stored import Stored
from loaders.write import write_batch

OnFile = Callable[[Path], None]
#: A file read in a batch: its path, the path's text (``loaders.paths``), and
#: its read failure or skip, the stored (_id, path) with its content, or None
#: when it is to be parsed.
Entry = tuple[Path, str, "Failure | Skipped | tuple[str, str] | None"]
log = logging.getLogger("newsgraph.loaders")


def load_paths(
    store: Store,
    paths: Iterable[str | os.PathLike[str]],
    settings: Settings | None = None,
    on_file: OnFile | None = None,
    prune: bool = False,
) -> LoadReport:
    """Load every article file under ``paths`` into ``store``.

    Returns the report; a file that fails is listed there and the rest go on.
    If the store goes away mid-run the report says so in ``aborted``: what was
    written stays written, and running the load again finishes the job. With
    ``prune``, stored articles whose source file under ``paths`` is gone are
    deleted.
    """
    with Loader(store, settings) as loader:
        return loader.load(paths, on_file=on_file, prune=prune)


class Loader:
    """Loads files into one store. What the store holds is read on the first
    load and kept up to date by the loader's own writes, so a loader that lives
    on (``newsgraph load --watch``) reads it once, not once per change."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings()
        self._stored: Stored | None = None

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the snapshot (its temporary file goes with it)."""
        if self._stored is not None:
            self._stored.close()
            self._stored = None

    def load(
        self,
        paths: Iterable[str | os.PathLike[str]],
        on_file: OnFile | None = None,
        prune: bool = False,
        gone: Iterable[str] = (),
    ) -> LoadReport:
        """Load ``paths``; with ``prune``, delete articles whose source file
        under ``paths`` is gone; and delete those whose file was under ``gone``
        (paths a watcher saw disappear) if it is still missing.

        Paths are file system paths (``str`` with surrogateescape, or ``Path``);
        the store and the report get each one's text (``loaders.paths``)."""
        roots = [os.fspath(p) for p in paths]
        report = LoadReport(store=self.store.where)
        started = time.perf_counter()
        try:
            if self._stored is None:
                self.store.ensure_indexes()
                self._stored = Stored.scan(self.store)
            stored = self._stored
            stored.start_run()
            files = discover(roots)
            # Batches in flight: parsing in worker processes while the oldest
            # is written; each is settled in load order.
            in_flight: deque[tuple[list[Entry], Future[list[Outcome]]]] = deque()
            with Parser(self.settings.load_workers) as parser:
                while batch := list(itertools.islice(files, self.settings.batch_size)):
                    named = [(path, path_text(path)) for path in batch]
                    stored.saw(name for _, name in named)
                    in_flight.append(self._start_batch(named, stored, parser))
                    if len(in_flight) >= parser.depth:
                        self._finish_batch(*in_flight.popleft(), stored, report, on_file)
                while in_flight:
                    self._finish_batch(*in_flight.popleft(), stored, report, on_file)
            pruned = [path_text(p) for p in ([*roots, *gone] if prune else gone)]
            if pruned:
                self._delete(stored.orphans(pruned), report)
            if report.inserted or report.updated or report.deleted:
                rebuild_facets(self.store, stored.facets())
        except StoreUnavailable as exc:
            report.aborted = (
                f"{exc} Files written so far stay written; run the load again to finish."
            )
        report.seconds = time.perf_counter() - started
        return report

    def _delete(self, orphans: Iterable[tuple[str, str]], report: LoadReport) -> None:
        assert self._stored is not None
        orphans = iter(orphans)
        while chunk := list(itertools.islice(orphans, self.settings.batch_size)):
            ids = [_id for _id, _ in chunk]
            with unavailable_as_error(self.store.where):
                self.store.articles.delete_many({"_id": {"$in": ids}})
            for _id, path in chunk:
                log.info("deleted %s: its file %s is gone", _id, path)
                self._stored.forget(_id)
            report.deleted += len(chunk)

    def _start_batch(
        self, batch: list[tuple[Path, str]], stored: Stored, parser: Parser
    ) -> tuple[list[Entry], Future[list[Outcome]]]:
        """Read and hash a batch's files and start parsing those whose content
        is not stored. What each file turns out to be is settled in order by
        :meth:`_finish_batch`."""
        entries: list[Entry] = []
        to_parse: list[Item] = []
        for path, name in batch:
            try:
                data = read_file(path, self.settings.max_file_bytes)
            except Rejected as exc:
                entries.append((path, name, Failure(name, exc.reason, exc.line)))
                continue
            except Skipped as skip:
                entries.append((path, name, skip))
                continue
            digest = content_hash(data)
            known = stored.find(digest)
            if known is None:
                to_parse.append((data, name, digest))
            entries.append((path, name, known))
        return entries, parser.submit(to_parse)

    def _finish_batch(
        self,
        entries: list[Entry],
        parsed: Future[list[Outcome]],
        stored: Stored,
        report: LoadReport,
        on_file: OnFile | None,
    ) -> None:
        outcomes = iter(parsed.result())
        docs: list[dict[str, Any]] = []
        moved: list[tuple[str, str]] = []
        for path, name, state in entries:
            if isinstance(state, Failure):
                report.failures.append(state)
            elif isinstance(state, Skipped):
                report.skips.append(Failure(name, state.reason))
            elif state is not None:  # content already stored
                _id, stored_path = state
                if _claim(stored, _id, name, report):
                    report.unchanged += 1
                    if stored_path != name:
                        moved.append((_id, name))
            else:
                match next(outcomes):
                    case Parsed(doc):
                        if _claim(stored, doc["_id"], name, report):
                            docs.append(doc)
                    case Rejection(reason, line):
                        report.failures.append(Failure(name, reason, line))
                    case Crashed(reason):
                        log.error("unexpected error parsing %s: %s", name, reason)
                        report.failures.append(Failure(name, reason))
            _tick(on_file, path)

        result = write_batch(self.store, docs, stored, moved)
        report.inserted += len(result.inserted)
        report.updated += len(result.updated)
        for index, reason in result.failed.items():
            report.failures.append(Failure(docs[index]["_source"]["path"], reason))
        written = (docs[i] for i in result.inserted + result.updated)
        stored.record_many(
            (doc["_id"], doc["_source"]["hash"], doc["_source"]["path"], facets_of(doc))
            for doc in written
        )
        for _id, new_path in moved:
            known = stored.get(_id)
            assert known is not None  # found by its content hash in this batch
            content_hash, _, facets = known
            stored.record(_id, content_hash, new_path, facets)


def _claim(stored: Stored, _id: str, path: str, report: LoadReport) -> bool:
    """The first file in load order to name an article wins it for this run;
    a later file with the same webUrl is reported, not written."""
    winner = stored.claim(_id, path)
    if winner == path:
        return True
    report.failures.append(
        Failure(
            path,
            f"same webUrl as {winner}, which was loaded in this run "
            "(the first file in load order wins); this file was not written",
        )
    )
    return False


def _tick(on_file: OnFile | None, path: Path) -> None:
    if on_file is not None:
        on_file(path)
