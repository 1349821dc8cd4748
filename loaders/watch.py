"""Keep the store in step with folders of article files as they change.

``newsgraph load --watch DIR`` loads the folders (pruning articles whose files
are gone), then waits for changes (watchfiles: inotify on Linux) and applies
each settled batch: new and changed files are loaded, and articles whose files
disappeared are deleted. A file moved within the folders keeps its article
(its new path is recorded), because additions are applied before deletions.

If the store goes away, the batch's files stay pending and are retried every
``retry_s`` seconds until it is back: nothing seen is lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from threading import Event

import watchfiles

from core.config import Settings
from core.store import Store
from loaders.discover import is_article_name
from loaders.pipeline import Loader
from loaders.report import LoadReport


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
    batch of changes."""
    folders = [str(Path(r).absolute()) for r in roots]  # watchfiles reports absolute paths
    with Loader(store, settings) as loader:
        first = loader.load(folders, prune=True)
        on_report(first)
        pending: set[str] = set(folders) if first.aborted else set()
        gone: set[str] = set()
        changes_seen = watchfiles.watch(
            *folders,
            watch_filter=_relevant,
            debounce=debounce_ms,
            stop_event=stop,
            rust_timeout=int(retry_s * 1000),
            yield_on_timeout=True,  # an empty batch: the moment to retry pending work
        )
        for changes in changes_seen:
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
            report = loader.load(present, gone=sorted(gone))
            on_report(report)
            if report.aborted is None:
                pending.clear()
                gone.clear()


def _relevant(change: watchfiles.Change, path: str) -> bool:
    """Article files and folders; not editors' hidden temporary files."""
    name = os.path.basename(path)
    if name.startswith("."):
        return False
    if change == watchfiles.Change.deleted or is_article_name(name):
        return True
    return change == watchfiles.Change.added and os.path.isdir(path)  # a folder moved in
