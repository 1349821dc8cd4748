"""The loaders' lease: one loader at a time writes to a database.

A loader's snapshot of the store (``loaders.stored``) and the facet counts it
rebuilds from it are only right if nobody else wrote meanwhile. So writing
happens under a lease, one document in the store (``core.indexes.LOADER``):

    {_id: "lease", owner, since, expires, generation, facets}

It is taken atomically (``find_one_and_update`` whose filter matches only a
free, expired or own lease, with upsert: when it matches nothing the upsert's
insert of the same ``_id`` fails with a duplicate key, which means "held by
someone else"), renewed while held and released when done; a crashed owner's
lease runs out after ``loader_lease_s`` and is taken over.

``generation`` counts the holdings in which a loader wrote. A loader remembers
the generation its snapshot reflects; if it finds another on taking the lease,
someone else wrote and it reads the store again. ``facets`` is the generation
the facet collections were last rebuilt at: behind ``generation`` means a
loader wrote and stopped (crashed) before rebuilding, and the next one repairs
them.

Expiry compares wall clocks of the loaders' hosts: keep them in sync (NTP)
well within ``loader_lease_s``.

A holder killed outright (SIGKILL, the OOM killer) cannot release its lease,
and the next loader would wait for it to run out. So the lease also records
where its holder runs (``host``: the host name, the kernel's boot id and the
holder's pid namespace) and which process it is (``pid``, and the process's
start time, so a pid reused since does not pass for it). A loader that finds
the lease held from its own host, by a process that is no longer there, takes
it over at once, by a compare-and-set on the holder's ``owner`` (so two such
loaders cannot both take it). Where that cannot be told (no ``/proc``: not
Linux) the lease is only taken over when it runs out.

A loader waiting for the lease stops waiting when its ``stop`` event is set
(a watcher told to stop), with :class:`LeaseError`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Event
from typing import Any

import pymongo
import pymongo.errors

from core.config import Settings
from core.indexes import LOADER
from core.store import Store, unavailable_as_error

log = logging.getLogger("newsgraph.loaders")
_ID = "lease"
_FREE = datetime(1970, 1, 1)
#: Longest pause between two tries at a lease held by someone else (seconds).
_POLL_MAX_S = 1.0
#: The stop event of a lease that has none.
_NEVER = Event()


class LeaseError(RuntimeError):
    """The lease could not be had (held too long by another loader, or lost)."""


@dataclass(frozen=True)
class Holding:
    """What the lease document said when it was taken or renewed."""

    generation: int
    #: The generation the facet collections were last rebuilt at.
    facets: int


class Lease:
    """This loader's claim on the database; see the module's docstring."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        owner: str | None = None,
        stop: Event | None = None,
    ) -> None:
        self.store = store
        self.ttl = timedelta(seconds=settings.loader_lease_s)
        self.wait_s = float(settings.loader_wait_s)
        # host:pid names the process for a person; the suffix tells two
        # loaders in one process (a watcher and a one-shot load) apart.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}/{uuid.uuid4().hex[:6]}"
        #: Set to stop waiting for the lease.
        self.stop = stop
        self.held = False
        self._renewed = 0.0  # time.monotonic() of the last acquire or renew
        #: Where and which process this is, recorded with the lease it holds.
        pid = os.getpid()
        self._process = {"host": this_host(), "pid": pid, "start": process_start(pid)}

    @property
    def _docs(self) -> Any:
        return self.store.db[LOADER]

    def acquire(self) -> Holding:
        """Take the lease, waiting for another holder up to ``loader_wait_s``."""
        deadline = time.monotonic() + self.wait_s
        pause, told = 0.05, False
        while True:
            holding = self._try()
            if holding is not None:
                return holding
            with unavailable_as_error(self.store.where):
                doc = self._docs.find_one({"_id": _ID}) or {}
            if self._gone(doc):
                holding = self._take_over(doc)
                if holding is not None:
                    return holding
                continue  # another loader took it first, or it was released: look again
            holder = _describe(doc)
            if time.monotonic() >= deadline:
                raise LeaseError(
                    f"gave up after {self.wait_s:.0f} s waiting for the loader lease held by "
                    f"{holder}. Another load is still writing to this database; wait for it, "
                    "or raise NEWSGRAPH_LOADER_WAIT_S."
                )
            if not told:  # once: a long wait is normal while another load runs
                log.warning("waiting for the loader lease held by %s", holder)
                told = True
            if (self.stop or _NEVER).wait(min(pause, max(0.0, deadline - time.monotonic()))):
                raise LeaseError(f"stopped while waiting for the loader lease held by {holder}.")
            pause = min(pause * 2, _POLL_MAX_S)

    def due(self) -> bool:
        """Whether a third of the lease's time has passed since it was renewed."""
        return time.monotonic() - self._renewed > self.ttl.total_seconds() / 3

    def renew(self, bump: bool = False) -> Holding:
        """Extend the held lease (and with ``bump``, tell other loaders this
        one writes). Raises :class:`LeaseError` if it ran out and was taken."""
        update: dict[str, Any] = {"$set": {"expires": self._now() + self.ttl}}
        if bump:
            update["$inc"] = {"generation": 1}
        with unavailable_as_error(self.store.where):
            doc = self._docs.find_one_and_update(
                {"_id": _ID, "owner": self.owner},
                update,
                return_document=pymongo.ReturnDocument.AFTER,
            )
        if doc is None:
            self.held = False
            raise LeaseError(
                f"this loader's lease ran out (NEWSGRAPH_LOADER_LEASE_S="
                f"{self.ttl.total_seconds():.0f}) and {self._holder()} took it over; "
                "run the load again."
            )
        self._renewed = time.monotonic()
        return _holding(doc)

    def release(self, facets: int | None = None) -> None:
        """Let the lease go (and record that the facets are rebuilt at
        generation ``facets``). Best effort: a lease not released runs out."""
        if not self.held:
            return
        self.held = False
        update: dict[str, Any] = {"owner": None, "expires": _FREE}
        if facets is not None:
            update["facets"] = facets
        try:
            self._docs.update_one({"_id": _ID, "owner": self.owner}, {"$set": update})
        except pymongo.errors.PyMongoError as exc:
            log.warning("could not release the loader lease (%s); it runs out by itself", exc)

    def _gone(self, doc: dict[str, Any]) -> bool:
        """Whether the lease ``doc`` is held by a process of this host that is
        gone (killed without releasing it)."""
        host, pid, start = doc.get("host"), doc.get("pid"), doc.get("start")
        if not (doc.get("owner") and host and host == self._process["host"]):
            return False  # free, or on another host (or one that cannot tell)
        if not isinstance(pid, int) or not isinstance(start, int):
            return False
        return process_start(pid) != start  # gone, or its pid reused since

    def _take_over(self, doc: dict[str, Any]) -> Holding | None:
        """Take the lease from the gone holder ``doc`` names, unless another
        loader did first."""
        now = self._now()
        with unavailable_as_error(self.store.where):
            taken = self._docs.find_one_and_update(
                {"_id": _ID, "owner": doc["owner"]},
                self._update(now),
                return_document=pymongo.ReturnDocument.AFTER,
            )
        if taken is None:
            return None
        log.warning(
            "took over the loader lease from %s: its process (pid %s on this host) is gone",
            _describe(doc),
            doc["pid"],
        )
        self.held = True
        self._renewed = time.monotonic()
        return _holding(taken)

    def _update(self, now: datetime) -> dict[str, Any]:
        """The update that makes the lease this loader's from ``now``."""
        mine = {"owner": self.owner, "since": now, "expires": now + self.ttl}
        return {"$set": {**mine, **self._process}}

    def _try(self) -> Holding | None:
        now = self._now()
        free = {"$or": [{"expires": {"$lt": now}}, {"owner": self.owner}]}
        update = self._update(now)
        try:
            with unavailable_as_error(self.store.where):
                doc = self._docs.find_one_and_update(
                    {"_id": _ID, **free},
                    update,
                    upsert=True,
                    return_document=pymongo.ReturnDocument.AFTER,
                )
        except pymongo.errors.DuplicateKeyError:
            return None  # the lease exists and is not free: held by someone else
        self.held = True
        self._renewed = time.monotonic()
        return _holding(doc)

    def _holder(self) -> str:
        """Who holds the lease and since when, for a message."""
        with unavailable_as_error(self.store.where):
            return _describe(self._docs.find_one({"_id": _ID}) or {})

    @staticmethod
    def _now() -> datetime:
        # Naive UTC, millisecond precision: what BSON stores and gives back.
        now = datetime.now(UTC).replace(tzinfo=None)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _holding(doc: dict[str, Any]) -> Holding:
    return Holding(int(doc.get("generation") or 0), int(doc.get("facets") or 0))


def _describe(doc: dict[str, Any]) -> str:
    """Who holds the lease ``doc`` and since when, for a message."""
    since = doc.get("since")
    when = f" since {since:%Y-%m-%d %H:%M:%S} UTC" if isinstance(since, datetime) else ""
    return f"{doc.get('owner') or 'another loader'}{when}"


def this_host() -> str | None:
    """What tells this host's processes from any other's: the host name, the
    boot id (another boot, or another machine of the same name, differs) and
    the pid namespace (a container sharing the kernel differs); None where
    that cannot be told."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{socket.gethostname()} boot {boot} pid-ns {namespace}"


def process_start(pid: int) -> int | None:
    """When process ``pid`` of this host started (clock ticks since boot);
    None if there is no such live process (a zombie is gone too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # After the command's name, which may hold spaces and ")": state is the
    # first field (3rd of the line) and the start time the 20th (22nd).
    fields = stat.rsplit(b")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])
