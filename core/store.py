"""Where articles live: a MongoDB database, or the embedded in-process engine.

``MONGODB_URI`` selects MongoDB (a single server, a replica set or a sharded
cluster: pymongo handles all three from the URI). With no URI, newsgraph uses
mongomock, an in-memory engine inside this process: nothing to install, and
nothing persists once the process exits.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pymongo.errors
from pymongo.collection import Collection
from pymongo.database import Database

from core.config import Settings
from core.indexes import ARTICLES, INDEXES, PROVIDERS, TOPICS


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

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers now."""
        with unavailable_as_error(self.where):
            self.db.command("ping")

    def ensure_indexes(self) -> None:
        """Create those indexes of :mod:`core.indexes` that are missing.

        Asking the server which exist first costs one listIndexes per collection
        and avoids re-sending createIndexes for indexes that are all there (which
        FerretDB v1 answers by dropping the connection).
        """
        with unavailable_as_error(self.where):
            for name, models in INDEXES.items():
                existing = set(self.db[name].index_information())
                missing = [m for m in models if m.document["name"] not in existing]
                if missing:
                    self.db[name].create_indexes(missing)

    def close(self) -> None:
        if not self.embedded:
            self.db.client.close()


def connect(settings: Settings) -> Store:
    """Open the store the settings name. Connecting is lazy: call
    :meth:`Store.ping` to find out now whether the server answers."""
    if not settings.mongodb_uri:
        from core import embedded

        db = embedded.client()[settings.db_name]
        return Store(db, where="embedded (in memory)", embedded=True)
    try:
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(
            settings.mongodb_uri,
            serverSelectionTimeoutMS=settings.store_timeout_ms,
            connectTimeoutMS=settings.store_timeout_ms,
            socketTimeoutMS=settings.store_op_timeout_ms,
            appname="newsgraph",
        )
    except pymongo.errors.ConfigurationError as exc:
        raise StoreUnavailable(f"MONGODB_URI is not usable: {exc}") from None
    where = f"{redact(settings.mongodb_uri)} (database {settings.db_name!r})"
    return Store(client[settings.db_name], where=where, embedded=False)


_TRANSIENT = (pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError)


@contextlib.contextmanager
def unavailable_as_error(where: str) -> Iterator[None]:
    """Turn pymongo's connection failures into one :class:`StoreUnavailable`
    that says which store and what to check."""
    try:
        yield
    except _TRANSIENT as exc:
        reason = str(exc).split(", Timeout:")[0].split(" (configured timeouts")[0]
        raise StoreUnavailable(
            f"cannot reach the store at {where}: {reason}. "
            "Is the server running, and does MONGODB_URI point at it?"
        ) from exc


def redact(uri: str) -> str:
    """``mongodb://user:secret@host`` -> ``mongodb://user:***@host``."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", uri)
