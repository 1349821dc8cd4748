"""How far a load in this process has got, for ``/readyz`` to show.

``newsgraph serve --load`` over a store that holds articles serves at once and
loads beside; readiness stays 200 meanwhile (what the store holds is served),
so an operator's probe and a person need the load said elsewhere: in the
``load`` part of the readiness body, from a :class:`LoadProgress` the
:class:`~loaders.pipeline.Loader` updates as it goes (under a lock: the loader
writes from its thread, the server reads from its event loop).

It is this process's own record, not the store's: it says nothing of a
``newsgraph load`` run by another process (that one holds the loader lease;
this one's load then shows as waiting for it). So what it shows names the
process it describes (``pid``). With ``serve --workers`` the load runs in the
supervisor, which answers no requests, and with ``--health-port`` a process of
their own answers the probes: each change is also handed to ``publish``, which
copies it where those processes read it (``api.http.health.LoadBoard``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loaders.report import LoadReport

log = logging.getLogger("newsgraph.loaders")

#: What a running load is doing (``phase``).
WAITING = "waiting for the loader lease"
LOADING = "loading"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class LoadProgress:
    """One process's loads: the one running, if any, and the last that ended."""

    def __init__(
        self,
        files_total: int | None = None,
        publish: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        #: The files the next load will read, if the caller counted them.
        self.files_total = files_total
        #: Given each change's :meth:`snapshot` (from the loader's thread).
        self.publish = publish
        self._lock = threading.Lock()
        self._running = False
        self._phase = WAITING
        self._started_at: str | None = None
        self._files_total: int | None = None
        self._files_done = 0
        self._written = 0
        self._last: dict[str, Any] | None = None

    def start(self) -> None:
        """A load starts."""
        with self._lock:
            self._running, self._phase = True, WAITING
            self._started_at = _now()
            self._files_total, self._files_done, self._written = self.files_total, 0, 0
        self._changed()

    def loading(self) -> None:
        """It holds the lease and reads files now."""
        with self._lock:
            self._phase = LOADING
        self._changed()

    def files(self, done: int) -> None:
        """``done`` more files were settled (written, unchanged, failed)."""
        with self._lock:
            self._files_done += done
        self._changed()

    def wrote(self, articles: int) -> None:
        """``articles`` more were written (inserted or updated)."""
        with self._lock:
            self._written += articles
        self._changed()

    def finish(self, report: LoadReport) -> None:
        """It ended, as ``report`` says (stopped early too: ``aborted``)."""
        with self._lock:
            self._running = False
            self._last = {
                "started_at": self._started_at,
                "finished_at": _now(),
                "seconds": round(report.seconds, 1),
                "files": report.files,
                "inserted": report.inserted,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "deleted": report.deleted,
                "failed": report.failed,
                "skipped": report.skipped,
                "aborted": report.aborted,
            }
        self._changed()

    def _changed(self) -> None:
        if self.publish is None:
            return
        try:
            self.publish(self.snapshot())
        except Exception:  # the load goes on; only what others are told of it is behind
            log.warning("cannot publish how the load goes", exc_info=True)

    def snapshot(self) -> dict[str, Any]:
        """What ``/readyz`` shows of it: JSON-ready."""
        with self._lock:
            body: dict[str, Any] = {"pid": os.getpid(), "running": self._running}
            if self._running:
                body.update(
                    phase=self._phase,
                    started_at=self._started_at,
                    files_done=self._files_done,
                    files_total=self._files_total,
                    articles_written=self._written,
                )
            body["last"] = self._last
            return body
