"""``load --prune``: articles whose source files are gone are deleted, nothing else."""

from core.document import article_id
from loaders import load_paths
from tests.articles import web_url, write_article


def ids(store) -> set[str]:
    return {d["_id"] for d in store.articles.find({}, {"_id": 1})}


def three_articles(directory):
    return [
        write_article(directory, f"{slug}.md", webUrl=web_url(slug), topics=f"\n  - {topic}")
        for slug, topic in (("a", "Alpha"), ("b", "Beta"), ("c", "Alpha"))
    ]


def test_prune_deletes_articles_whose_files_are_gone_and_recounts_facets(store, settings, tmp_path):
    _, b, _ = three_articles(tmp_path)
    load_paths(store, [tmp_path], settings)
    b.unlink()
    kept = load_paths(store, [tmp_path], settings)  # without --prune nothing is deleted
    assert kept.deleted == 0 and len(ids(store)) == 3
    assert store.db.topics.find_one({"_id": "Beta"})["count"] == 1

    report = load_paths(store, [tmp_path], settings, prune=True)
    assert report.ok and report.deleted == 1 and report.unchanged == 2
    gone = article_id("https://www.tramtimes.example/news/b")
    assert gone not in ids(store) and len(ids(store)) == 2
    assert store.db.topics.find_one({"_id": "Beta"}) is None
    assert store.db.topics.find_one({"_id": "Alpha"})["count"] == 2
    again = load_paths(store, [tmp_path], settings, prune=True)
    assert again.deleted == 0 and again.unchanged == 2


def test_a_file_that_fails_to_load_keeps_its_stored_article(store, settings, tmp_path):
    a, _, _ = three_articles(tmp_path)
    load_paths(store, [tmp_path], settings)
    before = store.articles.find_one({"_source.path": str(a)})
    a.write_text("---\ntitle: [unclosed\n---\n")
    report = load_paths(store, [tmp_path], settings, prune=True)
    assert report.failed == 1 and report.deleted == 0
    assert store.articles.find_one({"_id": before["_id"]}) == before


def test_prune_only_touches_articles_under_the_paths_loaded(store, settings, tmp_path):
    three_articles(tmp_path / "one")
    other = write_article(tmp_path / "two", "d.md", webUrl=web_url("d"))
    load_paths(store, [tmp_path / "one", tmp_path / "two"], settings)
    other.unlink()
    report = load_paths(store, [tmp_path / "one"], settings, prune=True)
    assert report.deleted == 0 and len(ids(store)) == 4
    report = load_paths(store, [tmp_path / "two"], settings, prune=True)
    assert report.deleted == 1 and len(ids(store)) == 3


def test_a_moved_file_is_not_pruned(store, settings, tmp_path):
    a, _, _ = three_articles(tmp_path)
    load_paths(store, [tmp_path], settings)
    (tmp_path / "sub").mkdir()
    moved = a.rename(tmp_path / "sub" / "a.md")
    report = load_paths(store, [tmp_path], settings, prune=True)
    assert report.deleted == 0 and report.unchanged == 3
    assert store.articles.find_one({"_source.path": str(moved)}) is not None


def test_a_file_whose_name_is_not_utf8_is_stored_as_its_text_and_pruned(store, settings, tmp_path):
    odd = write_article(tmp_path, "caf\udce9.md", webUrl=web_url("latin1-name"))  # b"caf\xe9.md"
    first = load_paths(store, [tmp_path], settings)
    assert first.inserted == 1 and first.ok
    (doc,) = store.articles.find()
    assert doc["_source"]["path"] == f"{tmp_path}/caf\\xe9.md"
    again = load_paths(store, [tmp_path], settings, prune=True)
    assert (again.unchanged, again.deleted, again.ok) == (1, 0, True)  # not moved, not gone
    odd.unlink()
    report = load_paths(store, [tmp_path], settings, prune=True)
    assert report.deleted == 1 and ids(store) == set()
