"""No ghost outlives the file that named it (issue 22), on both engines.

A file whose content comes to name another article (its ``webUrl`` was
edited, or another file was moved over it) has its old article deleted in the
same batch, with its counts and its manifest row, on one-shot loads, with
``--prune`` and under ``--watch``; files that swap URLs keep both articles
throughout; a URL edited to one another file holds is a duplicate and loses
nothing.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from core.document import article_id
from core.indexes import LOADER, MANIFEST
from core.news import MARKER_FIELD, MARKER_ID
from loaders import load_paths, manifest, pipeline
from tests.articles import article_text, web_url
from tests.loaders.test_concurrent import assert_counts_exact
from tests.loaders.test_watch import watching

URL = "https://www.tramtimes.example/news/{}"


def aid(slug: str) -> str:
    return article_id(URL.format(slug))


def text(slug: str, topic: str | None = None, title: str | None = None) -> str:
    """An article naming ``slug``, with a topic of its own (so its count shows)."""
    return article_text(
        webUrl=web_url(slug),
        title=f'"{title or slug.title()}"',
        topics=f"\n  - {topic or 'Topic ' + slug}",
    )


def put(path: Path, slug: str, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text(slug, **kwargs))
    return path


def articles(store: Any) -> dict[str, tuple[str, str]]:
    """_id -> (title, file name) of every stored article."""
    return {
        d["_id"]: (d["title"], Path(d["_source"]["path"]).name)
        for d in store.articles.find({}, {"title": 1, "_source.path": 1})
    }


def news(store: Any) -> tuple[int, dict[str, int]]:
    """The news marker, and each article's newsSeq."""
    marker = (store.db[LOADER].find_one({"_id": MARKER_ID}) or {}).get(MARKER_FIELD, 0)
    return marker, {d["_id"]: d["_source"]["newsSeq"] for d in store.articles.find()}


def manifest_ids(store: Any) -> set[str]:
    """The ids the manifest says are stored, replayed as a loader reads them."""
    live: dict[str, bool] = {}
    for row in manifest.Log(store).read() or []:
        live[row[0]] = len(row) > 1
    return {_id for _id, alive in live.items() if alive}


def assert_consistent(store: Any, count: int) -> None:
    """The articles, their counts and the manifest all agree."""
    assert_counts_exact(store, count)
    assert manifest_ids(store) == set(articles(store))
    assert store.topics.find_one({"_id": "Topic gone"}) is None


# -- an edited webUrl ---------------------------------------------------------


@pytest.mark.parametrize("prune", [False, True])
def test_an_edited_url_leaves_no_ghost(store, settings, tmp_path, prune):
    a = put(tmp_path / "a.md", "old", topic="Topic gone")
    put(tmp_path / "b.md", "other")
    load_paths(store, [tmp_path], settings)
    before, _ = news(store)

    put(a, "new")
    report = load_paths(store, [tmp_path], settings, prune=prune)
    assert (report.inserted, report.deleted, report.unchanged, report.ok) == (1, 1, 1, True)
    assert articles(store) == {aid("new"): ("New", "a.md"), aid("other"): ("Other", "b.md")}
    assert_consistent(store, 2)
    marker, seqs = news(store)
    assert seqs[aid("new")] == marker > before  # the new URL arrives: news, as a new id is

    again = load_paths(store, [tmp_path], settings, prune=prune)
    assert (again.unchanged, again.deleted, again.inserted) == (2, 0, 0)


def test_the_ghost_is_gone_before_the_news_of_its_replacement(
    store, settings, tmp_path, monkeypatch
):
    a = put(tmp_path / "a.md", "old")
    load_paths(store, [tmp_path], settings)
    put(a, "new")
    at_announce: list[set[str]] = []
    real = pipeline.announce

    def spy(target: Any, seq: int) -> None:
        at_announce.append(set(articles(store)))
        real(target, seq)

    monkeypatch.setattr(pipeline, "announce", spy)
    load_paths(store, [tmp_path], settings)
    assert at_announce == [{aid("new")}]  # a subscriber told of news finds no ghost


def test_an_edit_under_watch_leaves_no_ghost(store, settings, tmp_path):
    a = put(tmp_path / "a.md", "old", topic="Topic gone")
    put(tmp_path / "b.md", "other")
    with watching(store, settings, tmp_path) as watcher:
        put(a, "new")
        # The report comes once the batch is written and the counts rebuilt.
        watcher.until(lambda: any(r.deleted for r in watcher.reports), "the ghost deleted")
        assert articles(store) == {aid("new"): ("New", "a.md"), aid("other"): ("Other", "b.md")}
        assert sum(r.deleted for r in watcher.reports) == 1
    assert_consistent(store, 2)


