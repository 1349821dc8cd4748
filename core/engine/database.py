"""The engine's pymongo-shaped client, databases, collections and cursors.

One SQLite file per database, in WAL mode: readers never wait for a writer,
and another process (``newsgraph load --watch`` beside ``newsgraph serve``)
may write while this one reads. Each collection is a table of BSON documents
(``rid``, encoded ``_id``, document) and each declared index a table of
entries ``(key, rid)`` kept in the same transaction as the document, so a
crash leaves both or neither. Each thread has its own connection (SQLite's
connections are not shared), and SQLite runs outside the GIL, so store calls
run in worker threads side by side and the event loop keeps answering. A
thread may also read *quickly* (:meth:`Database.quickly`): never waiting for
anything, within a bound of its own CPU; the API's event loop answers its
small reads so, with no thread hop.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import bson
import pymongo
from bson import ObjectId
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    WriteError,
)
from pymongo.results import (
    BulkWriteResult,
    DeleteResult,
    InsertManyResult,
    InsertOneResult,
    UpdateResult,
)

from core.engine import documents, keys, plan
from core.engine.documents import matches, normalized, project

#: How long a writer waits for another's transaction before giving up (ms).
BUSY_TIMEOUT_MS = 60_000
#: Page cache per connection (KiB): each store thread has one.
CACHE_KIB = 8_192
#: The layout of the files (keys, tables) this code reads and writes; a file
#: of another is refused rather than misread.
FORMAT = 1
#: Bytes per page of a new file.
PAGE_SIZE = 16384
#: Documents a walk reads per statement, at most.
MAX_CHUNK = 1024
#: Code of MongoDB's refusal of a query no index serves under notablescan.
NO_QUERY_PLAN = 291
_DUPLICATE = 11000
NO_FORMAT = 2

Doc = dict[str, Any]
SortSpec = list[tuple[str, int]]


class Busy(Exception):
    """A quick read (:meth:`Database.quickly`) could not start at once: its
    thread has no quick connection yet, every query slot is taken, or the
    file is locked. Nothing was read: ask again the ordinary way."""


class Unopened(Busy):
    """This thread has no quick connection (:meth:`Database.open_quick`)."""


class LockTimeout(NetworkTimeout):
    """Another connection held the file's write lock for as long as this
    thread's writes may wait for it (:meth:`Database.writes_wait_until`).
    Nothing was written. It is a ``NetworkTimeout`` because it is what a
    server that does not answer within the socket timeout is on the wire:
    the store not answering, not a failed operation (``core.store.is_outage``)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS _collections (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _indexes (
    collection TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL,
    is_unique INTEGER NOT NULL, multikey TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (collection, name)
) WITHOUT ROWID;
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _docs_table(collection: str) -> str:
    return _quote(f"d:{collection}")


def _index_table(collection: str, index: str) -> str:
    return _quote(f"x:{collection}:{index}")


class Client:
    """Databases in one folder, a file each."""

    def __init__(
        self, folder: str, strict: bool = False, durable: bool = True, readers: int = 0
    ) -> None:
        self.folder = folder
        self.strict = strict
        self.durable = durable
        # Queries running at once in this process, two per CPU by default: SQLite
        # runs outside the GIL, but decoding and matching do not, and more
        # threads than that only take the GIL from the event loop (a server's
        # /healthz answers later) without answering sooner. Others wait here,
        # blocked, without contending.
        self.running = threading.BoundedSemaphore(readers or 2 * (os.cpu_count() or 1))
        self._databases: dict[str, Database] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Database:
        with self._lock:
            if name not in self._databases:
                self._databases[name] = Database(self, name)
            return self._databases[name]

    def get_database(self, name: str) -> Database:
        return self[name]

    def drop_database(self, name: str | Database) -> None:
        name = name.name if isinstance(name, Database) else name
        with self._lock:
            database = self._databases.pop(name, None)
        if database is not None:
            database.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.folder, f"{name}.sqlite3{suffix}"))

    def server_info(self) -> dict[str, Any]:
        return {"version": "embedded", "sqlite": sqlite3.sqlite_version, "ok": 1.0}

    def close(self) -> None:
        with self._lock:
            databases = list(self._databases.values())
            self._databases.clear()
        for database in databases:
            database.close()


