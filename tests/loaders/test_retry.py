"""A dropped connection under idempotent store work is retried, then reported
saying what was being done; a server that cannot be reached is not retried."""

from __future__ import annotations

import pymongo.errors
import pytest

from core import store as store_module
from core.store import StoreUnavailable, retrying, unavailable_as_error
from loaders.stored import Stored


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(store_module, "BACKOFF_S", 0.0)


def flaky(failures: int, error: Exception):
    calls = []

    def operation() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return operation, calls


def test_a_dropped_connection_is_retried():
    operation, calls = flaky(2, pymongo.errors.AutoReconnect("connection closed"))
    assert retrying("here", "creating indexes", operation) == "done"
    assert len(calls) == 3


def test_a_wrapped_drop_is_retried_too():
    def operation() -> str:
        with unavailable_as_error("here"):
            return inner()

    inner, calls = flaky(1, pymongo.errors.NetworkTimeout("timed out"))
    assert retrying("here", "writing a batch", operation) == "done"
    assert len(calls) == 2


def test_after_the_last_try_the_message_says_what_failed():
    operation, calls = flaky(9, pymongo.errors.AutoReconnect("connection closed"))
    with pytest.raises(StoreUnavailable) as raised:
        retrying("mongodb://h (database 'x')", "creating indexes", operation)
    assert len(calls) == 3
    message = str(raised.value)
    assert "dropped the connection while creating indexes (tried 3 times)" in message
    assert "connection closed" in message and "Is the server running" not in message


def test_an_unreachable_server_is_not_retried():
    error = pymongo.errors.ServerSelectionTimeoutError("no servers")
    operation, calls = flaky(9, error)
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        retrying("here", "creating indexes", operation)
    assert len(calls) == 1


def test_a_scan_cut_short_starts_over(store, monkeypatch):
    store.articles.insert_many([{"_id": f"a{i}", "_source": {"hash": f"h{i}"}} for i in range(3)])
    real_find, calls = store.articles.find, []

    class Dropping:
        def find(self, *args, **kwargs):
            calls.append(1)
            docs = real_find(*args, **kwargs)
            if len(calls) == 1:  # the first scan: two documents, then the drop
                yield from (next(docs), next(docs))
                raise pymongo.errors.AutoReconnect("connection closed")
            yield from docs

    monkeypatch.setattr(type(store), "articles", property(lambda self: Dropping()))
    stored = Stored.scan(store)
    assert len(stored) == 3 and len(calls) == 2
    stored.close()


def shutting_down() -> pymongo.errors.OperationFailure:
    """FerretDB v1's answer to an operation it cancels 3 s after its SIGTERM."""
    message = "[query_iterator.go:79 sqlite.(*queryIterator).Next] context canceled after delay"
    reply = {"ok": 0.0, "errmsg": message, "code": 1, "codeName": "InternalError"}
    return pymongo.errors.OperationFailure(message, 1, reply)


def test_a_server_shutting_down_under_an_operation_is_unavailable_and_retried():
    def operation() -> str:
        with unavailable_as_error("here"):
            return inner()

    inner, calls = flaky(1, shutting_down())
    assert retrying("here", "writing a batch", operation) == "done"
    assert len(calls) == 2
    with pytest.raises(StoreUnavailable) as raised, unavailable_as_error("mongodb://h"):
        raise shutting_down()
    assert "cannot reach the store at mongodb://h" in str(raised.value)
    assert "full error" not in str(raised.value)


@pytest.mark.parametrize(
    "error",
    [
        pymongo.errors.OperationFailure("unexpected nil", 1, {"errmsg": "unexpected nil"}),
        pymongo.errors.OperationFailure("context canceled", 2, {"errmsg": "context canceled"}),
    ],
    ids=["other-internal-error", "another-code"],
)
def test_an_operation_failing_on_its_own_is_neither_an_outage_nor_retried(error):
    def operation() -> str:
        with unavailable_as_error("here"):
            return inner()

    inner, calls = flaky(9, error)
    with pytest.raises(pymongo.errors.OperationFailure):
        retrying("here", "writing a batch", operation)
    assert len(calls) == 1
