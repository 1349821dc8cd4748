"""Find the article files under the paths a user names, lazily and in a stable order.

Each real folder and each real file is visited once, whatever the links: what
is visited is keyed by device and inode across the whole walk, not along one
path. A symlink "diamond" (each folder holding two links to the next) would
otherwise be walked once per path through it, 2**depth times, with every file
found again as a duplicate of itself; a folder given twice, or inside another
one given, would be walked twice. A link back to a folder that contains it (a
loop) is reported once, as a warning, and not followed.

Memory stays small for any corpus: the walk keeps one key per folder, and one
per file that can be reached under more than one name (a symlink, a file with
hard links, a file named on the command line); an ordinary file's key is only
looked up. A symlink (or a named file) whose target the walk reaches under its
own name in a folder it walks is left to that name; one whose target lies
elsewhere is loaded under the link's path, once.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

#: In a directory, files with these endings are articles; a file named
#: explicitly is read whatever its name.
ARTICLE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})

log = logging.getLogger("newsgraph.loaders")

Key = tuple[int, int]


class Found(NamedTuple):
    """A file to load, and what ``stat`` (following links) said of it when it
    was found; None if it could not be stat'ed (the reader then says why)."""

    path: Path
    stat: os.stat_result | None


def discover(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Found]:
    """Yield article files: each named file, and each article file below each
    named directory, recursively, sorted by name within a directory.

    Hidden files and directories are skipped. Directory symlinks are followed,
    each real directory once; see the module's docstring.
    """
    return _Walk().run(paths)


def is_article_name(name: str) -> bool:
    """Whether a file of this name, inside a directory, is an article file."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in ARTICLE_SUFFIXES


def _stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _entry_stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat()  # follows a symlink, as os.stat does
    except (OSError, ValueError):
        return None


def _key(st: os.stat_result) -> Key:
    return st.st_dev, st.st_ino


class _Walk:
    def __init__(self) -> None:
        #: Every directory walked or being walked.
        self.dirs: set[Key] = set()
        #: Those of them that could not be listed (none of their files is loaded).
        self.unlisted: set[Key] = set()
        #: Files reachable under more than one name, already yielded.
        self.files: set[Key] = set()

    def run(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[Found]:
        for path in map(Path, paths):
            st = _stat(path)
            if st is not None and stat.S_ISDIR(st.st_mode):
                yield from self._walk(path, st)
            elif st is None or self._first_by_link(path, st):
                # Missing, unreadable or looping files are yielded too: the reader
                # reports them with their reason rather than dropping them silently.
                yield Found(path, st)

    def _walk(self, root: Path, root_st: os.stat_result) -> Iterator[Found]:
        """Depth first, without recursion (a tree can be deeper than Python's stack)."""
        if _key(root_st) in self.dirs:
            return  # named twice, or inside a folder already walked
        #: The folders being walked, innermost last: (key, path, entries left).
        stack: list[tuple[Key, Path, Iterator[os.DirEntry[str]]]] = []
        opened = self._open(root, root_st)
        if isinstance(opened, Found):
            yield opened
            return
        stack.append(opened)
        while stack:
            entry = next(stack[-1][2], None)
            if entry is None:
                stack.pop()
                continue
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                st = _stat(path)
                if st is None:
                    continue  # gone since it was listed
                key = _key(st)
                if key in self.dirs:
                    ancestor = next((p for k, p, _ in stack if k == key), None)
                    if ancestor is not None:
                        log.warning(
                            "%s links back to %s, which contains it: a loop, not followed",
                            path,
                            ancestor,
                        )
                    continue  # else reached another way already: walked once
                opened = self._open(path, st)
                if isinstance(opened, Found):
                    yield opened
                else:
                    stack.append(opened)
            elif is_article_name(entry.name):
                st = _entry_stat(entry)
                if st is None:
                    yield Found(path, None)
                elif entry.is_symlink():
                    if self._first_by_link(path, st):
                        yield Found(path, st)
                elif self._first(st):
                    yield Found(path, st)

    def _open(
        self, directory: Path, st: os.stat_result
    ) -> tuple[Key, Path, Iterator[os.DirEntry[str]]] | Found:
        """The directory's entries, sorted by name; or the directory itself
        as a file to load if it cannot be listed (the reader reports why)."""
        key = _key(st)
        self.dirs.add(key)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            self.unlisted.add(key)
            return Found(directory, st)
        return key, directory, iter(entries)

    def _first(self, st: os.stat_result) -> bool:
        """Whether a file found under its own name in a folder is new to the walk."""
        key = _key(st)
        if key in self.files:
            return False  # a link to it was loaded
        if st.st_nlink > 1:
            self.files.add(key)  # it has other names, maybe in this walk
        return True

    def _first_by_link(self, path: Path, st: os.stat_result) -> bool:
        """Whether a file found through a symlink (or named on the command
        line) is new to the walk, and is not reached under its own name."""
        key = _key(st)
        if key in self.files:
            return False
        if stat.S_ISREG(st.st_mode) and self._walked_as_itself(path):
            return False
        self.files.add(key)
        return True

    def _walked_as_itself(self, path: Path) -> bool:
        """Whether the file ``path`` leads to is an article file in a folder
        the walk visits (or visited): it is loaded under that name."""
        real = os.path.realpath(path)
        if not is_article_name(os.path.basename(real)):
            return False
        parent = _stat(os.path.dirname(real))
        if parent is None:
            return False
        key = _key(parent)
        return key in self.dirs and key not in self.unlisted
