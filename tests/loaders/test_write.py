"""The batch writer: inserts what is new, replaces what is stored, survives races."""

from loaders.parse import parse_article
from loaders.write import write_batch
from tests.articles import article_text, web_url


def doc(slug, title="Title"):
    data = article_text(webUrl=web_url(slug), title=f'"{title}"').encode()
    return parse_article(data, path=f"{slug}.md", content_hash=slug + title)


def test_new_documents_are_inserted_and_stored_ones_replaced(store):
    first = write_batch(store, [doc("a"), doc("b")], stored=set())
    assert (first.inserted, first.updated, first.failed) == ([0, 1], [], {})
    b = doc("b", "New title")
    second = write_batch(store, [b, doc("c")], stored={b["_id"]})
    assert (second.inserted, second.updated) == ([1], [0])
    assert store.articles.find_one({"_id": b["_id"]})["title"] == "New title"
    assert store.articles.count_documents({}) == 3


def test_an_insert_that_races_another_writer_becomes_a_replace(store):
    write_batch(store, [doc("a", "Theirs")], stored=set())
    # This run read the store before the other writer inserted the document.
    result = write_batch(store, [doc("a", "Ours")], stored=set())
    assert (result.inserted, result.updated, result.failed) == ([], [0], {})
    assert store.articles.find_one()["title"] == "Ours"


def test_moved_paths_are_recorded(store):
    d = doc("a")
    write_batch(store, [d], stored=set())
    write_batch(store, [], stored={d["_id"]}, moved=[(d["_id"], "new/place.md")])
    assert store.articles.find_one()["_source"]["path"] == "new/place.md"