def test_a_ghost_left_by_an_older_loader_is_removed_by_the_next_load(store, settings, tmp_path):
    """Stores loaded before this fix hold ghosts: the next load finds them,
    even when the file that left them is unchanged."""
    a = put(tmp_path / "a.md", "old")
    load_paths(store, [tmp_path], settings)
    ghost = store.articles.find_one({"_id": aid("old")})
    put(a, "new")
    load_paths(store, [tmp_path], settings)
    store.articles.insert_one(ghost)  # what an older loader left behind
    store.db[MANIFEST].drop()  # which its manifest did not know of: read the articles
    report = load_paths(store, [tmp_path], settings)
    assert (report.unchanged, report.deleted) == (1, 1)
    assert set(articles(store)) == {aid("new")}
    assert_consistent(store, 1)


@pytest.mark.parametrize("first", ["absolute", "relative"])
def test_an_edit_loaded_under_another_spelling_of_the_path_leaves_no_ghost(
    store, settings, tmp_path, monkeypatch, first
):
    """A watcher records absolute paths, a load what it was given: the
    ghost is found under either."""
    monkeypatch.chdir(tmp_path)
    spelling = {"absolute": tmp_path / "news", "relative": Path("news")}
    a = put(tmp_path / "news" / "a.md", "old", topic="Topic gone")
    load_paths(store, [spelling[first]], settings)
    put(a, "new")
    other = spelling["relative" if first == "absolute" else "absolute"]
    report = load_paths(store, [other], settings)
    assert (report.inserted, report.deleted, report.ok) == (1, 1, True)
    assert set(articles(store)) == {aid("new")}
    assert_consistent(store, 1)


# -- a moved file --------------------------------------------------------------


def test_a_moved_file_keeps_its_article(store, settings, tmp_path):
    a = put(tmp_path / "a.md", "one")
    load_paths(store, [tmp_path], settings)
    _, seqs = news(store)
    a.rename(tmp_path / "sub.md")
    report = load_paths(store, [tmp_path], settings, prune=True)
    assert (report.unchanged, report.deleted, report.ok) == (1, 0, True)
    assert articles(store) == {aid("one"): ("One", "sub.md")}
    assert news(store)[1] == seqs


@pytest.mark.parametrize("prune", [False, True])
def test_a_file_moved_over_another_replaces_its_article(store, settings, tmp_path, prune):
    a = put(tmp_path / "a.md", "one")
    b = put(tmp_path / "b.md", "two", topic="Topic gone")
    load_paths(store, [tmp_path], settings)
    a.rename(b)  # b.md now holds a.md's article; b.md's own article has no file
    report = load_paths(store, [tmp_path], settings, prune=prune)
    assert (report.unchanged, report.deleted, report.ok) == (1, 1, True)
    assert articles(store) == {aid("one"): ("One", "b.md")}
    assert_consistent(store, 1)


def test_a_file_moved_over_another_under_watch(store, settings, tmp_path):
    a = put(tmp_path / "a.md", "one")
    b = put(tmp_path / "b.md", "two", topic="Topic gone")
    with watching(store, settings, tmp_path) as watcher:
        a.rename(b)
        watcher.until(lambda: aid("two") not in articles(store), "the replaced article deleted")
        watcher.until(lambda: articles(store) == {aid("one"): ("One", "b.md")}, "the move")
        watcher.until(lambda: store.topics.find_one({"_id": "Topic gone"}) is None, "its count")
    assert_consistent(store, 1)


# -- two files swapping URLs ---------------------------------------------------


def swap(a: Path, b: Path) -> None:
    """a.md and b.md exchange what they say (a new version of each)."""
    put(a, "two", title="Two, as a.md")
    put(b, "one", title="One, as b.md")


SWAPPED = {aid("one"): ("One, as b.md", "b.md"), aid("two"): ("Two, as a.md", "a.md")}


@pytest.mark.parametrize("batch_size", [1, 500])
def test_two_files_swapping_urls_keep_both_articles_throughout(
    store, settings, tmp_path, batch_size
):
    a, b = put(tmp_path / "a.md", "one"), put(tmp_path / "b.md", "two")
    small = dataclasses.replace(settings, batch_size=batch_size)
    load_paths(store, [tmp_path], small)
    marker, seqs = news(store)
    swap(a, b)
    report = load_paths(store, [tmp_path], small, prune=True)
    # Neither deleted, even for a moment (a replace is atomic), nor news again.
    assert (report.updated, report.deleted, report.ok) == (2, 0, True), report.failures
    assert articles(store) == SWAPPED
    assert news(store) == (marker, seqs)
    assert_consistent(store, 2)


def test_two_files_exchanged_by_renames_keep_their_articles(store, settings, tmp_path):
    a, b = put(tmp_path / "a.md", "one"), put(tmp_path / "b.md", "two")
    load_paths(store, [tmp_path], settings)
    a.rename(tmp_path / "swap.tmp")
    b.rename(a)
    (tmp_path / "swap.tmp").rename(b)
    report = load_paths(store, [tmp_path], settings)
    assert (report.unchanged, report.deleted, report.ok) == (2, 0, True), report.failures
    assert articles(store) == {aid("one"): ("One", "b.md"), aid("two"): ("Two", "a.md")}


