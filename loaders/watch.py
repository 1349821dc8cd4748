"""Keep the store in step with folders of article files as they change.

``newsgraph load --watch DIR`` loads the folders (pruning articles whose files
are gone), then waits for changes (watchfiles: inotify on Linux) and applies
each settled batch: new and changed files are loaded, and articles whose files
disappeared are deleted. A file moved within the folders keeps its article
(its new path is recorded), because additions are applied before deletions.

Each batch is written under the loader lease (``loaders.lease``), taken for
that batch and let go after it, so a one-shot ``newsgraph load`` of other
folders can run between two batches. A watcher told to stop while it waits
for the lease stops waiting at once.

If the store goes away (or another loader holds the lease too long), the
batch's files stay pending and are retried every ``retry_s`` seconds until it
is back: nothing seen is lost.

watchfiles cannot name a path that is not valid UTF-8: a change to such a file
stops its watcher with an error, and a folder of such a name stops it from
starting at all. The watch then starts again (polling, if it could not start)
and loads the folders whole, with pruning, since the failed batch is lost; the
loader itself reads, stores and reports such names (``loaders.paths``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from threading import Event

import watchfiles
from watchfiles._rust_notify import WatchfilesRustInternalError

from core.config import Settings
from core.store import Store
from loaders.discover import is_article_name
from loaders.pipeline import Loader
from loaders.purge import serve_metrics
from loaders.report import LoadReport

#: A batch of changes, and whether changes were lost before it (rescan all).
Batch = tuple[set[tuple[watchfiles.Change, str]], bool]
log = logging.getLogger("newsgraph.loaders")


def watch_paths(
    store: Store,
    roots: Iterable[str | os.PathLike[str]],
    settings: Settings | None = None,
    on_report: Callable[[LoadReport], None] = lambda report: None,
    stop: Event | None = None,
    debounce_ms: int = 300,
    retry_s: float = 5.0,
) -> None:
    """Load ``roots``, then keep loading their changes until ``stop`` is set
    (or Ctrl-C). ``on_report`` gets the report of the first load and of each
    batch of changes. Its Prometheus metrics (``loaders.purge``) are served
    where ``NEWSGRAPH_LOADER_METRICS`` says, while it watches."""
    folders = [str(Path(r).absolute()) for r in roots]  # watchfiles reports absolute paths
    address = (settings or Settings()).loader_metrics
    stop_metrics = serve_metrics(address) if address else None
    try:
        _watch(store, folders, settings, on_report, stop, debounce_ms, retry_s)
    finally:
        if stop_metrics is not None:
            stop_metrics()


def _watch(
    store: Store,
    folders: list[str],
    settings: Settings | None,
    on_report: Callable[[LoadReport], None],
    stop: Event | None,
    debounce_ms: int,
    retry_s: float,
) -> None:
    with Loader(store, settings, stop=stop) as loader:
        first = loader.load(folders, prune=True)
        on_report(first)
        pending: set[str] = set(folders) if first.aborted else set()
        gone: set[str] = set()
        # The watch starts once the first load has ended: a file written
        # meanwhile (a first load of a large folder takes minutes) is in no
        # event. So the first batch (a change, or the empty one after retry_s)
        # loads everything once more, which skips what is unchanged, and is
        # reported only if it found something.
        catching_up = True
        for changes, lost in _batches(folders, stop, debounce_ms, retry_s):
            if lost or catching_up:  # load everything again; prune what is gone
                pending.update(folders)
                gone.update(folders)
            for change, path in changes:
                if change == watchfiles.Change.deleted:
                    gone.add(path)
                    pending.discard(path)
                else:
                    pending.add(path)
                    gone.discard(path)
            if not pending and not gone:
                continue
            present = sorted(p for p in pending if os.path.exists(p))
            report = loader.load(present, gone=_outermost(gone))
            if not catching_up or changes or _changed(report):
                on_report(report)
            catching_up = False
            if report.aborted is None:
                pending.clear()
                gone.clear()


def _outermost(paths: set[str]) -> list[str]:
    """``paths`` without those inside another of them (a file gone from a
    folder that is rescanned too would be counted twice)."""
    return sorted(
        path for path in paths if not any(str(parent) in paths for parent in Path(path).parents)
    )


def _changed(report: LoadReport) -> bool:
    """Whether a load wrote or deleted anything, or stopped early."""
    return bool(report.inserted or report.updated or report.deleted or report.aborted)


def _batches(
    folders: list[str], stop: Event | None, debounce_ms: int, retry_s: float
) -> Iterator[Batch]:
    """watchfiles' batches of changes until ``stop``, and an empty batch every
    ``retry_s`` seconds; a watcher that fails is started again."""
    failed = 0  # watchers in a row that failed before yielding a batch
    lost = False
    while True:
        polling = failed >= 2  # inotify cannot even start: poll instead
        if failed >= 3 and (stop or Event()).wait(retry_s):
            return  # polling fails too: try again every retry_s, not in a tight loop
        try:
            for changes in watchfiles.watch(
                *folders,
                watch_filter=_relevant,
                debounce=debounce_ms,
                stop_event=stop,
                rust_timeout=int(retry_s * 1000),
                yield_on_timeout=True,  # an empty batch: the moment to retry pending work
                force_polling=polling or None,
                poll_delay_ms=1000,
            ):
                failed = 0
                yield changes, lost
                lost = False
            return
        except WatchfilesRustInternalError as exc:
            failed += 1
            lost = True
            log.warning(
                "the watcher stopped (%s), most likely at a file or folder name that is not "
                "valid UTF-8 (renaming it avoids this); watching again%s and loading the "
                "folders again, in case changes were missed",
                exc,
                " by polling" if failed >= 2 else "",
            )


def _relevant(change: watchfiles.Change, path: str) -> bool:
    """Article files and folders; not editors' hidden temporary files."""
    name = os.path.basename(path)
    if name.startswith("."):
        return False
    if change == watchfiles.Change.deleted or is_article_name(name):
        return True
    return change == watchfiles.Change.added and os.path.isdir(path)  # a folder moved in
