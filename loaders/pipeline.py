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
from newsgraph.store import Store, StoreUnavailable

OnFile = Callable[[Path], None]
log = logging.getLogger("newsgraph.loaders")


def load_paths(
    store: Store,
    paths: Iterable[str | os.PathLike[str]],
    settings: Settings | None = None,
    on_file: OnFile | None = None,
) -> LoadReport:
    """Load every article file under ``paths`` into ``store``.

    Returns the report; a file that fails is listed there and the rest go on.
    If the store goes away mid-run the report says so in ``aborted``: what was
    written stays written, and running the load again finishes the job.
    """
    settings = settings or Settings()
    report = LoadReport(store=store.where)
    started = time.perf_counter()
    claims: dict[str, str] = {}  # _id -> the path that supplied it in this run
    try:
        store.ensure_indexes()
        stored = Stored.scan(store)
        files = discover(paths)
        while batch := list(itertools.islice(files, settings.batch_size)):
            _load_batch(store, batch, settings, stored, claims, report, on_file)
        if report.inserted or report.updated:
            rebuild_facets(store)
    except StoreUnavailable as exc:
        report.aborted = f"{exc} Files written so far stay written; run the load again to finish."
    report.seconds = time.perf_counter() - started
    return report


def _load_batch(
    store: Store,
    batch: list[Path],
    settings: Settings,
    stored: Stored,
    claims: dict[str, str],
    report: LoadReport,
    on_file: OnFile | None,
) -> None:
    read: list[tuple[Path, bytes, str]] = []
    for path in batch:
        try:
            data = read_file(path, settings.max_file_bytes)
        except Rejected as exc:
            report.failures.append(Failure(str(path), exc.reason, exc.line))
            _tick(on_file, path)
            continue
        read.append((path, data, content_hash(data)))

    docs: list[dict[str, Any]] = []
    moved: list[tuple[str, str]] = []
    for path, data, digest in read:
        name = str(path)
        if digest in stored.by_hash:
            _id, stored_path = stored.by_hash[digest]
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
                        name, f"unexpected error ({type(exc).__name__}: {exc}); please report it"
                    )
                )
            else:
                if _claim(claims, doc["_id"], name, report):
                    docs.append(doc)
        _tick(on_file, path)

    result = write_batch(store, docs, stored.ids, moved)
    report.inserted += len(result.inserted)
    report.updated += len(result.updated)
    for index, reason in result.failed.items():
        report.failures.append(Failure(docs[index]["_source"]["path"], reason))
    for index in result.inserted + result.updated:
        source = docs[index]["_source"]
        stored.record(docs[index]["_id"], source["hash"], source["path"])


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
