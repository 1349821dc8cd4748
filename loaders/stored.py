"""What the store holds, read once per loader and kept up to date as it writes.

The loader must know, for every file, whether its content is already stored
(skip it) and, for every document, whether its ``_id`` exists (insert or
replace). Asking per batch costs a query per batch that MongoDB answers from an
index but FerretDB v1 answers by scanning the collection (it pushes down only
``_id`` equality), which made a load quadratic. One projected scan at the start
is linear on both; a watching loader keeps the snapshot for its whole life.

The snapshot, and what one run has claimed and seen, live in a private
temporary SQLite database rather than in Python dicts: those grow with the
corpus (the bench's rss_loader_growth row measures it), while SQLite keeps a
small page cache in memory and spills the rest to a file it deletes on close,
so the loader's memory stays flat however large the corpus.

The snapshot is read from the manifest (``loaders.manifest``), a packed copy
of these rows many times faster to read than the articles; it is built from
one scan of the articles (:meth:`Stored.refresh`) when missing or suspect.
Each row also holds the ``stat`` of the file its content was last checked
against, so an untouched file is not even read again (``loaders.pipeline``).

Beside the snapshot, the same database holds one run's state (which id each
file it read names, which file took each id, the files put off until the end
of the run, the ghosts deleted: ``loaders.pipeline``), so that too stays out
of the loader's memory.

Another loader writing meanwhile makes the snapshot stale: the loader lease
(``loaders.lease``) tells, and the loader reads the manifest again.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from core.news import NEWS_SEQ
from core.store import Store, retrying, unavailable_as_error
from loaders.facets import FACET_FIELDS, Facets, facets_of
from loaders.manifest import Log
from loaders.paths import path_of
from loaders.read import Stat

_SCHEMA = """
CREATE TABLE article (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL, path TEXT NOT NULL,
    published INTEGER NOT NULL, domain TEXT, name TEXT, topics TEXT NOT NULL,
    -- The file's (size, mtime_ns, ctime_ns) when its content was last found to
    -- be this; NULL when unknown or too fresh to trust (loaders.pipeline).
    size INTEGER, mtime INTEGER, ctime INTEGER,
    -- The write that last made it news (core.news), carried by later writes.
    news INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX article_hash ON article (hash);
CREATE INDEX article_path ON article (path);
-- One run's state (loaders.pipeline). Every path it saw on disk:
CREATE TABLE seen (path TEXT PRIMARY KEY) WITHOUT ROWID;
-- Every file it resolved: the _id its content names (NULL: it failed to load),
-- and whether it took that _id (at most one file takes an _id in a run).
CREATE TABLE named (path TEXT PRIMARY KEY, id TEXT, took INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX named_id ON named (id, took);
-- Files put off to the end of the run, in order; pulled: one that holds an
-- _id another file wants, read to settle which of them keeps it.
CREATE TABLE later (n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, pulled INTEGER NOT NULL);
-- Articles deleted because their file now names another: the newsSeq they
-- carried, carried again should a later file of the run name them.
CREATE TABLE gone (id TEXT PRIMARY KEY, published INTEGER NOT NULL, news INTEGER NOT NULL)
    WITHOUT ROWID;
-- Articles left at a path whose file took another _id, because a file of the
-- run named them: looked at again at its end.
CREATE TABLE spared (id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
_SCAN_BATCH = 10_000
#: Bound parameters per statement, well under SQLite's limit.
_MAX_PARAMS = 900
_UPSERT = "INSERT OR REPLACE INTO article VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

#: (_id, content hash, path, facets, stat of the file or None, newsSeq)
Row = tuple[str, str, str, Facets, Stat | None, int]


class Stored:
    """``(_id, content hash, source path, facets)`` of every stored article."""

    def __init__(self) -> None:
        # "" names a private temporary database on disk, deleted on close.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "PRAGMA temp_store = FILE;" + _SCHEMA
        )

    @classmethod
    def scan(cls, store: Store, keep: Callable[[], None] = lambda: None) -> Stored:
        """Read what ``store`` holds; ``keep`` is called every so often during
        a long scan (to renew the loader's lease)."""
        stored = cls()
        try:
            stored.refresh(store, keep)
        except BaseException:
            stored.close()
            raise
        return stored

    def refresh(self, store: Store, keep: Callable[[], None] = lambda: None) -> None:
        """Read the stored articles again (another loader wrote); this run's
        claims and seen paths are kept. Started over if the connection drops."""
        retrying(store.where, "reading what the store holds", lambda: self._read(store, keep))

    def read_manifest(self, store: Store, log: Log) -> bool:
        """Read the snapshot from the manifest; False if there is none (then
        :meth:`refresh` and :meth:`manifest` rebuild it)."""

        def read() -> bool:
            with unavailable_as_error(store.where):
                rows = log.read()
                if rows is None:
                    return False
                self._db.execute("DELETE FROM article")
                for row in rows:
                    if len(row) == 1:  # a deleted article
                        self.forget(row[0])
                    else:
                        row[6] = json.dumps(row[6])
                        self._db.execute(_UPSERT, row)
            return True

        return retrying(store.where, "reading the loader's manifest", read)

    def manifest(self) -> Iterator[list[Any]]:
        """Every row as the manifest holds it."""
        for row in self._db.execute("SELECT * FROM article"):
            yield _manifest_row(row)

    def unchanged(self, path: str, stat: Stat) -> tuple[str, str] | None:
        """``(_id, path)`` of the article whose content came from ``path`` when
        the file had this ``stat``, if any: the file is the same."""
        found: tuple[str, str] | None = self._one(
            "SELECT id, path FROM article WHERE path = ? AND size = ? AND mtime = ? AND ctime = ?",
            path,
            *stat,
        )
        return found

    def stat(self, _id: str) -> Stat | None:
        """The stat recorded with a stored article."""
        row = self._one("SELECT size, mtime, ctime FROM article WHERE id = ?", _id)
        return None if row is None or row[0] is None else (row[0], row[1], row[2])

    def _read(self, store: Store, keep: Callable[[], None]) -> None:
        self._db.execute("DELETE FROM article")
        with unavailable_as_error(store.where):
            fields = {"_source.hash": 1, "_source.path": 1, NEWS_SEQ: 1, **FACET_FIELDS}
            docs = store.articles.find({}, fields, batch_size=_SCAN_BATCH)
            while chunk := list(itertools.islice(docs, _SCAN_BATCH)):
                self.record_many(map(_scanned, chunk))
                keep()

    def close(self) -> None:
        self._db.close()

    # -- the snapshot ------------------------------------------------------

    def __contains__(self, _id: object) -> bool:
        return self._one("SELECT 1 FROM article WHERE id = ?", _id) is not None

    def __len__(self) -> int:
        count: int = self._one("SELECT count(*) FROM article")[0]
        return count

    def find(self, content_hash: str) -> tuple[str, str] | None:
        """``(_id, path)`` of the stored article with this content, if any."""
        found: tuple[str, str] | None = self._one(
            "SELECT id, path FROM article WHERE hash = ?", content_hash
        )
        return found

    def path(self, _id: str) -> str | None:
        """The path a stored article was loaded from, if it is stored."""
        found = self._one("SELECT path FROM article WHERE id = ?", _id)
        return None if found is None else str(found[0])

    def get(self, _id: str) -> tuple[str, str, Facets] | None:
        """``(content hash, path, facets)`` of a stored article, if stored."""
        row = self._one("SELECT * FROM article WHERE id = ?", _id)
        return None if row is None else (row[1], row[2], _facets(row))

    def news(self, _id: str) -> tuple[bool, int] | None:
        """Whether the stored article is published, and the newsSeq it carries
        (``core.news``); None if it is not stored. An article deleted in this
        run because its file came to name another (:meth:`bury`) still
        answers: named again by a later file, it is not news again."""
        row = self._one(
            "SELECT published, news FROM article WHERE id = ?"
            " UNION ALL SELECT published, news FROM gone WHERE id = ?",
            _id,
            _id,
        )
        return None if row is None else (bool(row[0]), int(row[1]))

    def facets(self) -> Iterator[Facets]:
        """What each stored article contributes to the provider and topic counts."""
        return map(_facets, self._db.execute("SELECT * FROM article"))

    def record(
        self,
        _id: str,
        content_hash: str,
        path: str,
        facets: Facets,
        stat: Stat | None = None,
        news: int = 0,
    ) -> None:
        """An article as it is now stored (just written, moved, or scanned)."""
        self.record_many([(_id, content_hash, path, facets, stat, news)])

    def record_many(self, rows: Iterable[Row]) -> None:
        self._db.executemany(_UPSERT, (_flatten(*row) for row in rows))

    def forget(self, _id: str) -> None:
        """An article just deleted from the store."""
        self._db.execute("DELETE FROM article WHERE id = ?", (_id,))

    def bury(self, _id: str) -> None:
        """An article just deleted because its file names another: forgotten,
        its newsSeq kept for the rest of the run (:meth:`news`)."""
        self._db.execute(
            "INSERT OR REPLACE INTO gone SELECT id, published, news FROM article WHERE id = ?",
            (_id,),
        )
        self.forget(_id)

    # -- one run -----------------------------------------------------------

    def start_run(self) -> None:
        """Forget the previous run's state."""
        self._db.executescript(
            "DELETE FROM seen; DELETE FROM named; DELETE FROM later;"
            "DELETE FROM gone; DELETE FROM spared;"
        )

    def saw(self, paths: Iterable[str]) -> None:
        """Paths this run found on disk (a pruned article's file is not one)."""
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((p,) for p in paths))

    def name(self, path: str, _id: str | None, took: bool = False) -> None:
        """The file at ``path`` names ``_id`` (None: it failed to load), and
        with ``took``, takes it in this run."""
        self._db.execute("INSERT OR REPLACE INTO named VALUES (?, ?, ?)", (path, _id, took))

    def named(self, path: str) -> tuple[str | None] | None:
        """``(_id,)`` the file at ``path`` names in this run (``(None,)`` if it
        failed to load); None if it is not resolved in this run (yet)."""
        found: tuple[str | None] | None = self._one("SELECT id FROM named WHERE path = ?", path)
        return found

    def taker(self, _id: str) -> str | None:
        """The path of the file that took ``_id`` in this run, if any."""
        found = self._one("SELECT path FROM named WHERE id = ? AND took", _id)
        return None if found is None else str(found[0])

    def claim(self, _id: str, path: str) -> str:
        """The path that supplies ``_id`` in this run: the first to claim it."""
        winner = self.taker(_id)
        if winner is None:
            self.name(path, _id, took=True)
            winner = path
        return winner

    def defer(self, path: str, pulled: bool = False) -> None:
        """Resolve the file at ``path`` at the end of the run (it is read again
        then); ``pulled``: it holds an id another file wants, and is read then
        only if the run has not read it meanwhile."""
        # Put off for itself, it is read again even if it was pulled in first.
        self._db.execute(
            "INSERT INTO later (path, pulled) VALUES (?, ?)"
            " ON CONFLICT (path) DO UPDATE SET pulled = min(pulled, excluded.pulled)",
            (path, pulled),
        )

    def take_later(self) -> list[tuple[str, bool]]:
        """The files put off, pulled ones first, each in the order it was put
        off; they are no longer put off."""
        rows = self._db.execute("SELECT path, pulled FROM later ORDER BY pulled DESC, n")
        later = [(str(path), bool(pulled)) for path, pulled in rows]
        self._db.execute("DELETE FROM later")
        return later

    def ghosts(self, paths: list[str]) -> list[tuple[str, str]]:
        """``(_id, path)`` of the stored articles recorded at ``paths`` that no
        file in this run names. (Files at ``paths`` took other ids: these
        articles stand for content no file holds any more.) Those some file
        does name are noted, to be looked at again by :meth:`spared_ghosts`."""
        found: list[tuple[str, str]] = []
        for start in range(0, len(paths), _MAX_PARAMS):
            chunk = paths[start : start + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            self._db.execute(
                "INSERT OR IGNORE INTO spared SELECT a.id FROM article a"
                f" WHERE a.path IN ({marks}) AND EXISTS"
                " (SELECT 1 FROM named n WHERE n.id = a.id AND n.path != a.path)",
                chunk,
            )
            found += self._db.execute(
                f"SELECT a.id, a.path FROM article a WHERE a.path IN ({marks}) AND NOT EXISTS"
                " (SELECT 1 FROM named n WHERE n.id = a.id)",
                chunk,
            ).fetchall()
        return found

    def spared_ghosts(self) -> list[tuple[str, str]]:
        """At the end of a run, ``(_id, path)`` of articles :meth:`ghosts`
        spared that are ghosts after all: still at a path whose file took
        another id, and named by no file (one that named them changed since)."""
        rows: list[tuple[str, str]] = self._db.execute(
            "SELECT a.id, a.path FROM spared s JOIN article a ON a.id = s.id"
            " JOIN named p ON p.path = a.path AND p.took AND p.id != a.id"
            " WHERE NOT EXISTS (SELECT 1 FROM named n WHERE n.id = a.id)"
        ).fetchall()
        return rows

    def orphans(self, roots: Iterable[str]) -> Iterator[tuple[str, str]]:
        """``(_id, path)`` of stored articles whose source file was under one of
        ``roots`` and is gone: not seen by this run and not on disk (a file that
        exists but failed to load keeps its stored version). Paths here, like
        ``roots``, are paths' text (``loaders.paths``)."""
        for root in roots:
            prefix = root.rstrip(os.sep) + os.sep
            unseen = self._db.execute(
                "SELECT id, path FROM article WHERE (path = ? OR substr(path, 1, ?) = ?)"
                " AND path NOT IN (SELECT path FROM seen)",
                (root, len(prefix), prefix),
            ).fetchall()  # before any is forgotten: no reading while deleting
            for _id, path in unseen:
                if not os.path.lexists(path_of(path)):
                    yield _id, path

    def _one(self, sql: str, *args: Any) -> Any:
        return self._db.execute(sql, args).fetchone()


def _scanned(doc: dict[str, Any]) -> Row:
    source = doc.get("_source") or {}
    news = source.get("newsSeq")
    return (
        doc["_id"],
        source.get("hash", ""),
        source.get("path", ""),
        facets_of(doc),
        None,
        news if isinstance(news, int) else 0,  # written before newsSeq existed
    )


def _flatten(
    _id: str, content_hash: str, path: str, facets: Facets, stat: Stat | None, news: int
) -> tuple[Any, ...]:
    published, domain, name, topics = facets
    size, mtime, ctime = stat or (None, None, None)
    topics_text = json.dumps(topics)
    return (_id, content_hash, path, published, domain, name, topics_text, size, mtime, ctime, news)


def manifest_row(row: Row) -> list[Any]:
    """A row as the manifest holds it."""
    return _manifest_row(_flatten(*row))


def _manifest_row(row: tuple[Any, ...]) -> list[Any]:
    flat = list(row)
    flat[6] = json.loads(flat[6])
    return flat


def _facets(row: tuple[Any, ...]) -> Facets:
    published, domain, name, topics = row[3:7]
    return (
        bool(published),
        domain and sys.intern(domain),
        name and sys.intern(name),
        tuple(sys.intern(t) for t in json.loads(topics)),
    )
