"""The load: discover -> read -> (skip unchanged) -> parse -> write, in batches.

Files stream through in batches of ``batch_size``: memory holds one batch of
files, not the corpus. What the store holds is read once at the start (content
hashes and ids, see ``loaders.stored``, from the packed manifest of
``loaders.manifest``): a file whose content hash is stored is unchanged and is
neither parsed nor written again. A file whose path, size, mtime and ctime are
those recorded when its stored content was last checked is not even read: that
makes a re-load of an unchanged folder cost a stat per file and one read of
the manifest. Only a time older than the run's start by more than any file
system's timestamp granularity (:data:`TRUST_NS`) is recorded: a file written
within that window could change again without its time changing.

A file stands for the article its ``webUrl`` names. When its content comes
to name another (the URL was edited, or another file was moved over it), the
article it stood for is a *ghost*: it is deleted in the batch that writes the
file's new article (before the news marker moves, with its manifest row; the
counts follow), unless another file of the run names it (two files swapping
URLs keep both articles throughout). An article stored from one file keeps it
while that file still names it: another file naming the same id, wherever it
sorts, is a duplicate, reported and not written, and its own stored article
stays. To tell, a file that wants an id stored from a file the run has not
resolved yet is put off until the end of the run (only its path is kept; it
is read again then), and that file is read first if the run would not read
it (it is outside the paths loaded, as a watcher's batch is). An article
deleted as a ghost and named by a later file of the same run (a rotation of
URLs across batches) is written again without being news again; between the
two batches it is briefly missing.

Loaders share a database through a lease (``loaders.lease``): a loader holds it
while it sets up, writes and rebuilds the counts, and re-reads its snapshot
when it finds that another loader wrote since, so counts are always rebuilt
from what the store holds now. A one-shot load holds it for its whole run; a
watcher takes it for each batch of changes it writes.

A loader's ``stop`` event, once set, ends its run before the next batch (and a
wait for the lease at once): what was written stays, the batches read ahead
are dropped, the parse pool is closed and the lease let go, and the report
says it stopped (``aborted``). This is how ``newsgraph load`` stops on Ctrl-C
or SIGTERM, and ``serve --load`` stops its load beside serving: an exception
raised wherever the signal lands could cut through the parse pool's own
bookkeeping and leave its processes behind. The counts are not rebuilt on
the way out (promptness first); the next load rebuilds them, as after a crash.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from threading import Event
from typing import Any

from core.cachekeys import FACET_TYPES, row_purge
from core.config import Settings
from core.news import sequence
from core.store import Store, StoreUnavailable, retrying
from loaders.discover import Found, discover
from loaders.errors import Rejected
from loaders.facets import facets_of, rebuild_facets
from loaders.lease import Holding, Lease, LeaseError
from loaders.manifest import Log
from loaders.news import announce, stamp
from loaders.parallel import Crashed, Item, Parsed, Parser, Parsing, Rejection
from loaders.paths import path_of, path_text
from loaders.progress import LoadProgress
from loaders.purge import Before, Purger, gone_keys
from loaders.read import Skipped, Stat, content_hash, read_file_stat, regular_stat
from loaders.report import Failure, LoadReport
from loaders.stored import Row, Stored, manifest_row
from loaders.write import BatchResult, write_batch

OnFile = Callable[[Path], None]
#: A file read in a batch: its path, the path's text (``loaders.paths``), and
#: its read failure or skip, the stored (_id, path) with its content, or None
#: when it is to be parsed; its content hash (None if not read) and its stat
#: if old enough to trust next time.
Entry = tuple[Path, str, "Failure | Skipped | tuple[str, str] | None", str | None, Stat | None]
log = logging.getLogger("newsgraph.loaders")

#: A file's times are trusted to change with its content only if older than
#: the run's start by this much (ns): FAT keeps times to 2 s, HFS+ and ext3 to
#: 1 s, and the kernel stamps from a clock that lags by a tick.
TRUST_NS = 2_000_000_000
#: Rounds of files put off until the end of a run (:meth:`Loader._settle`):
#: each reads the files the previous one found holding what another wants.
_SETTLE_ROUNDS = 4
#: :meth:`Loader._holder`'s answer for a file to put off.
_DEFER = "defer"


def stopped(by: str = "as asked") -> str:
    """The ``aborted`` reason of a run stopped by its ``stop`` event; ``by``
    says who asked (``newsgraph load`` names the signal)."""
    return f"{by}, before the end: files written so far stay written; run the load again to finish."


class _Stopped(Exception):
    """The loader's ``stop`` event was set: end the run."""