@pytest.mark.parametrize("together", [True, False])
def test_two_files_swapping_urls_under_watch(store, settings, tmp_path, together):
    """Edited together (one batch of changes), or one after the other: in
    between, a.md names what b.md holds, a duplicate that loses nothing."""
    a, b = put(tmp_path / "a.md", "one"), put(tmp_path / "b.md", "two")
    with watching(store, settings, tmp_path) as watcher:
        if together:
            swap(a, b)
        else:
            put(a, "two", title="Two, as a.md")
            watcher.until(
                lambda: any("same webUrl" in f.reason for r in watcher.reports for f in r.failures),
                "the duplicate",
            )
            assert len(articles(store)) == 2
            put(b, "one", title="One, as b.md")
        watcher.until(lambda: articles(store) == SWAPPED, "the swap")
        assert not any(r.deleted for r in watcher.reports)
    assert_consistent(store, 2)


def test_a_rotation_across_batches_keeps_every_article_and_its_news(store, settings, tmp_path):
    """a.md takes b.md's URL, b.md c.md's, c.md a.md's, one file a batch."""
    paths = [put(tmp_path / f"{n}.md", slug) for n, slug in zip("abc", "xyz", strict=True)]
    small = dataclasses.replace(settings, batch_size=1)
    load_paths(store, [tmp_path], small)
    marker, seqs = news(store)
    for path, slug in zip(paths, "yzx", strict=True):
        put(path, slug, title=f"{slug} at {path.name}")
    report = load_paths(store, [tmp_path], small)
    assert report.ok and report.inserted + report.updated == 3, report
    expected = {aid(s): (f"{s} at {n}.md", f"{n}.md") for n, s in zip("abc", "yzx", strict=True)}
    assert articles(store) == expected
    assert news(store) == (marker, seqs)  # none is news again
    assert_consistent(store, 3)


# -- a URL edited to one another file holds ------------------------------------


@pytest.mark.parametrize("edited", ["a.md", "c.md"])  # before the holder, or after it
def test_a_url_edited_to_one_another_file_holds_is_a_duplicate(store, settings, tmp_path, edited):
    holder = put(tmp_path / "b.md", "held", title="The holder")
    path = put(tmp_path / edited, "mine", title="Mine")
    load_paths(store, [tmp_path], settings)
    before = articles(store)
    put(path, "held", title="Edited to the held URL")
    for prune in (False, True):  # the same verdict every time, nothing lost
        report = load_paths(store, [tmp_path], settings, prune=prune)
        (failure,) = report.failures
        assert failure.path == str(path)
        assert f"same webUrl as {holder}" in failure.reason
        assert "not written" in failure.reason
        assert articles(store) == before and report.deleted == 0
    assert_consistent(store, 2)

    put(path, "fixed", title="Fixed")  # the conflict fixed: the old article goes now
    report = load_paths(store, [tmp_path], settings)
    assert (report.inserted, report.deleted, report.ok) == (1, 1, True)
    assert articles(store) == {
        aid("held"): ("The holder", "b.md"),
        aid("fixed"): ("Fixed", edited),
    }
    assert_consistent(store, 2)


def test_a_url_held_in_another_folder_is_a_duplicate(store, settings, tmp_path):
    """The holder is outside the paths loaded: it is read to settle the
    conflict (it still names the URL), and keeps its article."""
    holder = put(tmp_path / "one" / "z.md", "held", title="The holder")
    mine = put(tmp_path / "two" / "a.md", "mine")
    load_paths(store, [tmp_path / "one", tmp_path / "two"], settings)
    put(mine, "held", title="Edited")
    report = load_paths(store, [tmp_path / "two"], settings)
    (failure,) = report.failures
    assert failure.path == str(mine) and f"same webUrl as {holder}" in failure.reason
    assert articles(store) == {aid("held"): ("The holder", "z.md"), aid("mine"): ("Mine", "a.md")}

    holder.unlink()  # the holder is gone: the URL is free to take
    report = load_paths(store, [tmp_path / "two"], settings)
    assert report.ok and report.deleted == 1
    assert articles(store) == {aid("held"): ("Edited", "a.md")}


def test_a_copy_of_a_stored_file_is_the_duplicate_wherever_it_sorts(store, settings, tmp_path):
    put(tmp_path / "b.md", "one")
    load_paths(store, [tmp_path], settings)
    shutil.copy(tmp_path / "b.md", tmp_path / "a.md")
    report = load_paths(store, [tmp_path], settings)
    (failure,) = report.failures
    assert failure.path == str(tmp_path / "a.md") and "same webUrl as" in failure.reason
    assert articles(store) == {aid("one"): ("One", "b.md")}


def test_a_file_reached_by_two_names_is_one_file(store, settings, tmp_path):
    """Stored under a link's path, then found under its own: moved, not a duplicate."""
    real = put(tmp_path / "real" / "a.md", "one")
    (tmp_path / "link.md").symlink_to(real)
    load_paths(store, [tmp_path / "link.md"], settings)
    assert articles(store) == {aid("one"): ("One", "link.md")}
    report = load_paths(store, [real], settings)
    assert report.ok and report.unchanged == 1
    assert articles(store) == {aid("one"): ("One", "a.md")}