class Database:
    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self.path = os.path.join(client.folder, f"{name}.sqlite3")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._collections: dict[str, Collection] = {}
        #: Each thread's connection for quick reads, by thread id (:meth:`quickly`).
        self._quick: dict[int, _Quick] = {}

    def __getitem__(self, name: str) -> Collection:
        with self._lock:
            if name not in self._collections:
                self._collections[name] = Collection(self, name)
            return self._collections[name]

    def get_collection(self, name: str) -> Collection:
        return self[name]

    def __getattr__(self, name: str) -> Collection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def command(self, command: str | Mapping[str, Any], **_: Any) -> dict[str, Any]:
        name = command if isinstance(command, str) else next(iter(command))
        if name == "ping":
            self.connection().execute("SELECT 1 FROM _collections LIMIT 1").fetchall()
            return {"ok": 1.0}
        raise OperationFailure(f"the embedded engine has no command {name!r}", 59)

    def list_collection_names(self) -> list[str]:
        rows = self.connection().execute("SELECT name FROM _collections").fetchall()
        return [r[0] for r in rows]

    def drop_collection(self, name: str) -> None:
        self[name].drop()

    # -- connections ---------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema made) on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self._local.meta = None
            self._local.estimates = {}
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        """A new connection to the file (made first if new)."""
        os.makedirs(self.client.folder, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        sync = "NORMAL" if self.client.durable else "OFF"
        conn.executescript(
            f"PRAGMA synchronous = {sync}; PRAGMA cache_size = -{CACHE_KIB};"
            f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
        )
        # Only a new file is changed (WAL is a property of the file, kept):
        # another connection opening must not wait behind a writer.
        _to_wal(conn)
        made = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('_collections', '_indexes')"
        ).fetchone()[0]
        if made < 2:
            with _write(conn, self):
                for statement in _SCHEMA.split(";"):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {FORMAT}")
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found != FORMAT:
            conn.close()
            raise OperationFailure(
                f"{self.path} holds data in layout {found} of the embedded engine, and "
                f"this newsgraph reads layout {FORMAT}: load the articles again into "
                "another NEWSGRAPH_DATA_DIR (or remove the file)",
                NO_FORMAT,
            )
        return conn

    def open_quick(self, thread: int) -> None:
        """Open the connection that thread ``thread``'s quick reads use
        (:meth:`quickly`). In any thread, and best in another than that one:
        opening a file may wait for it (a new file's schema, its journal mode)."""
        if thread in self._quick:
            return
        conn = self._open()
        # Opened with the usual busy timeout (a new file's schema is written
        # above); from here on a locked file fails a quick read at once (Busy)
        # instead of making its thread wait.
        conn.execute("PRAGMA busy_timeout = 0")
        with self._lock:
            if thread in self._quick:
                conn.close()
                return
            self._quick[thread] = _Quick(conn)
            self._connections.append(conn)

    def quickly(self, cpu_ms: float) -> _Quickly:
        """Reads in this thread that never wait: on the thread's quick
        connection (busy timeout 0, its own catalog cache), taking a query
        slot (``Client.running``) only if one is free. Whatever would wait
        raises :class:`Busy` instead. Together they stop (``ExecutionTimeout``)
        once this thread spent ``cpu_ms`` of CPU on them, or at their
        ``max_time_ms``, which bounds what the CPU clock does not see: the
        GIL waited for, the disk. SQLite's own waits inside a read (a WAL read
        lock retried while a checkpoint moves it) are short and not bounded here.

        ``with db.quickly(ms) as started``: ``started`` is the thread's CPU
        time when the reads began (``time.thread_time()``), for a caller that
        asks how much of the bound they used."""
        quick = self._quick.get(threading.get_ident())
        if quick is None:
            raise Unopened("this thread has no quick connection")
        return _Quickly(self._local, quick, cpu_ms)

    @contextlib.contextmanager
    def writes_wait_until(self, until: float) -> Iterator[None]:
        """Writes in this thread wait for another connection's write lock until
        ``until`` (``time.monotonic``) at most, instead of
        :data:`BUSY_TIMEOUT_MS`, then raise :class:`LockTimeout`. For a
        request's writes (the API's: ``api.data.gateway``), whose thread
        must come back by its deadline; a loader's keep the long wait."""
        local = self._local
        saved = getattr(local, "lock_until", None)
        local.lock_until = until
        try:
            yield
        finally:
            local.lock_until = saved

    def meta(self) -> dict[str, dict[str, plan.Index]]:
        """Collections and their indexes, as this thread's connection last read
        them; read again when another connection committed since."""
        conn = self.connection()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        cached = self._local.meta
        if cached is not None and cached[0] == version:
            meta: dict[str, dict[str, plan.Index]] = cached[1]
            return meta
        self._local.estimates = {}
        meta = {name: {} for (name,) in conn.execute("SELECT name FROM _collections")}
        for collection, name, fields, unique, multikey in conn.execute(
            "SELECT collection, name, fields, is_unique, multikey FROM _indexes"
        ):
            meta.setdefault(collection, {})[name] = plan.Index(
                name,
                _index_table(collection, name),
                tuple((f, int(d)) for f, d in json.loads(fields)),
                bool(unique),
                frozenset(json.loads(multikey)),
            )
        self._local.meta = (version, meta)
        return meta

    def forget_meta(self) -> None:
        """This connection changed the catalog: its own commits do not move
        ``data_version``."""
        self._local.meta = None

    def estimates(self) -> dict[tuple[Any, ...], int]:
        """Range sizes counted since the data last changed (read after
        :meth:`meta`, which starts them afresh when another connection wrote).
        Only plans are chosen by them: one out of date costs time, not answers."""
        found: dict[tuple[Any, ...], int] = self._local.estimates
        return found

    def wrote(self) -> None:
        """This connection committed: its counts may be out of date."""
        self._local.estimates = {}

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
        self._quick = {}


class _Quickly:
    """:meth:`Database.quickly`'s context. A class, not a
    ``contextlib.contextmanager``: the event loop's small reads enter one each
    (most requests on the embedded engine), and a generator's context manager
    costs several thousand instructions more. It reads the thread's CPU clock
    once, a system call (``CLOCK_THREAD_CPUTIME_ID`` has no vDSO), and hands
    that reading to the caller, which would otherwise make its own."""

    __slots__ = ("cpu_ms", "local", "quick", "saved")

    def __init__(self, local: threading.local, quick: _Quick, cpu_ms: float) -> None:
        self.local = local
        self.quick = quick
        self.cpu_ms = cpu_ms

    def __enter__(self) -> float:
        local, quick = self.local, self.quick
        self.saved = (
            getattr(local, "conn", None),
            getattr(local, "meta", None),
            getattr(local, "estimates", {}),
        )
        local.conn, local.meta, local.estimates = quick.conn, quick.meta, quick.estimates
        started = time.thread_time()
        local.quick = started + self.cpu_ms / 1000
        return started

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        local, quick = self.local, self.quick
        local.quick = None
        quick.meta, quick.estimates = local.meta, local.estimates
        local.conn, local.meta, local.estimates = self.saved
        if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode & 0xFF in (
            sqlite3.SQLITE_BUSY,
            sqlite3.SQLITE_LOCKED,
        ):
            raise Busy(str(exc)) from None


class _Quick:
    """One thread's quick connection and its catalog caches (as
    :meth:`Database.meta` keeps them per connection: ``data_version`` is one
    connection's)."""

    __slots__ = ("conn", "estimates", "meta")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.meta: Any = None
        self.estimates: dict[tuple[Any, ...], int] = {}


def _to_wal(conn: sqlite3.Connection) -> None:
    """Make a new file's journal WAL. Two processes or threads opening one new
    file at once both try; changing the journal mode takes the file alone, and
    SQLite does not wait for that (its busy timeout is not used): the one that
    finds it taken tries again, and then finds it done."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # a new file's only
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def _write(conn: sqlite3.Connection, database: Database) -> Iterator[None]:
    """One write transaction (nested calls join the outer one). A rollback
    forgets the catalog read within it."""
    if conn.in_transaction:
        yield
        return
    until = getattr(database._local, "lock_until", None)
    if until is None:
        conn.execute("BEGIN IMMEDIATE")
    else:
        _begin_by(conn, database, until)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        database.forget_meta()
        raise
    conn.execute("COMMIT")
    database.wrote()


def _begin_by(conn: sqlite3.Connection, database: Database, until: float) -> None:
    """``BEGIN IMMEDIATE``, waiting for another connection's write lock no
    later than ``until``. SQLite's busy wait sleeps in its own C code, where
    the progress handler (``_deadline``) is never called: only the busy
    timeout ends it, so it is set for this wait and put back after."""
    wait_ms = max(0, int((until - time.monotonic()) * 1000))
    usual = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
            raise
        raise LockTimeout(
            f"another connection held the write lock of {database.path} for the whole "
            f"{wait_ms} ms this write could wait (a load writing a large batch?)"
        ) from None
    finally:
        conn.execute(f"PRAGMA busy_timeout = {usual}")


@contextlib.contextmanager
def _read(conn: sqlite3.Connection) -> Iterator[None]:
    """One snapshot for a whole query (plan and walk)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


