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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from loaders.discover import discover
from loaders.errors import Rejected
from loaders.facets import rebuild_facets
from loaders.parse import parse_article
from loaders.read import content_hash, read_file
from loaders.report import Failure, LoadReport
from loaders.stored import Stored
from loaders.write import write_batch
from newsgraph.config import Settings
from newsgraph.store import Store, StoreUnavailable, unavailable_as_error

OnFile = Callable[[Path], None]
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
    return Loader(store, settings).load(paths, on_file=on_file, prune=prune)


class Loader:
    """Loads files into one store. What the store holds is read on the first
    load and kept up to date by the loader's own writes, so a loader that lives
    on (``newsgraph load --watch``) reads it once, not once per change."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings()
        self._stored: Stored | None = None

    def load(
        self,
        paths: Iterable[str | os.PathLike[str]],
        on_file: OnFile | None = None,
        prune: bool = False,
        gone: Iterable[str] = (),
    ) -> LoadReport:
        """Load ``paths``; with ``prune``, delete articles whose source file
        under ``paths`` is gone; and delete those whose file was under ``gone``
        (paths a watcher saw disappear) if it is still missing."""
        paths = [str(p) for p in paths]
        report = LoadReport(store=self.store.where)
        started = time.perf_counter()
        claims: dict[str, str] = {}  # _id -> the path that supplied it in this run
        seen: set[str] = set()
        try:
            if self._stored is None:
                self.store.ensure_indexes()
                self._stored = Stored.scan(self.store)
            stored = self._stored
            files = discover(paths)
            while batch := list(itertools.islice(files, self.settings.batch_size)):
                seen.update(str(p) for p in batch)
                self._load_batch(batch, stored, claims, report, on_file)
            roots = [*paths, *gone] if prune else list(gone)
            if roots:
                self._delete(stored.orphans(roots, seen), report)
            if report.inserted or report.updated or report.deleted:
                rebuild_facets(self.store)
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

    def _load_batch(
        self,
        batch: list[Path],
        stored: Stored,
        claims: dict[str, str],
        report: LoadReport,
        on_file: OnFile | None,
    ) -> None:
        read: list[tuple[Path, bytes, str]] = []
        for path in batch:
            try:
                data = read_file(path, self.settings.max_file_bytes)
            except Rejected as exc:
                report.failures.append(Failure(str(path), exc.reason, exc.line))
                _tick(on_file, path)
                continue
            read.append((path, data, content_hash(data)))

        docs: list[dict[str, Any]] = []
        moved: list[tuple[str, str]] = []
        for path, data, digest in read:
            name = str(path)
            if (known := stored.find(digest)) is not None:
                _id, stored_path = known
                if _claim(claims, _id, name, report):
                    report.unchanged += 1
                    if stored_path != name:
                        moved.append((_id, name))
            else:
                try:
                    doc = parse_article(data, path=name, content_hash=digest)
                except Rejected as exc:
                    report.failures.append(Failure(name, exc.reason, exc.line))
                except Exception as exc:  # a bug must cost one file, not the run
                    log.exception("unexpected error parsing %s", name)
                    report.failures.append(
                        Failure(
                            name,
                            f"unexpected error ({type(exc).__name__}: {exc}); please report it",
                        )
                    )
                else:
                    if _claim(claims, doc["_id"], name, report):
                        docs.append(doc)
            _tick(on_file, path)

        result = write_batch(self.store, docs, stored.ids, moved)
        report.inserted += len(result.inserted)
        report.updated += len(result.updated)
        for index, reason in result.failed.items():
            report.failures.append(Failure(docs[index]["_source"]["path"], reason))
        for index in result.inserted + result.updated:
            source = docs[index]["_source"]
            stored.record(docs[index]["_id"], source["hash"], source["path"])
        for _id, path in moved:
            stored.record(_id, stored.by_id[_id][0], path)


def _claim(claims: dict[str, str], _id: str, path: str, report: LoadReport) -> bool:
    """The first file in load order to name an article wins it for this run;
    a later file with the same webUrl is reported, not written."""
    winner = claims.setdefault(_id, path)
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
