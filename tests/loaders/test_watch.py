"""``load --watch``: the store follows a folder as files arrive, change, move and go.

Runs on both engines; the watcher runs in a thread and is stopped by each test.
"""

import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from core.document import article_id
from loaders.parallel import PARALLEL_MIN
from loaders.report import LoadReport
from loaders.watch import watch_paths
from tests.articles import article_text, web_url, write_article
from tests.loaders.processes import pool_processes
from tests.waiting import eventually

WAIT_S = 15  # generous: inotify plus debounce is well under a second


class Watcher:
    def __init__(self, store, settings, root) -> None:
        self.reports: list[LoadReport] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=watch_paths,
            args=(store, [root], settings),
            kwargs={
                "on_report": self.reports.append,
                "stop": self.stop,
                "debounce_ms": 100,
                "retry_s": 1.0,  # how soon a watcher that failed catches up
            },
            daemon=True,
        )

    def until(self, condition: Callable[[], bool], what: str) -> None:
        eventually(condition, WAIT_S, what, alive=self.thread.is_alive)


@contextlib.contextmanager
def watching(store, settings, root) -> Iterator[Watcher]:
    w = Watcher(store, settings, root)
    w.thread.start()
    w.until(lambda: len(w.reports) >= 1, "the first load")
    time.sleep(0.3)  # let the watch start before the test changes files
    yield w
    w.stop.set()
    w.thread.join(timeout=10)
    assert not w.thread.is_alive()


@pytest.fixture
def watcher(store, settings, tmp_path) -> Iterator[Watcher]:
    write_article(tmp_path, "first.md", webUrl=web_url("first"))
    with watching(store, settings, tmp_path) as w:
        yield w


def doc(store, slug):
    return store.articles.find_one(
        {"_id": article_id(f"https://www.tramtimes.example/news/{slug}")}
    )


def test_the_store_follows_the_folder(watcher, store, tmp_path):
    assert watcher.reports[0].inserted == 1
    new = write_article(tmp_path, "second.md", webUrl=web_url("second"), title='"Arrived"')
    watcher.until(lambda: doc(store, "second") is not None, "a new file")

    new.write_text(article_text(webUrl=web_url("second"), title='"Changed"'))
    watcher.until(lambda: doc(store, "second")["title"] == "Changed", "a changed file")

    (tmp_path / "sub").mkdir()
    moved = new.rename(tmp_path / "sub" / "second.md")
    watcher.until(lambda: doc(store, "second")["_source"]["path"] == str(moved), "a moved file")
    assert doc(store, "second")["title"] == "Changed"  # moved, not deleted and re-added

    moved.unlink()
    watcher.until(lambda: doc(store, "second") is None, "a deleted file")
    assert doc(store, "first") is not None
    # The batch recounts the facets after deleting the article: wait for it too.
    watcher.until(
        lambda: store.db.providers.find_one({"_id": "tramtimes.example"})["count"] == 1,
        "the provider's count after the deletion",
    )


def test_a_bad_file_is_reported_and_written_nowhere(watcher, store, tmp_path):
    (tmp_path / "bad.md").write_text("---\ntitle: [unclosed\n---\n")
    watcher.until(lambda: any(r.failures for r in watcher.reports), "the failure report")
    failure = next(f for r in watcher.reports for f in r.failures)
    assert failure.path.endswith("bad.md") and failure.reason
    assert store.articles.count_documents({}) == 1