@contextlib.contextmanager
def _savepoint(conn: sqlite3.Connection, database: Database) -> Iterator[None]:
    conn.execute("SAVEPOINT op")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        database.forget_meta()
        raise
    conn.execute("RELEASE op")


class _Limit:
    """When a query must stop: past ``until`` on the monotonic clock (its
    ``maxTimeMS``), or, for a quick read (:meth:`Database.quickly`), once its
    thread's CPU clock passes ``cpu_until``: a quick read is bounded by the
    work it does itself, not by the time its thread waits for the GIL while
    other threads hold it (which any code of that thread would wait)."""

    __slots__ = ("cpu_until", "until")

    def __init__(self, until: float, cpu_until: float | None) -> None:
        self.until = until
        self.cpu_until = cpu_until

    def passed(self) -> bool:
        if time.monotonic() > self.until:
            return True
        return self.cpu_until is not None and time.thread_time() > self.cpu_until


@contextlib.contextmanager
def _deadline(
    conn: sqlite3.Connection, max_time_ms: int | None, cpu_until: float | None = None
) -> Iterator[_Limit | None]:
    """Stop SQLite's work at ``max_time_ms`` (as ``maxTimeMS`` does a
    server's), or, for a quick read, at ``cpu_until`` on its thread's CPU clock."""
    if not max_time_ms:
        yield None
        return
    limit = _Limit(time.monotonic() + max_time_ms / 1000, cpu_until)
    conn.set_progress_handler(lambda: 1 if limit.passed() else 0, 10_000)
    try:
        yield limit
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise ExecutionTimeout("operation exceeded time limit", 50) from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


@contextlib.contextmanager
def _turn(client: Client, max_time_ms: int | None, wait: bool = True) -> Iterator[None]:
    """One of the client's query slots, waited for no longer than the query
    may take; not waited for at all unless ``wait`` (a quick read: :class:`Busy`)."""
    if not wait:
        if not client.running.acquire(blocking=False):
            raise Busy("every query slot is taken")
    elif not client.running.acquire(timeout=max_time_ms / 1000 if max_time_ms else None):
        raise ExecutionTimeout("operation exceeded time limit waiting for its turn", 50)
    try:
        yield
    finally:
        client.running.release()


def _check(until: _Limit | None) -> None:
    if until is not None and until.passed():
        raise ExecutionTimeout("operation exceeded time limit", 50)


#: Documents a walk reads before deciding whether its semijoins pay.
_TRIAL = 32


@dataclass
class _Tally:
    """What a walk's documents turned out to be, so far."""

    walked: int = 0
    matched: int = 0

    def selective(self) -> bool:
        """Whether so few match (or none were read yet) that narrowing may pay."""
        return self.walked < _TRIAL or self.matched * 8 < self.walked


@dataclass
class Query:
    filter: Doc
    projection: dict[str, Any] | None = None
    sort: SortSpec | None = None
    limit: int = 0
    skip: int = 0
    max_time_ms: int | None = None


