"""Find the article files under the paths a user names, lazily and in a stable order."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

#: In a directory, files with these endings are articles; a file named
#: explicitly is read whatever its name.
ARTICLE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})


def discover(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Yield article files: each named file, and each article file below each
    named directory, recursively, sorted by name within a directory.

    Hidden files and directories are skipped. Directory symlinks are followed
    once: a link back to a directory already being walked is not followed again,
    so a symlink loop ends instead of recursing forever.
    """
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from _walk(path, active=set())
        else:
            # Missing, unreadable or looping files are yielded too: the reader
            # reports them with their reason rather than dropping them silently.
            yield path


def is_article_name(name: str) -> bool:
    """Whether a file of this name, inside a directory, is an article file."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in ARTICLE_SUFFIXES


def _walk(directory: Path, active: set[tuple[int, int]]) -> Iterator[Path]:
    try:
        st = directory.stat()
    except OSError:
        return
    key = (st.st_dev, st.st_ino)
    if key in active:
        return
    active.add(key)
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        yield directory  # the reader reports why it cannot be listed
        active.discard(key)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        child = Path(entry.path)
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(child, active)
        elif is_article_name(entry.name):
            yield child
    active.discard(key)