def test_a_folder_moved_in_and_removed(watcher, store, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-incoming"
    for slug in ("x", "y"):
        write_article(outside, f"{slug}.md", webUrl=web_url(slug))
    shutil.move(outside, tmp_path / "batch")
    watcher.until(lambda: store.articles.count_documents({}) == 3, "a folder moved in")
    shutil.rmtree(tmp_path / "batch")
    watcher.until(lambda: store.articles.count_documents({}) == 1, "a folder removed")


def test_editor_temporary_files_are_ignored(watcher, store, tmp_path):
    (tmp_path / ".first.md.swp").write_text("junk")
    (tmp_path / "notes.json").write_text("{}")
    write_article(tmp_path, "third.md", webUrl=web_url("third"))
    watcher.until(lambda: doc(store, "third") is not None, "the article")
    assert not any(r.failures for r in watcher.reports)


def test_a_fifo_is_reported_and_the_watch_goes_on(watcher, store, tmp_path):
    os.mkfifo(tmp_path / "pipe.md")
    watcher.until(lambda: any(r.skips for r in watcher.reports), "the FIFO reported")
    skip = next(s for r in watcher.reports for s in r.skips)
    assert skip.path == f"{tmp_path}/pipe.md" and "named pipe (FIFO)" in skip.reason
    write_article(tmp_path, "after.md", webUrl=web_url("after"))
    watcher.until(lambda: doc(store, "after") is not None, "a file after the FIFO")


def test_a_name_that_is_not_utf8_is_loaded_and_deleted(watcher, store, tmp_path):
    # watchfiles cannot name it, so its watcher stops; the watch starts again and rescans
    odd = write_article(tmp_path, "caf\udce9.md", webUrl=web_url("odd"))  # b"caf\xe9.md"
    watcher.until(lambda: doc(store, "odd") is not None, "the file loaded")
    assert doc(store, "odd")["_source"]["path"] == f"{tmp_path}/caf\\xe9.md"
    odd.unlink()
    watcher.until(lambda: doc(store, "odd") is None, "its article deleted")
    write_article(tmp_path, "later.md", webUrl=web_url("later"))
    watcher.until(lambda: doc(store, "later") is not None, "a later file")
    assert not any(r.failures or r.skips for r in watcher.reports)


def test_a_folder_whose_name_is_not_utf8_is_watched_by_polling(store, settings, tmp_path):
    # watchfiles cannot even start on it with inotify
    write_article(tmp_path / "caf\udce9", "inside.md", webUrl=web_url("inside"))
    with watching(store, settings, tmp_path) as w:
        assert w.reports[0].inserted == 1
        assert doc(store, "inside")["_source"]["path"] == f"{tmp_path}/caf\\xe9/inside.md"
        write_article(tmp_path, "new.md", webUrl=web_url("new"))
        w.until(lambda: doc(store, "new") is not None, "a new file")
        (tmp_path / "caf\udce9" / "inside.md").unlink()
        w.until(lambda: doc(store, "inside") is None, "a file gone from that folder")


def test_a_batch_parsed_in_a_pool_leaves_no_pool_process(watcher, tmp_path):
    before = pool_processes()  # another test's helpers (a resource tracker) are not the load's
    outside = tmp_path.parent / f"{tmp_path.name}-many"
    for i in range(PARALLEL_MIN):
        write_article(outside, f"m{i:03}.md", webUrl=web_url(f"m{i}"))
    shutil.move(outside, tmp_path / "many")
    watcher.until(lambda: any(r.inserted == PARALLEL_MIN for r in watcher.reports), "the batch")
    assert pool_processes() == before  # the report comes once the load, and its pool, ended


def test_a_watcher_waiting_for_the_lease_stops_when_told(store, settings, tmp_path):
    """Issue 12: its wait for the lease (up to NEWSGRAPH_LOADER_WAIT_S) ends
    with the stop event, not when the wait runs out."""
    from loaders.lease import Lease

    write_article(tmp_path, "a.md", webUrl=web_url("a"))
    Lease(store, settings, owner="busy:1/x").acquire()
    patient = dataclasses.replace(settings, loader_wait_s=600)
    watcher = Watcher(store, patient, tmp_path)
    watcher.thread.start()
    time.sleep(0.5)  # inside the wait (started or not, the stop must end it)
    watcher.stop.set()
    watcher.thread.join(timeout=30)
    assert not watcher.thread.is_alive(), "the watcher kept waiting for the lease"
    (report,) = watcher.reports
    assert report.aborted and "stopped while waiting for the loader lease held by busy:1/x" in (
        report.aborted
    )
    assert store.articles.count_documents({}) == 0


def test_a_file_written_as_the_first_load_ends_is_loaded(store, settings, tmp_path):
    """The watch starts when the first load has ended: a file written in
    between (here, by the first load's report) is in no event, and is loaded
    by the catch-up that follows, which reports only what it found."""
    write_article(tmp_path, "first.md", webUrl=web_url("first"))
    reports: list[LoadReport] = []

    def on_report(report: LoadReport) -> None:
        if not reports:
            write_article(tmp_path, "between.md", webUrl=web_url("between"))
        reports.append(report)

    stop = threading.Event()
    thread = threading.Thread(
        target=watch_paths,
        args=(store, [tmp_path], settings),
        kwargs={"on_report": on_report, "stop": stop, "debounce_ms": 100, "retry_s": 1.0},
        daemon=True,
    )
    thread.start()
    try:
        eventually(lambda: doc(store, "between") is not None, WAIT_S, "the file", thread.is_alive)
        eventually(lambda: len(reports) == 2, WAIT_S, "its report", thread.is_alive)
        assert (reports[1].inserted, reports[1].deleted) == (1, 0)
        time.sleep(2.5)  # two more empty batches (retry_s): nothing more to report
        assert len(reports) == 2
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
