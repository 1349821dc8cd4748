"""The loader's half of ``core.news``, on both engines: what a write makes news
is stamped with that write's number, everything else keeps its number, and
the marker says up to which number everything is written; its count of
changes moves after every write that changes what readers see, and only then."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.document import article_id
from core.indexes import LOADER, MANIFEST
from core.news import BATCH_BITS, CHANGED_FIELD, MARKER_FIELD, MARKER_ID, sequence
from loaders import facets, load_paths, pipeline
from loaders.news import announce
from loaders.pipeline import Loader
from tests.articles import EXAMPLES, article_text, web_url, write_article


def marker(store: Any) -> int:
    found = store.db[LOADER].find_one({"_id": MARKER_ID}) or {}
    return int(found.get(MARKER_FIELD, 0))


def news(store: Any, slug: str) -> int:
    _id = article_id(f"https://www.tramtimes.example/news/{slug}")
    return int(store.articles.find_one({"_id": _id})["_source"]["newsSeq"])


def test_a_first_load_makes_every_article_news_up_to_the_marker(store, settings):
    assert marker(store) == 0
    load_paths(store, [EXAMPLES], settings)
    seqs = [d["_source"]["newsSeq"] for d in store.articles.find()]
    assert len(seqs) == 12 and min(seqs) > 0
    assert marker(store) == max(seqs)


def test_an_unchanged_reload_moves_nothing(store, settings):
    load_paths(store, [EXAMPLES], settings)
    before = (marker(store), {d["_id"]: d["_source"]["newsSeq"] for d in store.articles.find()})
    load_paths(store, [EXAMPLES], settings)
    after = (marker(store), {d["_id"]: d["_source"]["newsSeq"] for d in store.articles.find()})
    assert after == before


def test_an_edit_is_not_news_but_an_arrival_and_a_publication_are(store, settings, tmp_path):
    path = write_article(tmp_path, "a.md", webUrl=web_url("a"), published="false")
    load_paths(store, [tmp_path], settings)
    arrived = news(store, "a")
    assert marker(store) == arrived  # an arrival is news, published or not

    path.write_text(article_text(webUrl=web_url("a"), published="false", title='"Edited"'))
    assert load_paths(store, [tmp_path], settings).updated == 1
    assert (news(store, "a"), marker(store)) == (arrived, arrived)

    path.write_text(article_text(webUrl=web_url("a"), published="true", title='"Edited"'))
    load_paths(store, [tmp_path], settings)
    published = news(store, "a")
    assert published > arrived and marker(store) == published

    path.write_text(article_text(webUrl=web_url("a"), published="true", title='"Again"'))
    load_paths(store, [tmp_path], settings)
    assert (news(store, "a"), marker(store)) == (published, published)

    write_article(tmp_path, "b.md", webUrl=web_url("b"))
    load_paths(store, [tmp_path], settings)
    assert news(store, "b") > published and marker(store) == news(store, "b")
    assert news(store, "a") == published


@pytest.mark.parametrize("manifest", ["kept", "dropped"])
def test_a_number_is_carried_by_a_later_loader(store, settings, tmp_path, manifest):
    """Read back from the manifest, or from the articles when it is rebuilt."""
    path = write_article(tmp_path, "a.md", webUrl=web_url("a"))
    load_paths(store, [tmp_path], settings)
    arrived = news(store, "a")
    if manifest == "dropped":
        store.db[MANIFEST].drop()
    path.write_text(article_text(webUrl=web_url("a"), title='"Edited"'))
    assert load_paths(store, [tmp_path], settings).updated == 1
    assert news(store, "a") == arrived


def test_numbers_grow_across_batches_and_holdings(store, settings, tmp_path):
    """A watcher holds the lease per batch of changes; a load, per run."""
    small = dataclasses.replace(settings, batch_size=1)
    for slug in ("a", "b", "c"):
        write_article(tmp_path, f"{slug}.md", webUrl=web_url(slug))
    with Loader(store, small) as loader:
        loader.load([tmp_path])
        first = [news(store, s) for s in ("a", "b", "c")]
        assert first == sorted(first) and len(set(first)) == 3  # one number per batch
        write_article(tmp_path, "d.md", webUrl=web_url("d"))
        loader.load([tmp_path])
    assert news(store, "d") > max(first) and marker(store) == news(store, "d")


def test_a_number_is_the_generation_above_the_batch():
    assert sequence(3, 1) == (3 << BATCH_BITS) + 1 > sequence(2, 2**BATCH_BITS - 1)
    with pytest.raises(ValueError):
        sequence(1, 0)


def test_two_loaders_taking_turns_number_above_each_other(store, settings, tmp_path):
    """A --watch loader on one folder and a one-shot load of another: each
    write is numbered above what the other wrote before it, so a poll that
    asks for numbers above the last marker it saw misses neither's news."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    write_article(ours, "1.md", webUrl=web_url("ours-1"))
    write_article(theirs, "1.md", webUrl=web_url("theirs-1"))
    with Loader(store, settings) as first, Loader(store, settings) as second:
        first.load([ours])
        seen = marker(store)
        second.load([theirs])
        assert news(store, "theirs-1") > seen
        seen = marker(store)
        write_article(ours, "2.md", webUrl=web_url("ours-2"))
        first.load([ours])
    assert news(store, "ours-2") > seen == news(store, "theirs-1")
    polled = store.articles.find({"_source.newsSeq": {"$gt": seen}}, {"_id": 1})
    assert [d["_id"] for d in polled] == [article_id("https://www.tramtimes.example/news/ours-2")]