class Collection:
    def __init__(self, database: Database, name: str) -> None:
        self.database = database
        self.name = name
        self.full_name = f"{database.name}.{name}"
        self._docs = _docs_table(name)

    # -- catalog -------------------------------------------------------------

    def _indexes(self, conn: sqlite3.Connection) -> dict[str, plan.Index] | None:
        return self.database.meta().get(self.name)

    def _ensure(self, conn: sqlite3.Connection) -> dict[str, plan.Index]:
        """The collection's indexes; the collection made first if missing
        (inside the caller's write transaction)."""
        found = self._indexes(conn)
        if found is not None:
            return found
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self._docs} ("
            "rid INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, doc BLOB NOT NULL)"
        )
        conn.execute("INSERT OR IGNORE INTO _collections VALUES (?)", (self.name,))
        self.database.forget_meta()
        return self._indexes(conn) or {}

    def create_indexes(self, models: list[pymongo.IndexModel]) -> list[str]:
        names = []
        for model in models:
            spec = model.document
            names.append(self._create(list(spec["key"].items()), spec["name"], spec))
        return names

    def create_index(self, keys_: Any, **options: Any) -> str:
        model = pymongo.IndexModel(keys_, **options)
        return self.create_indexes([model])[0]

    def _create(self, fields: list[tuple[str, Any]], name: str, spec: Mapping[str, Any]) -> str:
        for option in ("sparse", "partialFilterExpression", "expireAfterSeconds", "collation"):
            if option in spec:
                raise OperationFailure(f"the embedded engine has no index option {option!r}", 67)
        if any(d not in (1, -1) for _, d in fields):
            raise OperationFailure("the embedded engine's indexes are ascending or descending", 67)
        conn = self.database.connection()
        with _write(conn, self.database):
            indexes = self._ensure(conn)
            if name in indexes:
                return name
            unique = bool(spec.get("unique"))
            index = plan.Index(
                name, _index_table(self.name, name), tuple((f, int(d)) for f, d in fields), unique
            )
            conn.execute(
                f"CREATE TABLE {index.table} (key BLOB PRIMARY KEY, rid INTEGER NOT NULL)"
                " WITHOUT ROWID"
            )
            multikey: set[str] = set()
            for rid, raw in conn.execute(f"SELECT rid, doc FROM {self._docs}").fetchall():
                multikey |= self._add_entries(conn, index, rid, bson.decode(raw))
            conn.execute(
                "INSERT INTO _indexes VALUES (?, ?, ?, ?, ?)",
                (self.name, name, json.dumps(fields), int(unique), json.dumps(sorted(multikey))),
            )
            self.database.forget_meta()
        return name

    def index_information(self) -> dict[str, Any]:
        info: dict[str, Any] = {"_id_": {"key": [("_id", 1)], "v": 2}}
        for name, index in (self._indexes(self.database.connection()) or {}).items():
            info[name] = {"key": list(index.fields), "v": 2}
            if index.unique:
                info[name]["unique"] = True
        return info

    def list_indexes(self) -> list[dict[str, Any]]:
        return [{"name": name, **spec} for name, spec in self.index_information().items()]

    def drop_index(self, name: str) -> None:
        conn = self.database.connection()
        with _write(conn, self.database):
            indexes = self._indexes(conn) or {}
            if name not in indexes:
                raise OperationFailure(f"index not found with name [{name}]", 27)
            conn.execute(f"DROP TABLE {indexes[name].table}")
            conn.execute(
                "DELETE FROM _indexes WHERE collection = ? AND name = ?", (self.name, name)
            )
            self.database.forget_meta()

    def drop(self) -> None:
        conn = self.database.connection()
        with _write(conn, self.database):
            for index in (self._indexes(conn) or {}).values():
                conn.execute(f"DROP TABLE IF EXISTS {index.table}")
            conn.execute(f"DROP TABLE IF EXISTS {self._docs}")
            conn.execute("DELETE FROM _indexes WHERE collection = ?", (self.name,))
            conn.execute("DELETE FROM _collections WHERE name = ?", (self.name,))
            self.database.forget_meta()

    # -- index entries ---------------------------------------------------------

    def _add_entries(
        self, conn: sqlite3.Connection, index: plan.Index, rid: int, doc: Doc
    ) -> set[str]:
        found, multikey = documents.entries(doc, index.fields, index.unique)
        try:
            conn.executemany(
                f"INSERT INTO {index.table} VALUES (?, ?)", [(key, rid) for key in found]
            )
        except sqlite3.IntegrityError:
            raise _duplicate(self, index, doc) from None
        return multikey

    def _index_doc(self, conn: sqlite3.Connection, rid: int, doc: Doc) -> None:
        indexes = self._indexes(conn) or {}
        for index in indexes.values():
            multikey = self._add_entries(conn, index, rid, doc)
            if not multikey <= index.multikey:
                self._mark_multikey(conn, index, multikey)

    def _mark_multikey(self, conn: sqlite3.Connection, index: plan.Index, fields: set[str]) -> None:
        marked = sorted(index.multikey | fields)
        conn.execute(
            "UPDATE _indexes SET multikey = ? WHERE collection = ? AND name = ?",
            (json.dumps(marked), self.name, index.name),
        )
        self.database.forget_meta()

    def _unindex_doc(self, conn: sqlite3.Connection, doc: Doc) -> None:
        for index in (self._indexes(conn) or {}).values():
            found, _ = documents.entries(doc, index.fields, index.unique)
            conn.executemany(f"DELETE FROM {index.table} WHERE key = ?", [(k,) for k in found])

    # -- writes: one document -------------------------------------------------

    def _insert(self, conn: sqlite3.Connection, doc: Doc) -> Any:
        if "_id" not in doc:
            doc["_id"] = ObjectId()
        stored = doc if next(iter(doc)) == "_id" else {"_id": doc["_id"], **doc}
        raw = bson.encode(stored)
        self._ensure(conn)
        with _savepoint(conn, self.database):
            try:
                rid = conn.execute(
                    f"INSERT INTO {self._docs} (id, doc) VALUES (?, ?)",
                    (keys.encode(stored["_id"]), raw),
                ).lastrowid
            except sqlite3.IntegrityError:
                raise DuplicateKeyError(
                    f"E11000 duplicate key error collection: {self.full_name} index: _id_ "
                    f"dup key: {{ _id: {stored['_id']!r} }}",
                    _DUPLICATE,
                ) from None
            assert rid is not None
            self._index_doc(conn, rid, bson.decode(raw))
        return stored["_id"]

    def _insert_run(self, conn: sqlite3.Connection, docs: list[Doc]) -> bool:
        """Insert ``docs`` with one statement per table; False (and nothing
        written) if one is refused, for the caller to insert them one by one
        and learn which: the common case, a batch of new articles, costs a
        few statements instead of one per document and index."""
        stored = []
        for doc in docs:
            if "_id" not in doc:
                doc["_id"] = ObjectId()
            stored.append(doc if next(iter(doc)) == "_id" else {"_id": doc["_id"], **doc})
        raws = [bson.encode(d) for d in stored]
        indexes = self._ensure(conn)
        top = conn.execute(f"SELECT coalesce(max(rid), 0) FROM {self._docs}").fetchone()[0]
        rids = range(top + 1, top + 1 + len(docs))
        try:
            with _savepoint(conn, self.database):
                conn.executemany(
                    f"INSERT INTO {self._docs} (rid, id, doc) VALUES (?, ?, ?)",
                    [
                        (rid, keys.encode(d["_id"]), raw)
                        for rid, d, raw in zip(rids, stored, raws, strict=True)
                    ],
                )
                written = [bson.decode(raw) for raw in raws]
                memos: list[dict[tuple[str, int], documents.FieldKeys]] = [{} for _ in docs]
                for index in indexes.values():
                    rows: list[tuple[bytes, int]] = []
                    multikey: set[str] = set()
                    for rid, doc, memo in zip(rids, written, memos, strict=True):
                        found, arrays = documents.entries(doc, index.fields, index.unique, memo)
                        rows += [(key, rid) for key in found]
                        multikey |= arrays
                    rows.sort()  # in key order: each page of the index is visited once
                    conn.executemany(f"INSERT INTO {index.table} VALUES (?, ?)", rows)
                    if not multikey <= index.multikey:
                        self._mark_multikey(conn, index, multikey)
        except sqlite3.IntegrityError:
            return False
        return True

    def _replace(self, conn: sqlite3.Connection, rid: int, old: Doc, new: Doc) -> None:
        new = {"_id": old["_id"], **{k: v for k, v in new.items() if k != "_id"}}
        raw = bson.encode(new)
        with _savepoint(conn, self.database):
            self._unindex_doc(conn, old)
            conn.execute(f"UPDATE {self._docs} SET doc = ? WHERE rid = ?", (raw, rid))
            self._index_doc(conn, rid, bson.decode(raw))

    def _delete(self, conn: sqlite3.Connection, rid: int, old: Doc) -> None:
        self._unindex_doc(conn, old)
        conn.execute(f"DELETE FROM {self._docs} WHERE rid = ?", (rid,))

    # -- reads -----------------------------------------------------------------

    def find(
        self,
        filter: Doc | None = None,
        projection: Any = None,
        skip: int = 0,
        limit: int = 0,
        sort: Any = None,
        batch_size: int = 0,
        **_: Any,
    ) -> Cursor:
        if isinstance(projection, list | tuple):
            projection = {name: 1 for name in projection}
        cursor = Cursor(self, Query(filter or {}, projection, None, limit, skip))
        if sort is not None:
            cursor.sort(sort)
        return cursor

    def find_one(self, filter: Any = None, projection: Any = None, **kwargs: Any) -> Doc | None:
        if filter is not None and not isinstance(filter, Mapping):
            filter = {"_id": filter}
        for doc in self.find(filter, projection, **kwargs).limit(1):
            return doc
        return None

    def count_documents(self, filter: Doc, **options: Any) -> int:
        query = Query(normalized(filter), max_time_ms=options.get("maxTimeMS"))
        limit, skip = int(options.get("limit") or 0), int(options.get("skip") or 0)
        conn = self.database.connection()
        with self._reading(conn, query.max_time_ms) as until:
            counted = self._count(conn, query, until)
        counted = max(0, counted - skip)
        return min(counted, limit) if limit else counted

    def estimated_document_count(self, **_: Any) -> int:
        return self.count_documents({})

    def distinct(self, key: str, filter: Doc | None = None) -> list[Any]:
        values: list[Any] = []
        seen: set[bytes] = set()
        for doc in self.find(filter or {}):
            found, _ = documents.path_keys(doc, key)
            for k, value in zip(found, _values(doc, key), strict=False):
                if k not in seen:
                    seen.add(k)
                    values.append(value)
        return values

    def _plan(
        self, conn: sqlite3.Connection, query: Query, counting: bool
    ) -> tuple[plan.Plan | None, dict[str, plan.Index] | None]:
        indexes = self._indexes(conn)
        if indexes is None:
            return None, None
        found = plan.conditions(query.filter)
        sort = query.sort or []
        candidates: list[plan.Plan] = []
        primary = plan.Index("_id_", self._docs, (("_id", 1),), True, primary=True)
        for index in (primary, *indexes.values()):
            candidates += plan.plans(index, found, sort)
        for candidate in candidates:
            if candidate.unique_point():  # one document at most: nothing is cheaper
                candidate.estimate = 1
                return candidate, indexes
        for candidate in candidates:
            candidate.estimate = self._estimate(conn, candidate)
        if not candidates:
            if self.database.client.strict and (query.filter or query.sort):
                raise OperationFailure(
                    f"no declared index serves this query on {self.name!r} (the strict "
                    f"setting, NEWSGRAPH_STRICT_INDEXES, refuses a collection scan): "
                    f"filter {plan.shape(query.filter)}, sort {query.sort or []}",
                    NO_QUERY_PLAN,
                )
            return None, indexes
        chosen = plan.choose(candidates, query.limit + query.skip, counting)
        if not chosen.exact:
            self._narrow(conn, chosen, candidates)
        return chosen, indexes

    def _narrow(self, conn: sqlite3.Connection, chosen: plan.Plan, others: list[plan.Plan]) -> None:
        """Give a plan that must read documents to test them the smallest
        other ranges every match lies in (each bounds come from the filter's
        conditions, so a match has an entry in every plan's ranges)."""
        narrow: list[plan.Plan] = []
        sized: dict[tuple[Any, ...], int] = {}  # plans bounding the same fields alike
        walked = set(chosen.bounds)
        for other in others:
            if other is chosen or not other.ranges or other.ranges == chosen.ranges:
                continue
            if set(other.bounds) <= walked:
                continue  # its ranges hold every entry the chosen walk reads: no narrowing
            if other.estimate >= plan.ESTIMATE_CAP:
                same = other.bounds
                if same not in sized:
                    sized[same] = self._estimate(conn, other, plan.SEMIJOIN_CAP)
                other.estimate = sized[same]
            if other.estimate < plan.SEMIJOIN_CAP:
                narrow.append(other)
        chosen.semijoins = sorted(narrow, key=lambda p: p.estimate)[: plan.SEMIJOINS]

    def _estimate(
        self, conn: sqlite3.Connection, chosen: plan.Plan, cap: int = plan.ESTIMATE_CAP
    ) -> int:
        known = self.database.estimates()
        key = (chosen.index.table, tuple(chosen.ranges), cap)
        if key in known:
            return known[key]
        column = "id" if chosen.index.primary else "key"
        total = 0
        for _, lo, hi in chosen.ranges:
            where, args = _where(column, lo, hi)
            total += conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {chosen.index.table} {where} LIMIT ?)",
                (*args, cap - total),
            ).fetchone()[0]
            if total >= cap:
                break
        if len(known) > 10_000:  # a bound on memory, not a policy
            known.clear()
        known[key] = total
        return total

    def _count(self, conn: sqlite3.Connection, query: Query, until: _Limit | None) -> int:
        chosen, indexes = self._plan(conn, query, counting=True)
        if indexes is None:
            return 0
        if chosen is None and not query.filter:
            return int(conn.execute(f"SELECT count(*) FROM {self._docs}").fetchone()[0])
        if chosen is not None and chosen.exact:
            column = "id" if chosen.index.primary else "key"
            spans = [_where(column, lo, hi, clause=True) for _, lo, hi in chosen.ranges]
            if not spans:
                return 0
            if chosen.index.multikey:  # a document may have entries in several ranges
                where = " OR ".join(f"({clause})" for clause, _ in spans)
                args = tuple(a for _, span_args in spans for a in span_args)
                sql = f"SELECT count(DISTINCT rid) FROM {chosen.index.table} WHERE {where}"
                return int(conn.execute(sql, args).fetchone()[0])
            return sum(
                int(
                    conn.execute(
                        f"SELECT count(*) FROM {chosen.index.table} WHERE {clause}", args
                    ).fetchone()[0]
                )
                for clause, args in spans
            )
        return sum(1 for _ in self._matching(conn, query, chosen, until))

    def _matching(
        self,
        conn: sqlite3.Connection,
        query: Query,
        chosen: plan.Plan | None,
        until: _Limit | None,
    ) -> Iterator[tuple[int, Doc]]:
        """``(rid, document)`` of each match, in the plan's order."""
        limit = query.limit + query.skip if chosen is not None and chosen.sorted else 0
        tally = _Tally()
        source = (
            self._walk(conn, chosen, query, until, limit, tally)
            if chosen is not None
            else self._scan(conn, until)
        )
        if chosen is not None and chosen.exact:
            yield from source
            return
        for rid, doc in source:
            tally.walked += 1
            if matches(query.filter, doc):
                tally.matched += 1
                yield rid, doc

    def _scan(self, conn: sqlite3.Connection, until: _Limit | None) -> Iterator[tuple[int, Doc]]:
        last = -1
        while True:
            _check(until)
            rows = conn.execute(
                f"SELECT rid, doc FROM {self._docs} WHERE rid > ? ORDER BY rid LIMIT ?",
                (last, MAX_CHUNK),
            ).fetchall()
            for rid, raw in rows:
                _check(until)  # per document: see _walk
                yield rid, bson.decode(raw)
            if len(rows) < MAX_CHUNK:
                return
            last = rows[-1][0]

    def _walk(
        self,
        conn: sqlite3.Connection,
        chosen: plan.Plan,
        query: Query,
        until: _Limit | None,
        limit: int,
        tally: _Tally | None = None,
    ) -> Iterator[tuple[int, Doc]]:
        """The documents in the plan's ranges, each once, in index order."""
        tally = tally or _Tally()
        first = limit + 1 if limit and chosen.exact else 32
        streams: list[Iterator[tuple[bytes, int, bytes]]]
        if chosen.merge:
            by_prefix: dict[bytes, list[tuple[bytes | None, bytes | None]]] = {}
            for prefix, lo, hi in chosen.ranges:
                by_prefix.setdefault(prefix, []).append((lo, hi))
            streams = [
                self._entries(conn, chosen, spans, len(prefix), until, first, tally)
                for prefix, spans in by_prefix.items()
            ]
            merged: Iterable[tuple[bytes, int, bytes]] = heapq.merge(
                *streams, key=lambda e: e[0], reverse=chosen.reverse
            )
        else:
            spans = [(lo, hi) for _, lo, hi in chosen.ranges]
            merged = self._entries(conn, chosen, spans, 0, until, first, tally)
        seen: set[int] | None = set() if chosen.index.multikey else None
        for _, rid, raw in merged:
            # The time limit checked per document, not only per chunk: a chunk
            # of up to MAX_CHUNK documents decoded and matched in Python is
            # work SQLite's progress handler does not see, and a quick read
            # on the event loop (api.data.gateway) must stop within its bound.
            _check(until)
            if seen is not None:
                if rid in seen:
                    continue
                seen.add(rid)
            yield rid, bson.decode(raw)

    def _entries(
        self,
        conn: sqlite3.Connection,
        chosen: plan.Plan,
        spans: list[tuple[bytes | None, bytes | None]],
        prefix_length: int,
        until: _Limit | None,
        first: int,
        tally: _Tally,
    ) -> Iterator[tuple[bytes, int, bytes]]:
        """``(key after the prefix, rid, raw document)`` of each entry of
        ``spans``, read in growing chunks. The plan's semijoins narrow the
        chunks once the documents read turn out to match seldom (a trial, as
        MongoDB's planner runs: when most match, reading the other ranges
        costs more than it saves)."""
        index = chosen.index
        order = "DESC" if chosen.reverse else "ASC"
        if index.primary:
            select = f"SELECT id, rid, doc FROM {self._docs}"
            column = "id"
        else:
            select = (
                f"SELECT i.key, i.rid, d.doc FROM {index.table} AS i "
                f"JOIN {self._docs} AS d ON d.rid = i.rid"
            )
            column = "i.key"
        narrowed, narrowing = _semijoins(chosen, "i.rid" if not index.primary else "rid")
        chunk = first
        for lo, hi in spans:
            while True:
                _check(until)
                where, args = _where(column, lo, hi)
                if narrowed and tally.walked >= _TRIAL:
                    if tally.selective():
                        where = f"{where} AND {narrowed}" if where else f"WHERE {narrowed}"
                        args = (*args, *narrowing)
                    else:
                        narrowed = ""  # most documents match: read on without
                rows = conn.execute(
                    f"{select} {where} ORDER BY {column} {order} LIMIT ?", (*args, chunk)
                ).fetchall()
                for key, rid, raw in rows:
                    yield key[prefix_length:], rid, raw
                if len(rows) < chunk:
                    break
                last = rows[-1][0]
                if chosen.reverse:
                    hi = last  # exclusive: the next chunk starts below it
                else:
                    lo = last + b"\x00"  # the least key above it
                chunk = min(chunk * 2, MAX_CHUNK)

    @contextlib.contextmanager
    def _reading(
        self, conn: sqlite3.Connection, max_time_ms: int | None
    ) -> Iterator[_Limit | None]:
        """A query's turn, snapshot and time limit (the deadline it must meet)."""
        cpu_until = getattr(self.database._local, "quick", None)  # a quick read never waits
        with (
            _turn(self.database.client, max_time_ms, cpu_until is None),
            _read(conn),
            _deadline(conn, max_time_ms, cpu_until) as until,
        ):
            yield until

    def _run(self, query: Query) -> Iterator[Doc]:
        """The documents a cursor yields."""
        conn = self.database.connection()
        bounded = query.limit > 0 or "_id" in query.filter
        # A bounded query (a page, or documents by id) is answered from one
        # snapshot; an unbounded one (a loader's read of everything) streams,
        # a snapshot per chunk.
        if bounded:
            with self._reading(conn, query.max_time_ms) as until:
                docs = list(self._results(conn, query, until))
            yield from docs
            return
        cpu_until = getattr(self.database._local, "quick", None)
        with _deadline(conn, query.max_time_ms, cpu_until) as until:
            yield from self._results(conn, query, until)

    def _results(
        self, conn: sqlite3.Connection, query: Query, until: _Limit | None
    ) -> Iterator[Doc]:
        chosen, indexes = self._plan(conn, query, counting=False)
        if indexes is None:
            return
        found: Iterator[Doc] = (doc for _, doc in self._matching(conn, query, chosen, until))
        if query.sort and (chosen is None or not chosen.sorted):
            sort = query.sort
            found = iter(sorted(found, key=lambda d: documents.sort_key(d, sort)))
        skipped = 0
        produced = 0
        for doc in found:
            if skipped < query.skip:
                skipped += 1
                continue
            yield project(doc, query.projection)
            produced += 1
            if query.limit and produced >= query.limit:
                return

    def explain(self, query: Query) -> dict[str, Any]:
        conn = self.database.connection()
        with _read(conn):
            chosen, _ = self._plan(conn, query, counting=False)
        return {"queryPlanner": {"winningPlan": chosen.describe() if chosen else "COLLSCAN"}}

    # -- writes ----------------------------------------------------------------

    def insert_one(self, document: Doc, **_: Any) -> InsertOneResult:
        conn = self.database.connection()
        with _write(conn, self.database):
            inserted = self._insert(conn, document)
        return InsertOneResult(inserted, True)

    def insert_many(
        self, documents_: Iterable[Doc], ordered: bool = True, **_: Any
    ) -> InsertManyResult:
        docs = list(documents_)
        self.bulk_write([InsertOne(d) for d in docs], ordered=ordered)
        return InsertManyResult([d["_id"] for d in docs], True)

    def _one(
        self, conn: sqlite3.Connection, flt: Doc, sort: SortSpec | None = None
    ) -> tuple[int, Doc] | None:
        query = Query(normalized(flt), sort=sort, limit=1)
        chosen, indexes = self._plan(conn, query, counting=False)
        if indexes is None:
            return None
        if sort and (chosen is None or not chosen.sorted):
            found = sorted(
                self._matching(conn, query, chosen, None),
                key=lambda pair: documents.sort_key(pair[1], sort),
            )
            return found[0] if found else None
        for pair in self._matching(conn, query, chosen, None):
            return pair
        return None

    def _all(self, conn: sqlite3.Connection, flt: Doc) -> list[tuple[int, Doc]]:
        query = Query(normalized(flt))
        chosen, indexes = self._plan(conn, query, counting=False)
        if indexes is None:
            return []
        return list(self._matching(conn, query, chosen, None))

    def replace_one(
        self, filter: Doc, replacement: Doc, upsert: bool = False, **_: Any
    ) -> UpdateResult:
        conn = self.database.connection()
        with _write(conn, self.database):
            raw = self._replace_op(conn, filter, replacement, upsert)
        return UpdateResult(raw, True)

    def _replace_op(
        self, conn: sqlite3.Connection, flt: Doc, replacement: Doc, upsert: bool
    ) -> dict[str, Any]:
        if documents.is_update(replacement):
            raise ValueError("replacement must not contain update operators")
        found = self._one(conn, flt)
        if found is not None:
            rid, old = found
            if "_id" in replacement and keys.encode(replacement["_id"]) != keys.encode(old["_id"]):
                raise WriteError("the _id of a replaced document cannot change", 66)
            self._replace(conn, rid, old, replacement)
            return {"n": 1, "nModified": 1, "ok": 1.0}
        if not upsert:
            return {"n": 0, "nModified": 0, "ok": 1.0}
        doc = dict(replacement)
        if "_id" not in doc:
            seeded = documents.seed(flt)
            if "_id" in seeded:
                doc = {"_id": seeded["_id"], **doc}
        inserted = self._insert(conn, doc)
        return {"n": 1, "nModified": 0, "upserted": inserted, "ok": 1.0}

    def update_one(self, filter: Doc, update: Doc, upsert: bool = False, **_: Any) -> UpdateResult:
        conn = self.database.connection()
        with _write(conn, self.database):
            raw = self._update_op(conn, filter, update, upsert, many=False)
        return UpdateResult(raw, True)

    def update_many(self, filter: Doc, update: Doc, upsert: bool = False, **_: Any) -> UpdateResult:
        conn = self.database.connection()
        with _write(conn, self.database):
            raw = self._update_op(conn, filter, update, upsert, many=True)
        return UpdateResult(raw, True)

    def _update_op(
        self, conn: sqlite3.Connection, flt: Doc, update: Doc, upsert: bool, many: bool
    ) -> dict[str, Any]:
        if not documents.is_update(update):
            raise ValueError("update only works with $ operators")
        targets = self._all(conn, flt) if many else [p for p in [self._one(conn, flt)] if p]
        modified = 0
        for rid, old in targets:
            new = bson.decode(bson.encode(old))
            documents.apply_update(new, update, inserting=False)
            if bson.encode(new) != bson.encode(old):
                self._replace(conn, rid, old, new)
                modified += 1
        if targets or not upsert:
            return {"n": len(targets), "nModified": modified, "ok": 1.0}
        doc = documents.seed(flt)
        documents.apply_update(doc, update, inserting=True)
        inserted = self._insert(conn, doc)
        return {"n": 1, "nModified": 0, "upserted": inserted, "ok": 1.0}

    def find_one_and_update(
        self,
        filter: Doc,
        update: Doc,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = False,
        **_: Any,
    ) -> Doc | None:
        conn = self.database.connection()
        with _write(conn, self.database):
            found = self._one(conn, filter, _sort_spec(sort) if sort else None)
            if found is not None:
                rid, old = found
                new = bson.decode(bson.encode(old))
                documents.apply_update(new, update, inserting=False)
                self._replace(conn, rid, old, new)
                return project(new if return_document else old, projection)
            if not upsert:
                return None
            doc = documents.seed(filter)
            documents.apply_update(doc, update, inserting=True)
            self._insert(conn, doc)
            return project(doc, projection) if return_document else None

    def delete_one(self, filter: Doc, **_: Any) -> DeleteResult:
        conn = self.database.connection()
        with _write(conn, self.database):
            found = self._one(conn, filter)
            if found is not None:
                self._delete(conn, *found)
        return DeleteResult({"n": int(found is not None), "ok": 1.0}, True)

    def delete_many(self, filter: Doc, **_: Any) -> DeleteResult:
        conn = self.database.connection()
        with _write(conn, self.database):
            found = self._all(conn, filter)
            for rid, old in found:
                self._delete(conn, rid, old)
        return DeleteResult({"n": len(found), "ok": 1.0}, True)

    def bulk_write(self, requests: list[Any], ordered: bool = True, **_: Any) -> BulkWriteResult:
        """Every request in one transaction: a crash keeps all or none."""
        result: dict[str, Any] = {
            "writeErrors": [],
            "writeConcernErrors": [],
            "nInserted": 0,
            "nUpserted": 0,
            "nMatched": 0,
            "nModified": 0,
            "nRemoved": 0,
            "upserted": [],
        }
        conn = self.database.connection()
        inserted_in_run = -1  # requests before this were inserted as one run
        with _write(conn, self.database):
            for position, request in enumerate(requests):
                if position > inserted_in_run and isinstance(request, InsertOne):
                    run = list(
                        itertools.takewhile(lambda r: isinstance(r, InsertOne), requests[position:])
                    )
                    if len(run) > 1 and self._insert_run(conn, [r._doc for r in run]):
                        result["nInserted"] += len(run)
                        inserted_in_run = position + len(run) - 1
                if position <= inserted_in_run:
                    continue
                try:
                    with _savepoint(conn, self.database):
                        self._request(conn, request, position, result)
                except (WriteError, DuplicateKeyError) as exc:
                    result["writeErrors"].append(
                        {
                            "index": position,
                            "code": exc.code,
                            "errmsg": str(exc),
                            "op": getattr(request, "_doc", None)
                            or getattr(request, "_filter", None),
                        }
                    )
                    if ordered:
                        break
        if result["writeErrors"]:
            raise BulkWriteError(result)
        return BulkWriteResult(result, True)

    def _request(
        self, conn: sqlite3.Connection, operation: object, position: int, result: dict[str, Any]
    ) -> None:
        request: Any = operation  # pymongo's request classes keep their fields private
        if isinstance(operation, InsertOne):
            self._insert(conn, request._doc)
            result["nInserted"] += 1
            return
        if isinstance(operation, ReplaceOne):
            if request._sort:
                raise WriteError("the embedded engine cannot sort a bulk replace", 2)
            raw = self._replace_op(conn, request._filter, request._doc, bool(request._upsert))
        elif isinstance(operation, UpdateOne | UpdateMany):
            if request._sort:
                raise WriteError("the embedded engine cannot sort a bulk update", 2)
            many = isinstance(operation, UpdateMany)
            raw = self._update_op(conn, request._filter, request._doc, bool(request._upsert), many)
        elif isinstance(operation, DeleteOne | DeleteMany):
            found = (
                self._all(conn, request._filter)
                if isinstance(operation, DeleteMany)
                else [p for p in [self._one(conn, request._filter)] if p]
            )
            for rid, old in found:
                self._delete(conn, rid, old)
            result["nRemoved"] += len(found)
            return
        else:
            raise TypeError(f"{request!r} is not a write request the embedded engine knows")
        if "upserted" in raw:
            result["nUpserted"] += 1
            result["upserted"].append({"index": position, "_id": raw["upserted"]})
        else:
            result["nMatched"] += raw["n"]
            result["nModified"] += raw["nModified"]


