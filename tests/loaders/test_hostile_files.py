"""A corpus of malformed and hostile files (tests/loaders/hostile/ plus a few
made here that can't be committed): each loads under a documented rule or is
rejected with its path and reason; nothing is half-written; the rest load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from loaders import load_paths
from tests.articles import article_text, web_url

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
}

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
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
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
    return folder


def test_every_case_has_an_expectation():
    on_disk = {p.name for p in HOSTILE.iterdir()}
    made_here = {"huge.md", "title_1mb.md", "unreadable.md"}
    assert on_disk | made_here == set(REJECTED) | set(LOADED)
    assert len(on_disk | made_here) >= 30


def test_each_file_loads_under_its_rule_or_is_rejected_with_its_reason(store, settings, corpus):
    report = load_paths(store, [corpus], settings)
    failures = {Path(f.path).name: f for f in report.failures}
    assert set(failures) == set(REJECTED), set(failures) ^ set(REJECTED)
    for name, reason in REJECTED.items():
        assert reason in failures[name].reason, (name, failures[name].reason)
        assert failures[name].path == str(corpus / name)
    assert report.inserted == len(LOADED) and report.aborted is None
    docs = {Path(d["_source"]["path"]).name: d for d in store.articles.find()}
    assert set(docs) == set(LOADED)  # nothing of a rejected file was written
    for name, check in LOADED.items():
        assert check(docs[name]), (name, docs[name])


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
    # On a server the second run finds them stored; the embedded engine lives
    # and dies with each process, so there every run inserts them afresh.
    again = "unchanged" if settings.mongodb_uri else "inserted"
    assert report[again] == len(LOADED)
