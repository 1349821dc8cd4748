"""The embedded engine's unique indexes (core/engine) refuse what MongoDB's
refuse, and free a key when its document is deleted or changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo import InsertOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from core.engine import Client


@pytest.fixture
def articles(tmp_path: Any) -> Iterator[Any]:
    client = Client(str(tmp_path))
    collection = client["t"]["articles"]
    collection.create_index([("webUrl", pymongo.ASCENDING)], name="webUrl_unique", unique=True)
    yield collection
    client.close()


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


def test_a_missing_key_is_null_and_taken_once(articles: Any) -> None:
    """As in MongoDB, a unique index holds one document without the field."""
    articles.insert_one({"_id": "c"})
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "d", "webUrl": None})


def test_an_array_holds_each_of_its_values(articles: Any) -> None:
    articles.insert_one({"_id": "a", "webUrl": ["u", "v"]})
    with pytest.raises(DuplicateKeyError):
        articles.insert_one({"_id": "b", "webUrl": "v"})