class Cursor:
    """A query, run when first iterated."""

    def __init__(self, collection: Collection, query: Query) -> None:
        self._collection = collection
        self._query = query
        self._results: Iterator[Doc] | None = None

    def sort(self, key_or_list: Any, direction: int | None = None) -> Cursor:
        self._query.sort = _sort_spec(key_or_list, direction)
        return self

    def limit(self, limit: int) -> Cursor:
        self._query.limit = abs(int(limit))
        return self

    def skip(self, skip: int) -> Cursor:
        self._query.skip = int(skip)
        return self

    def batch_size(self, _: int) -> Cursor:
        return self

    def max_time_ms(self, max_time_ms: int | None) -> Cursor:
        self._query.max_time_ms = max_time_ms
        return self

    def explain(self) -> dict[str, Any]:
        return self._collection.explain(self._prepared())

    def _prepared(self) -> Query:
        query = self._query
        return Query(
            normalized(query.filter),
            query.projection,
            query.sort,
            query.limit,
            query.skip,
            query.max_time_ms,
        )

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Doc:
        if self._results is None:
            self._results = self._collection._run(self._prepared())
        return next(self._results)

    def close(self) -> None:
        close = getattr(self._results, "close", None)
        if close is not None:
            close()


def _sort_spec(key_or_list: Any, direction: int | None = None) -> SortSpec:
    if isinstance(key_or_list, str):
        return [(key_or_list, direction or 1)]
    if isinstance(key_or_list, Mapping):
        return [(k, int(d)) for k, d in key_or_list.items()]
    return [(k, int(d)) for k, d in key_or_list]