def load_paths(
    store: Store,
    paths: Iterable[str | os.PathLike[str]],
    settings: Settings | None = None,
    on_file: OnFile | None = None,
    prune: bool = False,
    stop: Event | None = None,
) -> LoadReport:
    """Load every article file under ``paths`` into ``store``.

    Returns the report; a file that fails is listed there and the rest go on.
    If the store goes away mid-run the report says so in ``aborted``: what was
    written stays written, and running the load again finishes the job. With
    ``prune``, stored articles whose source file under ``paths`` is gone are
    deleted. Setting ``stop`` ends the run early, so too (see the module).
    """
    with Loader(store, settings, stop=stop) as loader:
        return loader.load(paths, on_file=on_file, prune=prune)


class Loader:
    """Loads files into one store. What the store holds is read on the first
    load and kept up to date by the loader's own writes, so a loader that lives
    on (``newsgraph load --watch``) reads it once, not once per change."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        stop: Event | None = None,
        purger: Purger | None = None,
        progress: LoadProgress | None = None,
    ) -> None:
        """``stop``, once set, ends the run before its next batch, and a
        wait for the loader lease at once (the run is then aborted, as when
        the wait runs out). ``purger`` gets the cache
        keys each write changes (by default, the hook the settings name).
        ``progress`` is told how each load goes (``/readyz`` shows it)."""
        self.store = store
        self.progress = progress or LoadProgress()
        self.settings = settings or Settings()
        self._purger = purger or Purger.for_settings(self.settings)
        self._stored: Stored | None = None
        self._stop = stop
        self._lease = Lease(store, self.settings, stop=stop)
        self._log = Log(store)
        #: Files whose mtime and ctime are older than this (time.time_ns()) are
        #: recorded with their stat; set at the start of each run.
        self._trusted_before = 0
        #: The lease generation the snapshot reflects (see ``loaders.lease``).
        self._generation = 0
        #: Whether the generation was bumped in the current holding of the lease.
        self._wrote = False
        #: Batches of articles written in the current holding (``core.news``).
        self._batches = 0
        #: Whether a loader wrote and did not rebuild the counts (it crashed).
        self._stale_facets = False
        #: Whether the files put off until the end of a run are being loaded,
        #: and whether in the last round (``_settle``).
        self._settling = self._final = False

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the snapshot (its temporary file goes with it), once the
        cache keys still queued are sent (``loaders.purge``)."""
        if self._purger is not None:
            self._purger.close()
        if self._stored is not None:
            self._stored.close()
            self._stored = None

    def load(
        self,
        paths: Iterable[str | os.PathLike[str]],
        on_file: OnFile | None = None,
        prune: bool = False,
        gone: Iterable[str] = (),
    ) -> LoadReport:
        """Load ``paths``; with ``prune``, delete articles whose source file
        under ``paths`` is gone; and delete those whose file was under ``gone``
        (paths a watcher saw disappear) if it is still missing.

        Paths are file system paths (``str`` with surrogateescape, or ``Path``);
        the store and the report get each one's text (``loaders.paths``)."""
        roots = [os.fspath(p) for p in paths]
        report = LoadReport(store=self.store.where)
        started = time.perf_counter()
        self._trusted_before = time.time_ns() - TRUST_NS
        rebuilt: int | None = None
        self.progress.start()
        try:
            # Under the lease from the start: the snapshot decides which files
            # are skipped, so it must be as new as what the store holds.
            stored = self._hold()
            self.progress.loading()
            stored.start_run()
            with Parser(self.settings.load_workers) as parser:
                self._load_files(discover(roots), stored, parser, report, on_file)
                self._settle(stored, parser, report)
            self._delete(stored.spared_ghosts(), report, "its file now names another")
            pruned = [path_text(p) for p in ([*roots, *gone] if prune else gone)]
            if pruned:
                self._delete(stored.orphans(pruned), report, "its file is gone")
            if self._log.crowded:
                self._rewrite_manifest()
            if report.inserted or report.updated or report.deleted or self._stale_facets:
                self._hold()
                moved = retrying(
                    self.store.where,
                    "rebuilding the provider and topic counts",
                    lambda: rebuild_facets(self.store, stored.facets(), self._purger is not None),
                )
                self._purge(k for c, key in moved for k in row_purge(FACET_TYPES[c], key))
                rebuilt, self._stale_facets = self._generation, False
            elif self._wrote and self._lease.held:
                # Only the manifest was written: the counts stand, at the new
                # generation (else the next loader takes this run for a crash).
                rebuilt = self._generation
        except (StoreUnavailable, LeaseError) as exc:
            report.aborted = (
                f"{exc} Files written so far stay written; run the load again to finish."
            )
        except _Stopped:
            report.aborted = stopped()
        finally:
            self._lease.release(facets=rebuilt)
            report.seconds = time.perf_counter() - started
            self.progress.finish(report)
        return report

    def _hold(self, write: bool = False) -> Stored:
        """Hold the lease, with a snapshot of what the store holds now; with
        ``write``, having told other loaders that this one writes.

        Costs a round trip only on taking the lease, on the first write of a
        holding, and to renew it (every third of ``loader_lease_s``)."""
        lease = self._lease
        if lease.held and lease.due():
            self._catch_up(lease.renew())
        if not lease.held:
            self._wrote = False
            holding = lease.acquire()
            # Counts behind the generation: a loader wrote and stopped before
            # it finished, maybe between writing articles and the manifest.
            self._stale_facets = holding.facets != holding.generation
            if self._stored is None:
                self.store.ensure_indexes()
                self._stored = Stored()
                self._read_snapshot(holding)
            elif self._stale_facets:
                self._read_snapshot(holding)
            else:
                self._catch_up(holding)
        if write and not self._wrote:
            self._bump()
        assert self._stored is not None
        return self._stored

    def _bump(self) -> None:
        """Tell other loaders this one writes (they read the manifest again)."""
        self._generation = self._lease.renew(bump=True).generation
        self._wrote = True
        self._batches = 0

    def _catch_up(self, holding: Holding) -> None:
        """Read the store again if another loader wrote since the snapshot."""
        if holding.generation != self._generation:
            log.info("another loader wrote to the store; reading what it holds again")
            self._read_snapshot(holding)

    def _read_snapshot(self, holding: Holding) -> None:
        """Read the snapshot from the manifest; from the articles, rebuilding
        the manifest, if there is none or a loader may have stopped between
        writing articles and their manifest rows."""
        assert self._stored is not None
        self._generation = holding.generation
        if not self._stale_facets and self._stored.read_manifest(self.store, self._log):
            return
        log.info("reading every stored article to rebuild the loader's manifest")
        self._stored.refresh(self.store, keep=self._keep)
        self._rewrite_manifest()
        self._stale_facets = True  # the generation moved: counts are rebuilt and marked

    def _rewrite_manifest(self) -> None:
        """Write the snapshot as the manifest, packed (see ``loaders.manifest``)."""
        stored = self._hold(write=True)
        retrying(
            self.store.where,
            "writing the loader's manifest",
            lambda: self._log.rewrite(stored.manifest()),
        )

    def _keep(self) -> None:
        """Keep the lease through a long scan."""
        if self._lease.held and self._lease.due():
            self._lease.renew()

    def _delete(self, articles: Iterable[tuple[str, str]], report: LoadReport, why: str) -> None:
        """Delete ``articles`` (``(_id, path)``), for the reason ``why`` (their
        file is gone, or names another article now)."""
        articles = iter(articles)
        while chunk := list(itertools.islice(articles, self.settings.batch_size)):
            ids = [_id for _id, _ in chunk]
            stored = self._hold(write=True)

            def delete(ids: list[str] = ids) -> None:
                self.store.articles.delete_many({"_id": {"$in": ids}})
                self._log.append([[_id] for _id in ids])
                announce(self.store, 0)  # a change, never news

            retrying(self.store.where, "deleting articles", delete)
            self._purge(gone_keys(stored, ids) if self._purger else ())
            for _id, path in chunk:
                log.info("deleted %s: %s (%s)", _id, why, path)
                stored.bury(_id)
            report.deleted += len(chunk)

    def _load_files(
        self,
        files: Iterator[Found],
        stored: Stored,
        parser: Parser,
        report: LoadReport,
        on_file: OnFile | None,
    ) -> None:
        """Load ``files`` in batches, each settled in load order."""
        # Batches in flight: parsing in worker processes while the oldest is written.
        in_flight: deque[tuple[list[Entry], Parsing]] = deque()
        while batch := list(itertools.islice(files, self.settings.batch_size)):
            if self._stop is not None and self._stop.is_set():
                # Before reading more; the batches read ahead are not written
                # (closing the parse pool cancels what has not started).
                raise _Stopped
            named = [(found, path_text(found.path)) for found in batch]
            stored.saw(name for _, name in named)
            in_flight.append(self._start_batch(named, stored, parser))
            if len(in_flight) >= parser.depth:
                self._finish_batch(*in_flight.popleft(), stored, report, on_file)
        while in_flight:
            self._finish_batch(*in_flight.popleft(), stored, report, on_file)

    def _settle(self, stored: Stored, parser: Parser, report: LoadReport) -> None:
        """Load the files put off until the end of the run (see :meth:`_holder`):
        read again, each is resolved now that the files before it are. A round
        reads first the files that hold an id another file wants and that the
        run did not read (outside its paths: a watcher's batch is the files
        that changed), then the files put off. A file put off again waits for
        the next round; the last round puts none off."""
        try:
            for rounds in range(1, _SETTLE_ROUNDS + 1):
                later = stored.take_later()
                if not later:
                    return
                self._settling, self._final = True, rounds == _SETTLE_ROUNDS
                files = (
                    Found(Path(path_of(path)), _stat(path_of(path)))
                    for path, pulled in later
                    if not (pulled and stored.named(path) is not None)  # read meanwhile
                )
                self._load_files(files, stored, parser, report, None)
        finally:
            self._settling = self._final = False

    def _start_batch(
        self, batch: list[tuple[Found, str]], stored: Stored, parser: Parser
    ) -> tuple[list[Entry], Parsing]:
        """Read and hash a batch's files and start parsing those whose content
        is not stored. What each file turns out to be is settled in order by
        :meth:`_finish_batch`."""
        entries: list[Entry] = []
        to_parse: list[Item] = []
        for (path, found_stat), name in batch:
            # Untouched since its stored content was checked: not read. (A
            # stat is recorded only when trusted, so a match is trusted.)
            st = regular_stat(found_stat)
            untouched = None if st is None else stored.unchanged(name, st)
            if untouched is not None:
                entries.append((path, name, untouched, None, None))
                continue
            try:
                data, st = read_file_stat(path, self.settings.max_file_bytes)
            except Rejected as exc:
                entries.append((path, name, Failure(name, exc.reason, exc.line), None, None))
                continue
            except Skipped as skip:
                entries.append((path, name, skip, None, None))
                continue
            digest = content_hash(data)
            known = stored.find(digest)
            if known is None:
                to_parse.append((data, name, digest))
            trusted = st if max(st[1], st[2]) < self._trusted_before else None
            entries.append((path, name, known, digest, trusted))
        return entries, parser.submit(to_parse)

    def _finish_batch(
        self,
        entries: list[Entry],
        parsed: Parsing,
        stored: Stored,
        report: LoadReport,
        on_file: OnFile | None,
    ) -> None:
        outcomes = iter(parsed.result())
        self.progress.files(len(entries))
        docs: list[dict[str, Any]] = []
        stats: list[Stat | None] = []  # of each of docs' files
        moved: list[tuple[str, str]] = []
        #: (_id, content hash, path, stat) of unchanged files whose manifest
        #: row changes: moved, or with a new stat (touched, or first checked).
        rechecked: list[tuple[str, str, str, Stat | None]] = []
        #: Paths of the unchanged files that took their article.
        kept: list[str] = []
        for path, name, state, digest, st in entries:
            _tick(on_file, path)
            if isinstance(state, Failure):
                report.failures.append(state)
                stored.name(name, None)
            elif isinstance(state, Skipped):
                report.skips.append(Failure(name, state.reason))
                stored.name(name, None)
            elif state is not None:  # content already stored
                _id, stored_path = state
                now = stored.get(_id) if digest else None
                if digest and (now is None or now[0] != digest):
                    # Since the batch was read, an earlier one of this run deleted
                    # the article (it had become a ghost) or rewrote it: read again.
                    stored.defer(name)
                    continue
                stored_path = stored_path if now is None else now[1]
                if self._take(stored, _id, name, report, stored_path):
                    report.unchanged += 1
                    kept.append(name)
                    if stored_path != name:
                        moved.append((_id, name))
                    if digest and (stored_path != name or st not in (None, stored.stat(_id))):
                        rechecked.append((_id, digest, name, st))
            else:
                match next(outcomes):
                    case Parsed(doc):
                        if self._take(stored, doc["_id"], name, report):
                            docs.append(doc)
                            stats.append(st)
                    case Rejection(reason, line):
                        report.failures.append(Failure(name, reason, line))
                        stored.name(name, None)
                    case Crashed(reason):
                        log.error("unexpected error parsing %s: %s", name, reason)
                        report.failures.append(Failure(name, reason))
                        stored.name(name, None)

        # Articles left at these paths that no file names any more: deleted
        # in this batch, once the files that replace them are written. A
        # written file's path is also looked for as the other loaders' spell
        # it (absolute, or relative to here: a watcher's, a load's).
        parsed_paths = [doc["_source"]["path"] for doc in docs]
        cwd = os.getcwd()
        spelled = {other: p for p in parsed_paths for other in _spellings(p, cwd) if other != p}
        took = [*kept, *parsed_paths, *spelled]
        ghosts = stored.ghosts(took) if took else []
        if docs or rechecked or ghosts:
            self._hold(write=True)  # may re-read ``stored`` in place
            ghosts = stored.ghosts(took) if ghosts else []
        news = 0  # the number of this write, if it makes any article news
        if docs:
            self._batches += 1
            seq = sequence(self._generation, self._batches)
            news = seq if stamp(docs, stored, seq) else 0

        def write() -> tuple[BatchResult, list[Row], list[tuple[str, str]]]:
            result = write_batch(self.store, docs, stored, moved)
            rows: list[Row] = [
                (
                    doc["_id"],
                    doc["_source"]["hash"],
                    doc["_source"]["path"],
                    facets_of(doc),
                    st,
                    doc["_source"]["newsSeq"],
                )
                for doc, st in ((docs[i], stats[i]) for i in result.inserted + result.updated)
            ]
            for _id, digest, path, st in rechecked:
                known, before = stored.get(_id), stored.news(_id)
                if known is None or before is None or known[0] != digest:
                    continue  # deleted or changed by another loader since it was read
                rows.append((_id, digest, path, known[2], st, before[1]))
            # A file whose document the store refused keeps its old article.
            written = set(kept).union(row[2] for row in rows)
            dead = [(_id, path) for _id, path in ghosts if spelled.get(path, path) in written]
            if dead:  # before the marker: a reader told of news finds no ghost
                self.store.articles.delete_many({"_id": {"$in": [_id for _id, _ in dead]}})
            # After the articles: a crash between the two is caught (see _hold).
            self._log.append([manifest_row(row) for row in rows] + [[_id] for _id, _ in dead])
            # After the articles too: readers fetch up to the marker, and read
            # again when its count of changes moves. Only if something was
            # written: not on a reload of unchanged files, nor for news whose
            # every document the store refused.
            if result.inserted or result.updated or moved or dead:
                announce(self.store, news)
            return result, rows, dead

        # What clients saw of these articles, read before they change.
        before = Before.read(self.store, docs, stored) if self._purger else None
        # Again from the start if the connection drops: a document the first
        # try inserted is then replaced (write_batch takes it as raced).
        result, rows, dead = retrying(self.store.where, "writing a batch", write)
        if before is not None:
            self._purge(before.written(docs, result) + gone_keys(stored, [i for i, _ in dead]))
        report.inserted += len(result.inserted)
        report.updated += len(result.updated)
        self.progress.wrote(len(result.inserted) + len(result.updated))
        for index, reason in result.failed.items():
            report.failures.append(Failure(docs[index]["_source"]["path"], reason))
        stored.record_many(rows)
        for _id, ghost_path in dead:
            log.info("deleted %s: its file %s now names another article", _id, ghost_path)
            stored.bury(_id)
        report.deleted += len(dead)

    def _purge(self, keys: Iterable[str]) -> None:
        if self._purger is not None:
            self._purger.purge(keys)

    def _take(
        self, stored: Stored, _id: str, path: str, report: LoadReport, at: str | None = None
    ) -> bool:
        """Whether the file at ``path`` takes the article ``_id`` its content
        names (it is then written, or kept if unchanged). If not, the file is
        reported as a duplicate or put off until the end of the run, and its
        stored article, if any, is kept.

        A file stored under ``_id`` keeps it while it still names it, wherever
        the two come in load order: another file naming it is a duplicate.
        Of files naming an id that no existing file holds, the first in load
        order takes it. ``at`` is where the article is stored, if known."""
        winner = stored.taker(_id)
        if winner is not None and winner != path:
            if self._settling:
                reason = (
                    f"same webUrl as {winner}, which holds it in this run; this file was "
                    "not written (its own stored article, if any, is kept)"
                )
            else:
                reason = (
                    f"same webUrl as {winner}, which was loaded in this run "
                    "(the first file in load order wins); this file was not written"
                )
            return _duplicate(stored, _id, path, report, reason)
        at = at or stored.path(_id)
        holder = None if at is None or at == path else at
        if holder is not None:
            verdict = self._holder(stored, _id, path, holder)
            if verdict == _DEFER:
                stored.name(path, _id)
                stored.defer(holder, pulled=True)  # if the run does not read it anyway
                stored.defer(path)
                return False
            if verdict is not None:
                return _duplicate(stored, _id, path, report, verdict)
        stored.name(path, _id, took=True)
        return True

    def _holder(self, stored: Stored, _id: str, path: str, holder: str) -> str | None:
        """What becomes of the file at ``path`` that names ``_id``, stored from
        the file at ``holder``: None, it takes the article (the holder names
        another now, or is gone); :data:`_DEFER`, put off until the holder is
        resolved; else why it is a duplicate (the holder keeps the article)."""
        found = stored.named(holder)
        if found is not None and found[0] is not None:
            if found[0] != _id:
                return None  # the holder names another article now
            return f"same webUrl as {holder}, which holds it; this file was not written"
        if not _other_file(holder, path):
            return None  # gone (or this very file, reached by another name): moved
        if found is not None:
            return (
                f"same webUrl as {holder}, which holds it and failed to load in this run; "
                "this file was not written (its own stored article, if any, is kept)"
            )
        if self._final:
            return (
                f"same webUrl as {holder}, which holds it and could not be read in this "
                "run; this file was not written (its own stored article, if any, is kept)"
            )
        return _DEFER


