"""The embedded engine's load does work per file that does not grow with the
store (issue 12: mongomock scanned the collection for each write's
unique-index check). Counted, not timed: the documents the engine's walks and
scans read; the rate itself is the bench's ``embedded_load_growth`` row."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.engine.database import Collection
from core.store import connect
from loaders import load_paths
from tests.articles import web_url, write_article


def scanned_documents(tmp_path: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Documents the engine read to answer queries on the articles while
    loading ``n`` new files into a fresh embedded store, in batches of 20."""
    folder = tmp_path / str(n)
    folder.mkdir()
    for i in range(n):
        write_article(folder, f"a{i:04}.md", webUrl=web_url(f"a{i}"), title=f'"Story {i}"')
    settings = Settings(db_name=f"rate_{n}", batch_size=20, load_workers=1)
    store = connect(settings)
    looked_at = 0

    def counting(original: Any) -> Any:
        def counted(self: Collection, *args: Any, **kwargs: Any) -> Any:
            nonlocal looked_at
            for found in original(self, *args, **kwargs):
                looked_at += self.name == "articles"
                yield found

        return counted

    with monkeypatch.context() as patch:
        for name in ("_walk", "_scan"):
            patch.setattr(Collection, name, counting(getattr(Collection, name)))
        started = time.perf_counter()
        report = load_paths(store, [folder], settings)
        seconds = time.perf_counter() - started
    store.db.client.drop_database(settings.db_name)
    assert report.inserted == n
    print(f"{n} files: {n / seconds:.0f} files/s, {looked_at} documents scanned")
    return looked_at


def test_writing_articles_scans_no_more_as_the_store_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = scanned_documents(tmp_path, 100, monkeypatch)
    large = scanned_documents(tmp_path, 400, monkeypatch)
    # Reading the store once at the start and counting the facets at the end
    # are one pass each: linear, never a pass per file.
    assert large <= 4 * small + 400, (small, large)
