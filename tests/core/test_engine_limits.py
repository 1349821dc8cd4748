"""The embedded engine's strict setting (MongoDB's notablescan) and its time
limit (MongoDB's maxTimeMS)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import ExecutionTimeout, OperationFailure

from core.engine import Client
from core.engine.database import BUSY_TIMEOUT_MS, Busy, LockTimeout
from core.indexes import ARTICLES, INDEXES
from core.store import is_outage


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Any]:
    client = Client(str(tmp_path), strict=True)
    articles = client["t"][ARTICLES]
    articles.create_indexes(INDEXES[ARTICLES])
    articles.insert_many(
        [
            {"_id": f"{i:05d}", "webUrl": f"u{i}", "published": True, "quality": i % 7}
            for i in range(2000)
        ]
    )
    yield articles
    client.close()


def test_a_query_no_index_serves_is_refused_naming_its_shape(strict: Any) -> None:
    with pytest.raises(
        OperationFailure, match=r"filter \{'quality': '<int>'\}, sort \[\]"
    ) as refused:
        list(strict.find({"quality": 3}))
    assert refused.value.code == 291
    with pytest.raises(OperationFailure, match="no declared index serves"):
        strict.count_documents({"quality": {"$gte": 3}})
    with pytest.raises(OperationFailure, match=r"sort \[\('quality', -1\)\]"):
        list(strict.find({}).sort("quality", -1).limit(3))


def test_an_indexed_query_and_a_read_of_everything_are_answered(strict: Any) -> None:
    # published_quality serves both the filter and the order.
    top = strict.find({"published": True, "quality": {"$gte": 6}}).sort(
        [("quality", -1), ("_id", -1)]
    )
    assert [d["_id"] for d in top.limit(2)] == ["01994", "01987"]
    assert len(list(strict.find({}))) == 2000  # a deliberate full read, as a loader's snapshot


def test_the_same_query_is_answered_without_the_strict_setting(tmp_path: Path) -> None:
    articles = Client(str(tmp_path))["t"][ARTICLES]
    articles.insert_many([{"_id": "a", "quality": 3}, {"_id": "b", "quality": 4}])
    assert [d["_id"] for d in articles.find({"quality": 3})] == ["a"]


def test_a_query_past_its_time_limit_stops(strict: Any) -> None:
    # published alone bounds the walk: the pattern is tested on every document.
    slow = {"published": True, "webUrl": {"$regex": "^u1"}}
    with pytest.raises(ExecutionTimeout):
        strict.count_documents(slow, maxTimeMS=1)
    with pytest.raises(ExecutionTimeout):
        list(
            strict.find(slow)
            .sort([("publishedDateTime", -1), ("_id", -1)])
            .max_time_ms(1)
            .limit(5000)
        )
    assert strict.count_documents(slow) == 1111


def test_a_write_bounded_in_time_gives_up_on_another_writers_lock(tmp_path: Path) -> None:
    """A request's write (``writes_wait_until``) waits for another
    connection's write lock only until its bound, then fails as a store that
    does not answer, having written nothing; the connection's own (long)
    wait is back for every other write, a loader's."""
    database = Client(str(tmp_path))["t"]
    collection = database["c"]
    collection.insert_one({"_id": "before"})
    other = sqlite3.connect(database.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with database.writes_wait_until(time.monotonic() + 0.2), pytest.raises(LockTimeout) as got:
            collection.insert_one({"_id": "bounded"})
        assert is_outage(got.value)
        conn = database.connection()
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
        assert not conn.in_transaction
    finally:
        other.execute("ROLLBACK")
        other.close()
    with database.writes_wait_until(time.monotonic()):  # no time left, no lock held: it writes
        collection.insert_one({"_id": "after"})
    assert [d["_id"] for d in collection.find({})] == ["before", "after"]


def test_a_new_file_opened_by_many_at_once_opens_for_each(tmp_path):
    """Processes and threads that open one new file at the same moment (a
    server and a loader started together) all open it: the one that finds the
    journal being switched to WAL waits for it, rather than failing with
    "database is locked"."""
    import threading

    def open_(client: Client, name: str, start: threading.Barrier, errors: list[Any]) -> None:
        start.wait()
        try:
            client[name]["c"].insert_one({"x": 1})
        except BaseException as exc:  # reported below
            errors.append(exc)

    for round_ in range(5):
        name = f"t{round_}"
        clients = [Client(str(tmp_path)) for _ in range(8)]
        start = threading.Barrier(len(clients))
        errors: list[Any] = []
        threads = [threading.Thread(target=open_, args=(c, name, start, errors)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert Client(str(tmp_path))[name]["c"].count_documents({}) == len(clients)


def test_a_quick_read_that_would_wait_is_busy_and_the_thread_reads_as_before(
    tmp_path: Path,
) -> None:
    """What a quick read's connection says when it would wait (SQLite's BUSY
    or LOCKED) comes out as ``Busy``, which the gateway answers with a hop to
    the worker thread, not a failed request; any other error as itself. The
    thread's own reads work afterwards, and the context gives the thread's CPU
    time when the quick reads began."""
    db = Client(str(tmp_path))["t"]
    db[ARTICLES].insert_one({"_id": "a"})
    db.open_quick(threading.get_ident())
    for code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_ERROR):
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = code  # as sqlite3 sets it on what it raises
        expected = sqlite3.OperationalError if code == sqlite3.SQLITE_ERROR else Busy
        with pytest.raises(expected), db.quickly(50) as started:
            assert db[ARTICLES].find_one({"_id": "a"}) == {"_id": "a"}
            assert 0 < started <= time.thread_time()
            raise error
        assert db[ARTICLES].find_one({"_id": "a"}) == {"_id": "a"}
