"""A corpus of malformed and hostile files (tests/loaders/hostile/ plus a few
made here that can't be committed: FIFOs, sockets, names that are not UTF-8 or
hold a newline): each loads under a documented rule, is rejected or skipped
with its path and reason; nothing is half-written; the rest load."""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

import loaders.pipeline
import loaders.read
from loaders import load_paths
from loaders.report import render
from tests.articles import article_text, web_url, write_article

HOSTILE = Path(__file__).parent / "hostile"

#: file -> reason it is rejected for (a part of it)
REJECTED = {
    "no_front_matter.md": "no front matter",
    "unterminated.md": "never closed",
    "list_front_matter.md": "front matter must be a mapping",
    "scalar_front_matter.md": "front matter must be a mapping",
    "invalid_yaml.md": "invalid YAML",
    "tab_indent.md": "this line has a tab",
    "latin1.md": "not valid UTF-8",
    "invalid_utf8.md": "not valid UTF-8",
    "nul_bytes.md": "NUL bytes",
    "alias_bomb.md": "aliases",
    "deep_nesting.md": "nests deeper than 64 levels",
    "duplicate_keys.md": "duplicate key 'title'",
    "title_missing.md": "title is missing",
    "title_empty.md": "title is empty",
    "weburl_missing.md": "webUrl is missing",
    "weburl_relative.md": "absolute http(s) URL",
    "weburl_javascript.md": "absolute http(s) URL",
    "weburl_spaces.md": "white space",
    "date_other_format.md": "ISO-8601",
    "date_impossible.md": "day is out of range",
    "quality_text.md": "quality must be a whole number",
    "quality_float.md": "quality must be a whole number",
    "quality_negative.md": "quality must be between 0 and 100",
    "quality_huge.md": "quality must be between 0 and 100",
    "related_mapping.md": "related must be a list",
    "image_width_text.md": "images[0].width must be a whole number",
    "same_weburl_b.md": "first file in load order wins",
    "empty.md": "file is empty",
    "control_character.md": "invalid character",
    "python_tag.md": "python/object",
    "reserved_field.md": "field name '$where'",
    "body_and_field.md": "keep one",
    # made by the test
    "huge.md": "over the 2,097,152-byte limit",
    "title_1mb.md": "title is 1,048,576 characters long",
    "unreadable.md": "cannot read file",
    # a name that would forge a second report line if it were printed raw
    "forged\\nFAILED other.md": "no front matter",
}

#: file (as its path's text) -> why it is skipped; none of them is ever opened
SKIPPED = {
    "fifo.md": "is a named pipe (FIFO), not a regular file; skipped without opening it",
    "socket.md": "is a socket, not a regular file",
    "device.md": "is a character device, not a regular file",
}

#: made by the test, keyed by their path's text: the files above, not committable
MADE_HERE = {"huge.md", "title_1mb.md", "unreadable.md", "forged\\nFAILED other.md"}
MADE_HERE |= {*SKIPPED, "undecodable_\\xff.md"}

#: file -> what the stored document must show for the documented normalization
LOADED = {
    "bom.md": lambda d: d["title"] == "Tram Line Extension Opens Early",
    "crlf.md": lambda d: d["provider"]["name"] == "Tram Times",
    "date_other_zone.md": lambda d: d["publishedDateTime"] == datetime(2020, 5, 7, 15, 58),
    "quality_float_integral.md": lambda d: d["quality"] == 59,
    "topics_string.md": lambda d: d["topics"] == ["Transit"],
    "unknown_fields.md": lambda d: (
        d["sponsor"] == {"name": "Acme", "paid": True} and d["readingTime"] == 4
    ),
    "same_weburl_a.md": lambda d: d["title"] == "Version A",
    "mojibake_c1.md": lambda d: (
        d["excerpt"] == "He said “yes” to the plan" and d["_source"]["repaired"] == ["excerpt"]
    ),
    "yaml_11_traps.md": lambda d: (
        (d["title"], d["category"], d["type"]) == ("no", "2020-05-07", "1e3")
    ),
    # byte 0xff in the name: stored under the name's text, see loaders.paths
    "undecodable_\\xff.md": lambda d: d["webUrl"].endswith("/undecodable"),
}


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(HOSTILE, folder)
    with open(folder / "huge.md", "wb") as f:
        f.write(article_text(webUrl=web_url("huge")).encode())
        f.truncate(50 * 1024 * 1024)
    (folder / "title_1mb.md").write_text(
        article_text(webUrl=web_url("long-title"), title='"' + "x" * 1024 * 1024 + '"')
    )
    (folder / "unreadable.md").symlink_to(folder / "does-not-exist.md")
    (folder / "loop").symlink_to(folder)
    (folder / "forged\nFAILED other.md").write_text("just text\n")
    write_article(folder, "undecodable_\udcff.md", webUrl=web_url("undecodable"))
    os.mkfifo(folder / "fifo.md")
    (folder / "device.md").symlink_to("/dev/null")
    with monkeypatch.context() as here, socket.socket(socket.AF_UNIX) as sock:
        here.chdir(folder)  # a socket's path has a length limit: bind it relative
        sock.bind("socket.md")
    return folder


