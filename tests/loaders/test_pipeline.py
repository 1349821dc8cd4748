"""The whole load, on both engines: counts, idempotence, increments, failures."""

import shutil

import pytest

from core.document import article_id
from core.store import connect
from loaders import load_paths
from tests.articles import EXAMPLES, article_text, web_url, write_article


def stored(store):
    return {d["_id"]: d for d in store.articles.find()}


def test_loads_every_sample_article(store, settings):
    report = load_paths(store, [EXAMPLES], settings)
    assert report.ok, report.failures
    assert (report.inserted, report.updated, report.unchanged) == (12, 0, 0)
    assert store.articles.count_documents({}) == 12
    assert store.articles.count_documents({"published": False}) == 1


def test_reload_is_idempotent_and_writes_nothing(store, settings):
    load_paths(store, [EXAMPLES], settings)
    before = stored(store)
    report = load_paths(store, [EXAMPLES], settings)
    assert (report.inserted, report.updated, report.unchanged, report.failed) == (0, 0, 12, 0)
    after = stored(store)
    assert after == before  # loadedAt included: nothing was rewritten


def test_changed_file_updates_its_document_in_place(store, settings, tmp_path):
    path = write_article(tmp_path, "a.md", title='"First title"')
    load_paths(store, [tmp_path], settings)
    (_id,) = stored(store)
    path.write_text(article_text(title='"Second title"'))
    report = load_paths(store, [tmp_path], settings)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 0)
    docs = stored(store)
    assert list(docs) == [_id]
    assert docs[_id]["title"] == "Second title"
    assert docs[_id]["_titleWords"] == ["second", "title"]


def test_moved_file_is_unchanged_but_its_path_follows(store, settings, tmp_path):
    path = write_article(tmp_path, "old.md")
    load_paths(store, [tmp_path], settings)
    path.rename(tmp_path / "new.md")
    report = load_paths(store, [tmp_path], settings)
    assert report.unchanged == 1 and report.ok
    (doc,) = stored(store).values()
    assert doc["_source"]["path"] == str(tmp_path / "new.md")


def test_bad_files_are_reported_and_never_written(store, settings, tmp_path):
    write_article(tmp_path, "1_good.md", webUrl=web_url("good"))
    write_article(tmp_path, "2_bad_quality.md", webUrl=web_url("bad"), quality="high")
    (tmp_path / "3_no_front_matter.md").write_text("just text\n")
    (tmp_path / "4_latin1.md").write_bytes(article_text(title='"café"').encode("latin-1"))
    write_article(tmp_path, "5_good.md", webUrl=web_url("good-too"))
    report = load_paths(store, [tmp_path], settings)
    assert report.inserted == 2
    failed = {f.path.rsplit("/", 1)[-1]: f for f in report.failures}
    assert set(failed) == {"2_bad_quality.md", "3_no_front_matter.md", "4_latin1.md"}
    assert "quality must be a whole number" in failed["2_bad_quality.md"].reason
    assert failed["2_bad_quality.md"].line == 9
    assert "no front matter" in failed["3_no_front_matter.md"].reason
    assert "UTF-8" in failed["4_latin1.md"].reason
    assert not [d for d in store.articles.find({}, {"webUrl": 1}) if "bad" in d["webUrl"]]
    assert not report.ok


def test_fixing_a_bad_file_loads_it_next_time(store, settings, tmp_path):
    path = write_article(tmp_path, "a.md", quality="high")
    assert load_paths(store, [tmp_path], settings).failed == 1
    path.write_text(article_text(quality="70"))
    report = load_paths(store, [tmp_path], settings)
    assert report.inserted == 1 and report.ok


def test_two_files_with_one_webUrl_first_wins_and_the_report_says_so(store, settings, tmp_path):
    write_article(tmp_path, "a.md", title='"From A"')
    write_article(tmp_path, "b.md", title='"From B"')
    for _ in range(2):  # the same verdict on a re-load
        report = load_paths(store, [tmp_path], settings)
        (failure,) = report.failures
        assert failure.path.endswith("b.md")
        assert "a.md" in failure.reason and "first file in load order wins" in failure.reason
        (doc,) = stored(store).values()
        assert doc["title"] == "From A"


def test_same_article_under_http_and_https_is_one_document(store, settings, tmp_path):
    write_article(tmp_path, "a.md", webUrl='"http://WWW.TramTimes.example/news/x#top"')
    write_article(tmp_path, "b.md", webUrl='"https://www.tramtimes.example/news/y"')
    load_paths(store, [tmp_path], settings)
    assert article_id("https://www.tramtimes.example/news/x") in stored(store)


