"""The walk visits each real folder and file once, whatever the links (issue 22)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from loaders import load_paths
from loaders.discover import discover
from tests.articles import web_url, write_article

DEPTH = 16


def diamond(root: Path, depth: int = DEPTH) -> Path:
    """Folders d0 .. d<depth>, each with an article and two links to the next:
    2**depth paths lead to the deepest folder."""
    for level in range(depth + 1):
        write_article(root / f"d{level}", "story.md", webUrl=web_url(f"level-{level}"))
    for level in range(depth):
        for link in ("left", "right"):
            (root / f"d{level}" / link).symlink_to(root / f"d{level + 1}")
    return root / "d0"


def found(*paths: Path) -> list[str]:
    return [os.fspath(f.path) for f in discover(paths)]


def test_a_symlink_diamond_is_walked_once(tmp_path):
    top = diamond(tmp_path)
    files = found(top)
    assert len(files) == DEPTH + 1
    reached = sorted(os.path.realpath(f) for f in files)
    assert reached == sorted(f"{tmp_path}/d{level}/story.md" for level in range(DEPTH + 1))


def test_a_symlink_diamond_loads_each_article_once(store, settings, tmp_path):
    top = diamond(tmp_path)
    report = load_paths(store, [top], settings)
    assert (report.inserted, report.failed, report.ok) == (DEPTH + 1, 0, True)


def test_a_loop_is_reported_once(tmp_path, caplog):
    top = diamond(tmp_path, depth=4)
    (tmp_path / "d4" / "back").symlink_to(top)  # reached by 16 paths, one loop
    with caplog.at_level(logging.WARNING, "newsgraph.loaders"):
        files = found(top)
    assert len(files) == 5
    (loop,) = [r.getMessage() for r in caplog.records]
    assert "back links back to" in loop and loop.endswith("a loop, not followed")


def test_a_folder_named_twice_or_inside_another_is_walked_once(tmp_path):
    write_article(tmp_path / "a", "x.md", webUrl=web_url("x"))
    write_article(tmp_path / "a" / "b", "y.md", webUrl=web_url("y"))
    files = found(tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a")
    assert files == [f"{tmp_path}/a/b/y.md", f"{tmp_path}/a/x.md"]


@pytest.mark.parametrize("link", ["a.md", "z.md"])  # before its target, or after
def test_a_link_to_a_file_the_walk_finds_is_not_loaded_again(tmp_path, link):
    real = write_article(tmp_path, "m.md", webUrl=web_url("m"))
    (tmp_path / link).symlink_to(real)
    assert found(tmp_path) == [str(real)]


def test_links_to_a_file_elsewhere_load_it_once_under_the_first(tmp_path):
    outside = write_article(tmp_path / "elsewhere", "real.md", webUrl=web_url("real"))
    (tmp_path / "walked").mkdir()
    for name in ("b.md", "a.md"):
        (tmp_path / "walked" / name).symlink_to(outside)
    assert found(tmp_path / "walked") == [f"{tmp_path}/walked/a.md"]


def test_a_link_into_a_folder_reached_later_yields_the_link_only(tmp_path):
    real = write_article(tmp_path / "z", "real.md", webUrl=web_url("real"))
    (tmp_path / "a.md").symlink_to(real)
    assert found(tmp_path) == [f"{tmp_path}/a.md"]


def test_hard_links_are_one_file(tmp_path):
    real = write_article(tmp_path, "a.md", webUrl=web_url("a"))
    os.link(real, tmp_path / "b.md")
    write_article(tmp_path, "c.md", webUrl=web_url("c"))
    assert found(tmp_path, tmp_path / "b.md") == [f"{tmp_path}/a.md", f"{tmp_path}/c.md"]


def test_a_file_named_and_found_in_a_folder_is_loaded_once(tmp_path):
    real = write_article(tmp_path, "a.md", webUrl=web_url("a"))
    notes = tmp_path / "notes.yaml"  # not an article name: only named, it is loaded
    notes.write_text("x")
    assert found(real, tmp_path, notes) == [str(real), str(notes)]


def test_a_tree_deeper_than_the_interpreter_s_stack(tmp_path):
    levels = [str(tmp_path) + "/d" * n for n in range(1, 1201)]
    for level in levels:
        os.mkdir(level)  # (pathlib's mkdir(parents=True) recurses: too deep for it)
    bottom = write_article(Path(levels[-1]), "bottom.md", webUrl=web_url("bottom"))
    try:
        assert found(tmp_path) == [str(bottom)]
    finally:  # shutil.rmtree, as pytest cleans up, recurses too
        bottom.unlink()
        for level in reversed(levels):
            os.rmdir(level)


def test_what_cannot_be_listed_or_stat_ed_is_yielded_for_the_reader(tmp_path):
    (tmp_path / "dangling.md").symlink_to(tmp_path / "missing.md")
    listed = [(os.fspath(f.path), f.stat) for f in discover([tmp_path, tmp_path / "nowhere.md"])]
    assert listed == [(f"{tmp_path}/dangling.md", None), (f"{tmp_path}/nowhere.md", None)]