def load_bounded(*args, **kwargs):
    """``load_paths``, failing the test rather than hanging should a FIFO be opened."""
    done: list = []
    thread = threading.Thread(target=lambda: done.append(load_paths(*args, **kwargs)), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert done, "the load did not finish: did it open a FIFO?"
    return done[0]


def test_every_case_has_an_expectation():
    on_disk = {p.name for p in HOSTILE.iterdir()}
    assert on_disk | MADE_HERE == set(REJECTED) | set(LOADED) | set(SKIPPED)
    assert len(on_disk | MADE_HERE) >= 30


def test_each_file_loads_under_its_rule_or_is_rejected_with_its_reason(store, settings, corpus):
    report = load_bounded(store, [corpus], settings)
    failures = {Path(f.path).name: f for f in report.failures}
    assert set(failures) == set(REJECTED), set(failures) ^ set(REJECTED)
    for name, reason in REJECTED.items():
        assert reason in failures[name].reason, (name, failures[name].reason)
        assert failures[name].path == str(corpus / name)
    skips = {Path(f.path).name: f.reason for f in report.skips}
    assert set(skips) == set(SKIPPED), skips
    for name, reason in SKIPPED.items():
        assert reason in skips[name], (name, skips[name])
    assert report.inserted == len(LOADED) and report.aborted is None
    docs = {Path(d["_source"]["path"]).name: d for d in store.articles.find()}
    assert set(docs) == set(LOADED)  # nothing of a rejected file was written
    for name, check in LOADED.items():
        assert check(docs[name]), (name, docs[name])
    # one line each: a newline in a name or a reason cannot forge another
    out = io.StringIO()
    render(report, Console(file=out, width=200))
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("FAILED ") for line in lines) == len(REJECTED)
    assert sum(line.startswith("SKIPPED ") for line in lines) == len(SKIPPED)
    forged = f"FAILED {corpus}/forged\\nFAILED other.md:1: no front matter"
    assert any(line.startswith(forged) for line in lines), lines


@pytest.mark.parametrize("engine", ["embedded"])
def test_fifos_sockets_and_devices_are_never_opened(store, settings, corpus, monkeypatch):
    opened: list[str] = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    report = load_bounded(store, [corpus], settings)
    assert report.skipped == len(SKIPPED)
    assert str(corpus / "bom.md") in opened  # the spy sees the loader's opens
    assert not {Path(p).name for p in opened} & set(SKIPPED)


def test_a_file_that_vanishes_after_it_is_found_is_skipped(store, settings, tmp_path, monkeypatch):
    write_article(tmp_path, "a.md", webUrl=web_url("a"))
    gone = write_article(tmp_path, "b.md", webUrl=web_url("b"))
    found = loaders.pipeline.discover

    def found_then_deleted(paths):
        for path in found(paths):
            yield path
            if path.path == gone:
                gone.unlink()  # listed, and gone before the batch is read

    monkeypatch.setattr(loaders.pipeline, "discover", found_then_deleted)
    report = load_paths(store, [tmp_path], settings)
    assert (report.inserted, report.failed, report.skipped, report.ok) == (1, 0, 1, False)
    assert report.skips[0].path == str(gone)
    assert report.skips[0].reason.startswith("vanished before it could be read")


@pytest.mark.parametrize("writes", [1, 2])
def test_a_file_changed_while_it_is_read_is_read_again_once(
    store, settings, tmp_path, monkeypatch, writes
):
    path = write_article(tmp_path, "a.md", title='"First"')
    titles = iter(['"Second version"', '"Third version, longer"'][:writes])
    read_bytes = loaders.read._read_bytes

    def read_while_written(f, limit):
        data = read_bytes(f, limit)
        for title in itertools.islice(titles, 1):  # a writer gets in between, `writes` times
            path.write_text(article_text(title=title))
        return data

    monkeypatch.setattr(loaders.read, "_read_bytes", read_while_written)
    report = load_paths(store, [tmp_path], settings)
    if writes == 1:  # settled on the second read: that version is loaded
        assert report.inserted == 1 and report.ok
        assert store.articles.find_one()["title"] == "Second version"
    else:
        assert report.inserted == 0 and report.failed == 0
        assert "kept changing while it was being read" in report.skips[0].reason


def test_rejections_are_stable_and_the_exit_status_is_1(settings, corpus):
    env = {**os.environ, "MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "newsgraph", "load", "--json", str(corpus)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        report = json.loads(done.stdout)
        assert report["failed"] == len(REJECTED)
        assert report["skipped"] == len(SKIPPED) == len(report["skips"])
        forged = [f for f in report["failures"] if "forged" in f["path"]]
        assert [f["path"] for f in forged] == [f"{corpus}/forged\\nFAILED other.md"]
    # The second run finds them stored (the embedded engine keeps its files too).
    assert report["unchanged"] == len(LOADED)
