"""The loader's snapshot of the store: what each lookup answers, and one run's claims."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loaders.stored import Stored

FACETS = (True, "example.com", "Example", ("science", "space"))


@pytest.fixture
def stored() -> Iterator[Stored]:
    s = Stored()
    yield s
    s.close()


def test_lookups_by_hash_and_id(stored: Stored) -> None:
    stored.record("a1", "h1", "/news/a.md", FACETS)
    assert stored.find("h1") == ("a1", "/news/a.md")
    assert stored.find("h2") is None
    assert "a1" in stored and "a2" not in stored
    assert stored.get("a1") == ("h1", "/news/a.md", FACETS)
    assert list(stored.facets()) == [FACETS]


def test_a_rewrite_replaces_the_old_content(stored: Stored) -> None:
    stored.record("a1", "h1", "/news/a.md", FACETS)
    unpublished = (False, None, None, ())
    stored.record("a1", "h2", "/news/b.md", unpublished)
    assert stored.find("h1") is None
    assert stored.find("h2") == ("a1", "/news/b.md")
    assert list(stored.facets()) == [unpublished]
    assert len(stored) == 1
    stored.forget("a1")
    assert stored.find("h2") is None and len(stored) == 0


def test_the_first_claim_wins_until_the_next_run(stored: Stored) -> None:
    assert stored.claim("a1", "/news/a.md") == "/news/a.md"
    assert stored.claim("a1", "/news/copy.md") == "/news/a.md"
    stored.start_run()
    assert stored.claim("a1", "/news/copy.md") == "/news/copy.md"


def test_orphans_are_unseen_missing_files_under_the_roots(stored: Stored, tmp_path: Path) -> None:
    news, other = tmp_path / "news", tmp_path / "newsroom"
    news.mkdir()
    other.mkdir()
    (news / "failed.md").write_text("still here")
    for _id, path in (
        ("seen", news / "seen.md"),
        ("gone", news / "gone.md"),
        ("failed", news / "failed.md"),  # on disk but did not load: kept
        ("elsewhere", other / "gone.md"),  # a sibling folder sharing the prefix
    ):
        stored.record(_id, f"hash-{_id}", str(path), FACETS)
    stored.saw([str(news / "seen.md")])
    assert list(stored.orphans([str(news)])) == [("gone", str(news / "gone.md"))]
    stored.start_run()  # a new run has seen nothing yet
    assert {i for i, _ in stored.orphans([str(news) + "/"])} == {"gone", "seen"}


def test_ghosts_are_articles_at_a_path_that_no_file_of_the_run_names(stored: Stored) -> None:
    stored.record("old", "h1", "/news/a.md", FACETS)
    stored.record("moved", "h2", "/news/a.md", FACETS)  # its file moved: b.md names it
    stored.record("new", "h3", "/news/a.md", FACETS)
    stored.claim("new", "/news/a.md")
    stored.name("/news/b.md", "moved")
    assert stored.ghosts(["/news/a.md"]) == [("old", "/news/a.md")]
    assert stored.spared_ghosts() == []  # "moved" is named: not a ghost
    stored.name("/news/b.md", "other")  # ...until b.md names another after all
    assert stored.spared_ghosts() == [("moved", "/news/a.md")]


def test_a_buried_ghost_keeps_its_news_for_the_run(stored: Stored) -> None:
    stored.record("a1", "h1", "/news/a.md", (False, None, None, ()), news=7)
    stored.bury("a1")
    assert "a1" not in stored and stored.news("a1") == (False, 7)
    stored.start_run()
    assert stored.news("a1") is None


def test_files_put_off_come_back_pulled_first_then_in_order(stored: Stored) -> None:
    stored.defer("/news/c.md")
    stored.defer("/news/holder.md", pulled=True)
    stored.defer("/news/a.md")
    stored.defer("/news/a.md", pulled=True)  # put off for itself first: stays so
    stored.defer("/news/other.md", pulled=True)
    stored.defer("/news/other.md")  # and the other way round
    assert stored.take_later() == [
        ("/news/holder.md", True),
        ("/news/c.md", False),
        ("/news/a.md", False),
        ("/news/other.md", False),
    ]
    assert stored.take_later() == []
