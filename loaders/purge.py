"""The purge hook: the cache keys the loader's writes changed, handed to a CDN
integration.

After each batch it writes (and after it rebuilds the provider and topic
counts) the loader names the keys of what changed (``core.cachekeys``: the
articles inserted, updated or deleted as clients see them, the lists when an
article may have entered, left or moved in them, the provider and topic rows
whose count or name moved) and hands them to :class:`Purger`, which sends them
to the hook the settings name:

``NEWSGRAPH_PURGE_URL``
    receives ``POST`` with the body ``{"keys": [...]}`` (``application/json``);
    any 2xx answer is success (redirects are not followed).
``NEWSGRAPH_PURGE_COMMAND``
    is run (split as a shell would, but not by one) with that JSON on its
    standard input; exit status 0 is success.

A purge never holds up or fails a load: keys are queued and sent by a thread
of their own, each call bounded by ``NEWSGRAPH_PURGE_TIMEOUT_MS``, at most
:data:`KEYS_PER_CALL` keys per call (Fastly's batch purge takes 256,
Cloudflare's 100 tags). Keys queued while a call runs are merged and sent
together; more than :data:`MAX_KEYS` at once (a bulk load) become one key,
``all``, which every cacheable answer carries. A failed call is logged and
counted and not retried: the answers it should have purged live out their
max-age. Loader exit waits for what is queued, for at most twice the timeout.
Each call is logged (logger ``newsgraph.loaders``) and counted in Prometheus
metrics, served where ``NEWSGRAPH_LOADER_METRICS`` says (:func:`serve_metrics`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from core.cachekeys import ALL, LISTED_FIELDS, article_purge
from core.config import Settings
from core.store import Store
from loaders.facets import facets_of
from loaders.stored import Stored
from loaders.write import BatchResult

log = logging.getLogger("newsgraph.loaders")

#: Most keys one call names.
KEYS_PER_CALL = 100
#: Most keys sent one by one; more queued at once are sent as ``all``.
MAX_KEYS = 1000
#: Updated articles per batch whose stored version is read to tell whether a
#: list may have changed; past it, each is taken to have changed one.
MAX_READS = 64

#: The loader's own metrics (an API worker has its own registry and /metrics).
REGISTRY = CollectorRegistry()
PURGES = Counter(
    "newsgraph_cache_purges",
    "Calls to the cache purge hook, by outcome (sent, failed, dropped: still "
    "queued when the loader stopped).",
    ["outcome"],
    registry=REGISTRY,
)
PURGED_KEYS = Counter(
    "newsgraph_cache_purge_keys",
    "Cache keys named in purge calls that succeeded.",
    registry=REGISTRY,
)
PURGE_SECONDS = Histogram(
    "newsgraph_cache_purge_duration_seconds",
    "Time one purge call took.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

#: Sends one call's keys; raises (any exception) on failure.
Send = Callable[[list[str]], None]


class Purger:
    """Sends keys to the purge hook from a thread of its own."""

    def __init__(self, send: Send, timeout_s: float, name: str = "purge hook") -> None:
        self.send = send
        self.timeout_s = timeout_s
        self.name = name
        self._pending: set[str] = set()
        self._lock = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Purger | None:
        """The purger the settings name; None: no hook."""
        settings.check()
        timeout_s = settings.purge_timeout_ms / 1000
        if settings.purge_url:
            url = settings.purge_url
            return cls(lambda keys: post(url, keys, timeout_s), timeout_s, url)
        if settings.purge_command:
            argv = shlex.split(settings.purge_command)
            return cls(lambda keys: run(argv, keys, timeout_s), timeout_s, argv[0])
        return None

    def purge(self, keys: Iterable[str]) -> None:
        """Queue ``keys`` to be sent; returns at once."""
        with self._lock:
            before = len(self._pending)
            self._pending.update(keys)
            if len(self._pending) == before or self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="newsgraph-purge", daemon=True
                )
                self._thread.start()
            self._lock.notify()

    def close(self) -> None:
        """Send what is queued, waiting at most twice the timeout; what is
        still queued then is dropped (logged and counted)."""
        deadline = time.monotonic() + 2 * self.timeout_s
        with self._lock:
            self._closed = True
            self._lock.notify()
            while (self._pending or self._busy) and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            dropped, self._pending = self._pending, set()
        if dropped:
            PURGES.labels("dropped").inc()
            log.warning(
                "cache purge: %d keys still queued when the loader stopped were not sent",
                len(dropped),
            )

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if not self._pending:
                    return
                keys, self._pending = sorted(self._pending), set()
                self._busy = True
            try:
                if len(keys) > MAX_KEYS:
                    keys = [ALL]
                for at in range(0, len(keys), KEYS_PER_CALL):
                    self._call(keys[at : at + KEYS_PER_CALL])
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _call(self, keys: list[str]) -> None:
        started = time.perf_counter()
        try:
            self.send(keys)
        except Exception as exc:  # whatever the hook does, the load goes on
            PURGES.labels("failed").inc()
            log.warning("cache purge of %d keys failed (%s): %s", len(keys), self.name, exc)
            return
        finally:
            PURGE_SECONDS.observe(time.perf_counter() - started)
        PURGES.labels("sent").inc()
        PURGED_KEYS.inc(len(keys))
        shown = " ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
        log.info("cache purge: %d keys sent to %s: %s", len(keys), self.name, shown)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirected POST would lose its body: a failure, said as such


_opener = urllib.request.build_opener(_NoRedirects)


def body(keys: list[str]) -> bytes:
    """What the hook receives: ``{"keys": [...]}``."""
    return json.dumps({"keys": keys}).encode()


def post(url: str, keys: list[str], timeout_s: float) -> None:
    """POST the keys to ``url``; raises unless it answers 2xx."""
    request = urllib.request.Request(
        url, data=body(keys), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if not 200 <= status < 300:
        raise RuntimeError(f"{url} answered {status}")


def run(argv: list[str], keys: list[str], timeout_s: float) -> None:
    """Run ``argv`` with the keys on its standard input; raises unless it exits 0."""
    try:
        done = subprocess.run(
            argv, input=body(keys), capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"still running after {timeout_s:g} s: stopped") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"exit status {done.returncode}" + (f": {said[-1]}" if said else ""))


def serve_metrics(address: str) -> Callable[[], None]:
    """Serve the loader's metrics at ``host:port`` (checked by the settings);
    returns what stops it. A port it cannot take is logged, and the loader
    goes on without."""
    host, _, port = address.rpartition(":")
    try:
        server, thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0", REGISTRY)
    except OSError as exc:
        log.error("cannot serve the loader's metrics at %s: %s", address, exc)
        return lambda: None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


# -- which keys a write changes ---------------------------------------------------


@dataclass(frozen=True)
class Before:
    """What clients saw of a batch's articles before it is written: whether
    each stored one is published (None: none is stored), and the values that
    place it in lists (None: not read)."""

    published: dict[str, bool | None]
    listed: dict[str, tuple[Any, ...]]

    @classmethod
    def read(cls, store: Store, docs: list[dict[str, Any]], stored: Stored) -> Before:
        published: dict[str, bool | None] = {}
        for doc in docs:
            known = stored.get(doc["_id"])
            published[doc["_id"]] = None if known is None else known[2][0]
        # Only a visible article's lists can move without it appearing or going.
        shown = [_id for _id, seen in published.items() if seen]
        return cls(published, listed_before(store, shown))

    def written(self, docs: list[dict[str, Any]], result: BatchResult) -> list[str]:
        """The keys the batch's writes changed."""
        keys: list[str] = []
        for i in result.inserted + result.updated:
            doc = docs[i]
            _id = doc["_id"]
            seen = self.published.get(_id)
            # One another writer inserted meanwhile (raced) may have been visible.
            was = seen if seen is not None else i not in result.inserted
            old = self.listed.get(_id)
            moved = old is None or old != listed(doc)
            keys += article_purge(_id, before=was, after=facets_of(doc)[0], relisted=moved)
        return keys


def gone_keys(stored: Stored, ids: list[str]) -> list[str]:
    """The keys deleting the stored articles ``ids`` changes (asked before
    the snapshot forgets them)."""
    keys: list[str] = []
    for _id in ids:
        known = stored.get(_id)
        shown = known is None or known[2][0]
        keys += article_purge(_id, before=shown, after=False, relisted=True)
    return keys


def listed(doc: Mapping[str, Any]) -> tuple[Any, ...]:
    """An article's values of the fields that place it in lists."""
    return tuple(_at(doc, path) for path in LISTED_FIELDS)


def _at(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def listed_before(store: Store, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """The listed values of the stored articles ``ids`` (at most
    :data:`MAX_READS`; the rest are left out, as are any the store fails to
    give): read one by one, by ``_id`` alone, which every engine answers
    from its index."""
    fields = dict.fromkeys(LISTED_FIELDS, 1)
    found: dict[str, tuple[Any, ...]] = {}
    with contextlib.suppress(Exception):  # unknown: taken as changed
        for _id in ids[:MAX_READS]:
            doc = store.articles.find_one({"_id": _id}, fields)
            if doc is not None:
                found[_id] = listed(doc)
    return found