# -- the count of changes -----------------------------------------------------


def changed(store: Any) -> int | None:
    found = store.db[LOADER].find_one({"_id": MARKER_ID}) or {}
    return found.get(CHANGED_FIELD)


def view(store: Any) -> tuple[dict[str, tuple[Any, ...]], list[dict[str, Any]]]:
    """What readers see: each article's title, file and publication, and the
    topic counts."""
    articles = {
        d["_id"]: (d["title"], Path(d["_source"]["path"]).name, d.get("published"))
        for d in store.articles.find({}, {"title": 1, "published": 1, "_source.path": 1})
    }
    return articles, sorted(store.topics.find(), key=lambda row: row["_id"])


def spy(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Each count of a change, by the loader's writes (``pipeline``) or its
    rebuild of the counts (``facets``), with what readers saw at that moment."""
    calls: list[tuple[str, Any]] = []
    for module in (pipeline, facets):

        def counted(target: Any, seq: int, who: str = module.__name__) -> None:
            calls.append((who, view(store)))
            announce(target, seq)

        monkeypatch.setattr(module, "announce", counted)
    return calls


def test_announce_counts_each_change_and_raises_the_marker_only_with_news(store):
    announce(store, 0)
    assert (changed(store), marker(store)) == (1, 0)
    announce(store, 5)
    assert (changed(store), marker(store)) == (2, 5)
    announce(store, 3)  # a late retry of an older write: counted, not lowered
    assert (changed(store), marker(store)) == (3, 5)


def test_a_first_load_counts_a_change_once_everything_is_written(store, settings, monkeypatch):
    calls = spy(store, monkeypatch)
    load_paths(store, [EXAMPLES], settings)
    assert changed(store) is not None
    # The articles are written before the loader counts their change, and the
    # counts rebuilt from them before it counts one last time.
    written = [saw for who, saw in calls if who == pipeline.__name__]
    assert written and written[-1][0] == view(store)[0]
    assert calls[-1] == (facets.__name__, view(store))


def _edit(folder: Path) -> bool:
    """A published article's title changes: not news."""
    (folder / "a.md").write_text(article_text(webUrl=web_url("a"), title='"Edited"'))
    return False


def _publish(folder: Path) -> bool:
    (folder / "held.md").write_text(article_text(webUrl=web_url("held"), published="true"))
    return False


def _ghost(folder: Path) -> bool:
    """The file names another article: the old one is deleted as a ghost."""
    (folder / "c.md").write_text(article_text(webUrl=web_url("c2")))
    return False


def _move(folder: Path) -> bool:
    (folder / "c.md").rename(folder / "d.md")
    return False


def _delete(folder: Path) -> bool:
    (folder / "c.md").unlink()
    return True  # to be pruned


@pytest.mark.parametrize(
    ("change", "is_news"),
    [(_edit, False), (_publish, True), (_ghost, True), (_move, False), (_delete, False)],
    ids=["edit", "publish", "ghost", "move", "delete"],
)
def test_a_change_is_counted_once_it_is_written(
    store,
    settings,
    tmp_path,
    monkeypatch,
    change: Callable[[Path], bool],
    is_news: bool,
):
    write_article(tmp_path, "a.md", webUrl=web_url("a"))
    write_article(tmp_path, "held.md", webUrl=web_url("held"), published="false")
    write_article(tmp_path, "c.md", webUrl=web_url("c"))
    load_paths(store, [tmp_path], settings)
    before, seen = (changed(store), marker(store)), view(store)
    calls = spy(store, monkeypatch)

    report = load_paths(store, [tmp_path], settings, prune=change(tmp_path))
    assert report.ok and view(store) != seen
    assert changed(store) != before[0]
    assert (marker(store) != before[1]) == is_news  # news as before
    written = [saw for who, saw in calls if who == pipeline.__name__]
    assert written and written[-1][0] == view(store)[0]  # counted after the change
    assert calls[-1][1] == view(store)


def test_a_reload_of_unchanged_files_counts_no_change(store, settings, tmp_path, monkeypatch):
    write_article(tmp_path, "a.md", webUrl=web_url("a"))
    load_paths(store, [tmp_path], settings)
    before = store.db[LOADER].find_one({"_id": MARKER_ID})
    calls = spy(store, monkeypatch)
    report = load_paths(store, [tmp_path], settings, prune=True)
    assert report.unchanged == 1
    assert (calls, store.db[LOADER].find_one({"_id": MARKER_ID})) == ([], before)