def _duplicate(stored: Stored, _id: str, path: str, report: LoadReport, reason: str) -> bool:
    """Report the file at ``path`` as a duplicate of another naming ``_id``."""
    stored.name(path, _id)
    report.failures.append(Failure(path, reason))
    return False


def _other_file(holder: str, path: str) -> bool:
    """Whether a file exists at ``holder`` and is not the one at ``path``."""
    held = _stat(path_of(holder))
    if held is None:
        return False
    this = _stat(path_of(path))
    return this is None or (held.st_dev, held.st_ino) != (this.st_dev, this.st_ino)


def _spellings(text: str, cwd: str) -> set[str]:
    """A path's text, and that of the same path spelled absolute and
    relative to the working directory ``cwd``."""
    absolute = os.path.join(cwd, path_of(text))
    absolute = os.path.normpath(absolute)  # as os.path.abspath spells it
    spelled = {text, path_text(absolute)}
    under = cwd if cwd.endswith(os.sep) else cwd + os.sep
    if absolute.startswith(under):  # what os.path.relpath says, without its walk
        spelled.add(path_text(absolute[len(under) :]))
    else:
        with contextlib.suppress(ValueError):
            spelled.add(path_text(os.path.relpath(absolute, cwd)))
    return spelled


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _tick(on_file: OnFile | None, path: Path) -> None:
    if on_file is not None:
        on_file(path)
