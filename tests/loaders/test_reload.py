"""A reload of an unchanged folder reads no file and writes nothing, on both
engines; and every way a file or the store can change under it is still
caught: a touched file, a same-size change with its mtime put back, a crash
between an article and its manifest row, another loader's write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from core.indexes import LOADER, MANIFEST
from core.store import StoreUnavailable
from loaders import load_paths, manifest, pipeline
from loaders.pipeline import Loader
from tests.articles import EXAMPLES, article_text, web_url, write_article


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the loader reads, in order."""
    seen: list[Path] = []
    real = pipeline.read_file_stat

    def spy(path: Path, max_bytes: int) -> Any:
        seen.append(path)
        return real(path, max_bytes)

    monkeypatch.setattr(pipeline, "read_file_stat", spy)
    return seen


@pytest.fixture
def trust_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust files written just now (the tests' files are all fresh)."""
    monkeypatch.setattr(pipeline, "TRUST_NS", -3600 * 10**9)


def snapshot(store: Any) -> tuple[Any, ...]:
    """Everything a load could write: articles, manifest and lease generation."""
    lease = store.db[LOADER].find_one({"_id": "lease"}) or {}
    return (
        {d["_id"]: d for d in store.articles.find()},
        {d["_id"]: d for d in store.db[MANIFEST].find()},
        lease.get("generation"),
    )


def _counts(report: Any) -> tuple[int, int, int, int]:
    return report.inserted, report.updated, report.unchanged, report.failed


def test_an_unchanged_reload_reads_no_file_and_writes_nothing(store, settings, reads, trust_now):
    assert load_paths(store, [EXAMPLES], settings).inserted == 12
    before, reads[:] = snapshot(store), []
    report = load_paths(store, [EXAMPLES], settings)
    assert _counts(report) == (0, 0, 12, 0)
    assert reads == []
    assert snapshot(store) == before


def test_a_touched_file_is_read_hashed_and_skipped(store, settings, tmp_path, reads, trust_now):
    path = write_article(tmp_path, "a.md")
    load_paths(store, [tmp_path], settings)
    articles = snapshot(store)[0]
    later = os.stat(path).st_mtime_ns + 5 * 10**9
    os.utime(path, ns=(later, later))
    reads[:] = []
    assert _counts(load_paths(store, [tmp_path], settings)) == (0, 0, 1, 0)
    assert reads == [path] and snapshot(store)[0] == articles  # not rewritten
    reads[:] = []
    assert _counts(load_paths(store, [tmp_path], settings)) == (0, 0, 1, 0)
    assert reads == []  # its new stat was recorded


def test_a_same_size_change_with_its_mtime_put_back_is_caught(store, settings, tmp_path):
    """Inside the trust window (the real one): the file was written too
    recently for its times to be recorded, so it is read again."""
    path = write_article(tmp_path, "a.md", title='"Title A"')
    load_paths(store, [tmp_path], settings)
    st = os.stat(path)
    path.write_text(article_text(title='"Title B"'))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size
    assert _counts(load_paths(store, [tmp_path], settings)) == (0, 1, 0, 0)
    (doc,) = store.articles.find()
    assert doc["title"] == "Title B"


def test_a_same_size_change_with_an_old_mtime_put_back_is_caught_by_ctime(
    store, settings, tmp_path, trust_now
):
    path = write_article(tmp_path, "a.md", title='"Title A"')
    old = os.stat(path).st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(old, old))
    load_paths(store, [tmp_path], settings)
    path.write_text(article_text(title='"Title B"'))
    os.utime(path, ns=(old, old))  # the same size and mtime: only ctime moved
    assert _counts(load_paths(store, [tmp_path], settings)) == (0, 1, 0, 0)
    (doc,) = store.articles.find()
    assert doc["title"] == "Title B"


def test_a_crash_between_article_and_manifest_is_repaired(
    store, settings, tmp_path, reads, trust_now, monkeypatch
):
    path = write_article(tmp_path, "a.md", title='"Title A"')
    load_paths(store, [tmp_path], settings)

    def crash(self: manifest.Log, rows: list[Any]) -> None:
        raise StoreUnavailable("the loader stopped here")

    path.write_text(article_text(title='"Title B, longer"'))
    with monkeypatch.context() as m:
        m.setattr(manifest.Log, "append", crash)
        assert load_paths(store, [tmp_path], settings).aborted
    (doc,) = store.articles.find()
    assert doc["title"] == "Title B, longer"  # the article was written, not its row

    # The next loader finds the counts behind and rebuilds the manifest from
    # the articles: the file is read, found stored, and not written again.
    reads[:] = []
    report = load_paths(store, [tmp_path], settings)
    assert _counts(report) == (0, 0, 1, 0) and reads == [path]
    rows = manifest.Log(store).read()
    assert rows is not None and {r[0]: r[1] for r in rows} == {doc["_id"]: doc["_source"]["hash"]}
    reads[:] = []
    assert _counts(load_paths(store, [tmp_path], settings)) == (0, 0, 1, 0)
    assert reads == []


def test_a_missing_manifest_is_built_from_the_articles(store, settings, reads, trust_now):
    """The first run after an upgrade (or after the manifest was dropped)."""
    load_paths(store, [EXAMPLES], settings)
    store.db[MANIFEST].drop()
    articles = snapshot(store)[0]
    reads[:] = []
    assert _counts(load_paths(store, [EXAMPLES], settings)) == (0, 0, 12, 0)
    assert len(reads) == 12 and snapshot(store)[0] == articles
    assert store.db[MANIFEST].find_one({"_id": "meta"}) is not None
    reads[:] = []
    assert _counts(load_paths(store, [EXAMPLES], settings)) == (0, 0, 12, 0)
    assert reads == []


def test_another_loaders_write_is_not_skipped(store, settings, tmp_path, trust_now):
    ours, away = tmp_path / "ours", tmp_path / "away"
    write_article(ours, "a.md", title='"Ours"', webUrl=web_url("same"))
    with Loader(store, settings) as loader:
        assert loader.load([ours]).inserted == 1
        # Another loader replaces the article (and bumps the generation) from
        # another file at the same path; then our file is put back untouched
        # (renaming its folder changes none of the file's times).
        ours.rename(away)
        write_article(ours, "a.md", title='"Theirs"', webUrl=web_url("same"))
        assert load_paths(store, [ours], settings).updated == 1
        shutil.rmtree(ours)
        away.rename(ours)
        # Our file is untouched, but the store no longer holds its content.
        assert _counts(loader.load([ours])) == (0, 1, 0, 0)
    (doc,) = store.articles.find()
    assert doc["title"] == "Ours"


def test_a_crowded_manifest_is_compacted(store, settings, reads, trust_now, monkeypatch):
    monkeypatch.setattr(manifest, "MAX_SEGMENTS", 2)
    small = settings.__class__(**{**vars(settings), "batch_size": 2})
    load_paths(store, [EXAMPLES], small)
    segments = store.db[MANIFEST].count_documents({"_id": {"$ne": "meta"}})
    assert segments <= 2
    reads[:] = []
    assert _counts(load_paths(store, [EXAMPLES], small)) == (0, 0, 12, 0)
    assert reads == []
