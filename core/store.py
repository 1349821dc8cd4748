"""Where articles live: a MongoDB database, or the embedded in-process engine.

``MONGODB_URI`` selects MongoDB (a single server, a replica set or a sharded
cluster: pymongo handles all three from the URI). With no URI, newsgraph uses
its embedded engine (``core.engine``): nothing to install, the data kept in a
folder on this machine (``core.embedded``).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pymongo
import pymongo.errors
from pymongo.collection import Collection
from pymongo.database import Database

from core.config import Settings
from core.indexes import ARTICLES, INDEXES, KEYS, PROVIDERS, TOPICS

T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The store could not be reached in time; the message says where and why."""


@dataclass
class Store:
    db: Database[Any]
    #: Where the data lives, without credentials: safe to print.
    where: str
    embedded: bool

    @property
    def articles(self) -> Collection[Any]:
        return self.db[ARTICLES]

    @property
    def providers(self) -> Collection[Any]:
        return self.db[PROVIDERS]

    @property
    def topics(self) -> Collection[Any]:
        return self.db[TOPICS]

    @property
    def keys(self) -> Collection[Any]:
        """API keys, as hashes (``core.keys``)."""
        return self.db[KEYS]

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers now."""
        with unavailable_as_error(self.where):
            self.db.command("ping")

    def ensure_indexes(self) -> None:
        """Create those indexes of :mod:`core.indexes` that are missing.

        Asking the server which exist first costs one listIndexes per collection
        and avoids re-sending createIndexes for indexes that are all there (which
        FerretDB v1 answers by dropping the connection). Retried when the
        connection drops (FerretDB v1 also drops it when two processes create
        indexes at once): listing first makes a second try create only what the
        first did not.
        """

        def ensure() -> None:
            with unavailable_as_error(self.where):
                for name, models in INDEXES.items():
                    existing = set(self.db[name].index_information())
                    missing = [m for m in models if m.document["name"] not in existing]
                    if missing:
                        self.db[name].create_indexes(missing)

        retrying(self.where, "creating indexes", ensure)

    def close(self) -> None:
        if not self.embedded:
            self.db.client.close()


def connect(settings: Settings) -> Store:
    """Open the store the settings name. Connecting is lazy: call
    :meth:`Store.ping` to find out now whether the server answers."""
    if not settings.mongodb_uri:
        from core import embedded

        client = embedded.client(settings)
        db: Any = client[settings.db_name]
        where = "embedded (in memory)" if settings.memory else f"embedded ({db.path})"
        return Store(db, where=where, embedded=True)
    try:
        server: pymongo.MongoClient[Any] = pymongo.MongoClient(
            settings.mongodb_uri,
            serverSelectionTimeoutMS=settings.store_timeout_ms,
            connectTimeoutMS=settings.store_timeout_ms,
            socketTimeoutMS=settings.store_op_timeout_ms,
            appname="newsgraph",
        )
    except pymongo.errors.ConfigurationError as exc:
        raise StoreUnavailable(f"MONGODB_URI is not usable: {exc}") from None
    where = f"{redact(settings.mongodb_uri)} (database {settings.db_name!r})"
    return Store(server[settings.db_name], where=where, embedded=False)


#: The code of a server's error that has no code of its own: FerretDB gives it
#: to any failure it does not translate, its own shutdown among them.
INTERNAL_ERROR = 1


def shut_down_under(exc: BaseException) -> bool:
    """Whether ``exc`` is the server cancelling the operation because it is
    shutting down.

    MongoDB answers such an operation with InterruptedAtShutdown or
    ShutdownInProgress, which pymongo raises as NotPrimaryError, a
    ConnectionFailure. FerretDB v1 gives each open connection 3 s after a
    SIGTERM, then cancels what still runs on it and answers with a bare
    InternalError (code 1) whose message ends in Go's "context canceled"
    ("context canceled after delay"), which pymongo raises as a plain
    OperationFailure, like a bad query. Only that message marks it: any other
    InternalError is a failure of the query itself, not an outage.
    """
    if not isinstance(exc, pymongo.errors.OperationFailure) or exc.code != INTERNAL_ERROR:
        return False
    message = (exc.details or {}).get("errmsg") or str(exc)
    return isinstance(message, str) and "context canceled" in message


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is not there to answer (not reachable, the
    connection dropped or timed out, the server shutting down), as opposed to
    an answer that the operation failed."""
    unreachable = isinstance(exc, pymongo.errors.ConnectionFailure | StoreUnavailable)
    return unreachable or shut_down_under(exc)


@contextlib.contextmanager
def unavailable_as_error(where: str) -> Iterator[None]:
    """Turn pymongo's connection failures (and a server shutting down under an
    operation) into one :class:`StoreUnavailable` that says which store and
    what to check."""
    try:
        yield
    except pymongo.errors.PyMongoError as exc:
        if not is_outage(exc):
            raise
        raise StoreUnavailable(
            f"cannot reach the store at {where}: {_reason(exc)}. "
            "Is the server running, and does MONGODB_URI point at it?"
        ) from exc


#: How often an idempotent operation is tried when the connection drops, and
#: the pause before the first retry (doubled for each further one).
ATTEMPTS, BACKOFF_S = 3, 0.2


def retrying(where: str, what: str, operation: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run ``operation``, which must be safe to run again from the start, and
    run it again after a short pause if the connection drops under it.

    Only a dropped or timed-out connection is retried: a server that cannot be
    selected at all is reported at once (the caller, or the user, retries later).
    After the last try the :class:`StoreUnavailable` says what was being done.
    """
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except (pymongo.errors.PyMongoError, StoreUnavailable) as exc:
            dropped = _dropped(exc)
            if dropped is None:
                raise
            if attempt == attempts:
                raise StoreUnavailable(
                    f"the store at {where} dropped the connection while {what} "
                    f"(tried {attempts} times): {_reason(dropped)}. If it keeps "
                    "happening, the server's log says why it closed the connection."
                ) from exc
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable: the last attempt returns or raises")


def _dropped(exc: BaseException) -> BaseException | None:
    """The dropped connection behind ``exc`` (itself, or the pymongo error a
    :class:`StoreUnavailable` wraps), or None if the server was never reached
    or the operation failed for a reason of its own. A server shutting down
    under the operation counts as a drop: it may be restarting."""
    cause = exc.__cause__ if isinstance(exc, StoreUnavailable) else exc
    if cause is None or isinstance(cause, pymongo.errors.ServerSelectionTimeoutError):
        return None
    if isinstance(cause, pymongo.errors.AutoReconnect) or shut_down_under(cause):
        return cause
    return None


def _reason(exc: BaseException) -> str:
    """pymongo's message without its long list of timeouts and topology, or the
    server's reply it quotes in full."""
    reason = str(exc)
    for tail in (", Timeout:", " (configured timeouts", ", full error:"):
        reason = reason.split(tail)[0]
    return reason


def redact(uri: str) -> str:
    """``mongodb://user:secret@host`` -> ``mongodb://user:***@host``."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", uri)
