"""The embedded engine's unique-index check (core/embedded.py) refuses exactly
what mongomock's own scan refuses, without scanning the collection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mongomock
import pymongo
import pytest
from pymongo import InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from core import embedded


@pytest.fixture
def articles() -> Iterator[Any]:
    embedded.client()  # applies the patches
    collection = mongomock.MongoClient()["t"]["articles"]
    collection.create_index([("webUrl", pymongo.ASCENDING)], name="webUrl_unique", unique=True)
    yield collection
    collection.drop()


def test_a_second_document_with_the_same_key_is_refused(articles: Any) -> None:
    articles.insert_one({"_id": "a", "webUrl": "u"})
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "b", "webUrl": "u"})
    assert [d["_id"] for d in articles.find()] == ["a"]


def test_an_unordered_bulk_write_reports_the_duplicate_and_writes_the_rest(articles: Any) -> None:
    ops = [InsertOne({"_id": i, "webUrl": u}) for i, u in (("a", "u"), ("b", "u"), ("c", "v"))]
    with pytest.raises(BulkWriteError) as caught:
        articles.bulk_write(ops, ordered=False)
    assert [(e["index"], e["code"]) for e in caught.value.details["writeErrors"]] == [(1, 11000)]
    assert sorted(d["_id"] for d in articles.find()) == ["a", "c"]


def test_a_deleted_or_changed_document_frees_its_key(articles: Any) -> None:
    articles.insert_many([{"_id": "a", "webUrl": "u"}, {"_id": "b", "webUrl": "v"}])
    articles.delete_one({"_id": "a"})
    articles.insert_one({"_id": "c", "webUrl": "u"})
    articles.replace_one({"_id": "b"}, {"webUrl": "w"})
    articles.insert_one({"_id": "d", "webUrl": "v"})
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "e", "webUrl": "w"})  # b's new key


def test_an_update_to_a_taken_key_is_refused_and_rolled_back(articles: Any) -> None:
    articles.insert_many([{"_id": "a", "webUrl": "u"}, {"_id": "b", "webUrl": "v"}])
    with pytest.raises(DuplicateKeyError):
        articles.update_one({"_id": "b"}, {"$set": {"webUrl": "u"}})
    assert articles.find_one({"_id": "b"})["webUrl"] == "v"
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "c", "webUrl": "v"})  # b still holds it


def test_documents_stored_before_the_index_are_checked(articles: Any) -> None:
    articles.drop_index("webUrl_unique")
    articles.insert_one({"_id": "a", "webUrl": "u"})
    articles.create_index("webUrl", name="webUrl_unique", unique=True)
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "b", "webUrl": "u"})


def test_other_values_fall_back_to_mongomocks_scan(articles: Any) -> None:
    """A query for a string matches an array holding it: only the scan knows."""
    articles.insert_one({"_id": "a", "webUrl": ["u", "v"]})
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "b", "webUrl": "v"})
    articles.insert_one({"_id": "c"})  # missing is null, as in mongomock
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "d", "webUrl": None})


def test_writes_do_not_scan_the_collection(articles: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost of a write does not grow with the collection: no query runs."""
    articles.insert_many([{"_id": str(i), "webUrl": f"u{i}"} for i in range(100)])
    scans: list[object] = []
    original = mongomock.collection.Collection._iter_documents

    def counted(self: Any, filter: Any) -> Any:
        scans.append(filter)
        return original(self, filter)

    monkeypatch.setattr(mongomock.collection.Collection, "_iter_documents", counted)
    articles.insert_many([{"_id": str(i), "webUrl": f"u{i}"} for i in range(100, 200)])
    articles.bulk_write([InsertOne({"_id": "x", "webUrl": "ux"})], ordered=False)
    assert scans == []
    articles.bulk_write([ReplaceOne({"_id": "x"}, {"webUrl": "uy"})], ordered=False)
    assert len(scans) == 1  # finding the replaced document; the check adds none