def test_batches_smaller_than_the_corpus_give_the_same_result(store, settings, tmp_path):
    for i in range(7):
        write_article(tmp_path, f"{i}.md", webUrl=web_url(f"n{i}"))
    write_article(tmp_path, "dup.md", webUrl=web_url("n0"))
    small = type(settings)(**{**settings.__dict__, "batch_size": 2})
    report = load_paths(store, [tmp_path], small)
    assert (report.inserted, report.failed) == (7, 1)
    assert load_paths(store, [tmp_path], small).unchanged == 7


def test_facets_count_published_and_all_articles(store, settings):
    load_paths(store, [EXAMPLES], settings)
    space = store.topics.find_one({"_id": "Space"})
    assert (space["count"], space["countAll"]) == (2, 3)  # one Space story is unpublished
    orbital = store.providers.find_one({"_id": "orbitalweekly.example"})
    assert orbital == {
        "_id": "orbitalweekly.example",
        "name": "Orbital Weekly",
        "nameAll": "Orbital Weekly",
        "count": 1,
        "countAll": 2,
    }
    total = sum(p["countAll"] for p in store.providers.find())
    assert total == 12


def test_facets_follow_a_changed_article(store, settings, tmp_path):
    path = write_article(tmp_path, "a.md", topics="[Old]")
    load_paths(store, [tmp_path], settings)
    path.write_text(article_text(topics="[New]"))
    load_paths(store, [tmp_path], settings)
    assert [t["_id"] for t in store.topics.find()] == ["New"]


def test_indexes_are_ensured_idempotently(store, settings):
    load_paths(store, [EXAMPLES], settings)
    load_paths(store, [EXAMPLES], settings)
    names = set(store.articles.index_information())
    assert {"webUrl_unique", "source_hash", "published_date", "words_date"} <= names


@pytest.mark.wire
def test_store_that_goes_away_aborts_with_a_clear_reason(wire_server, tmp_path):
    """A store down from the start: the load stops quickly and says why."""
    from core.config import Settings

    write_article(tmp_path, "a.md")
    dead = Settings(mongodb_uri="mongodb://127.0.0.1:9/", store_timeout_ms=500)
    report = load_paths(connect(dead), [tmp_path], dead)
    assert report.aborted and "cannot reach the store" in report.aborted
    assert "run the load again" in report.aborted


def test_examples_are_not_copies_of_the_seeds():
    seeds = EXAMPLES.parent.parent.parent / "shared" / "seeds"
    if not seeds.is_dir():
        pytest.skip("../shared/seeds is not beside this checkout")
    seed_titles = {
        line
        for p in seeds.iterdir()
        for line in p.read_text().splitlines()
        if line.startswith("title:")
    }
    for path in EXAMPLES.iterdir():
        assert not seed_titles & set(path.read_text().splitlines()), path


def test_loads_copied_tree_with_symlink_loop(store, settings, tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "corpus")
    (tmp_path / "corpus" / "loop").symlink_to(tmp_path / "corpus")
    report = load_paths(store, [tmp_path / "corpus"], settings)
    assert report.inserted == 12 and report.ok


def test_an_unexpected_error_costs_one_file_not_the_run(store, settings, tmp_path, monkeypatch):
    import loaders.parallel

    real = loaders.parallel.parse_article

    def flaky(data, *, path, content_hash):
        if path.endswith("boom.md"):
            raise KeyError("bug")
        return real(data, path=path, content_hash=content_hash)

    monkeypatch.setattr(loaders.parallel, "parse_article", flaky)
    write_article(tmp_path, "a.md", webUrl=web_url("a"))
    write_article(tmp_path, "boom.md", webUrl=web_url("boom"))
    write_article(tmp_path, "c.md", webUrl=web_url("c"))
    report = load_paths(store, [tmp_path], settings)
    assert report.inserted == 2
    (failure,) = report.failures
    assert failure.path.endswith("boom.md") and "unexpected error (KeyError" in failure.reason


def test_a_50_mb_file_is_rejected_unread_and_quickly(store, settings, tmp_path):
    huge = tmp_path / "huge.md"
    with open(huge, "wb") as f:
        f.write(article_text().encode())
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB without writing 50 MB
    write_article(tmp_path, "ok.md", webUrl=web_url("ok"))
    report = load_paths(store, [tmp_path], settings)
    assert report.inserted == 1
    (failure,) = report.failures
    assert failure.path.endswith("huge.md")
    assert "52,428,800 bytes, over the 2,097,152-byte limit" in failure.reason
    assert report.seconds < 5