def _where(
    column: str, lo: bytes | None, hi: bytes | None, clause: bool = False
) -> tuple[str, tuple[bytes, ...]]:
    """SQL for ``lo <= column < hi``: a WHERE clause, or (``clause``) its condition."""
    clauses, args = [], []
    if lo is not None:
        clauses.append(f"{column} >= ?")
        args.append(lo)
    if hi is not None:
        clauses.append(f"{column} < ?")
        args.append(hi)
    condition = " AND ".join(clauses) or "1"
    if clause:
        return condition, tuple(args)
    return ("WHERE " + condition if clauses else ""), tuple(args)


def _semijoins(chosen: plan.Plan, rid: str) -> tuple[str, tuple[bytes, ...]]:
    """SQL keeping only entries whose document lies in each of the plan's
    semijoin ranges (SQLite reads each range once per statement)."""
    clauses: list[str] = []
    args: list[bytes] = []
    for other in chosen.semijoins:
        column = "id" if other.index.primary else "key"
        spans = [_where(column, lo, hi, clause=True) for _, lo, hi in other.ranges]
        where = " OR ".join(f"({clause})" for clause, _ in spans)
        clauses.append(f"{rid} IN (SELECT rid FROM {other.index.table} WHERE {where})")
        args += [a for _, span_args in spans for a in span_args]
    return " AND ".join(clauses), tuple(args)


def _values(doc: Doc, path: str) -> list[Any]:
    current: list[Any] = [doc]
    for part in path.split("."):
        following: list[Any] = []
        for value in current:
            if isinstance(value, dict):
                following.append(value.get(part))
            elif isinstance(value, list):
                following.extend(e.get(part) for e in value if isinstance(e, dict))
        current = following
    out: list[Any] = []
    for value in current:
        out.extend(value if isinstance(value, list) else [value])
    return out


def _duplicate(collection: Collection, index: plan.Index, doc: Doc) -> DuplicateKeyError:
    shown = {name: documents._get(doc, name) for name, _ in index.fields}
    return DuplicateKeyError(
        f"E11000 duplicate key error collection: {collection.full_name} "
        f"index: {index.name} dup key: {shown!r}",
        _DUPLICATE,
    )
