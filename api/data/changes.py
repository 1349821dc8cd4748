"""Whether the stored articles changed, as the loaders tell it through the
store alone: their change marker (``core.news.CHANGED_FIELD``), which every
write that changes an article raises once the article is written.

A worker that keeps answers (``api.execution.answered``) must know that no
write has landed since it made them, whichever host the loader ran on. It
reads the marker with one lookup by ``_id`` (the one query every engine,
FerretDB v1 included, answers from an index), at most once an interval, and
only while answers are asked for: :meth:`Changes.current` starts a read when
the last one began an interval ago, and gives the marker only while the last
read that succeeded began at most two intervals ago. So what it gives tells
of every write that finished that long ago or more; a store that stops
answering makes it give None (nothing kept is trusted) within two intervals,
and its reads are then tried once an interval.

Reads run in a task of their own, in an empty context: not on the account of
the request that happened to start one (its deadline, its store calls, its
span). A read waits for a store slot as long as it takes, never shed: clients
whose calls fill the slots (each a miss) would otherwise have it shed, and two
intervals later every kept answer be made again, each needing a slot too,
just when they are scarcest. One read at a time, so it waits behind the
calls queued before it, which are shed within the slots' short wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable

from api.data.gateway import Gateway
from core.indexes import LOADER
from core.news import CHANGED_FIELD, EPOCH_FIELD, MARKER_ID

log = logging.getLogger("newsgraph.api")

#: The marker as read: its document's epoch and its count of changes (``("",
#: 0)``: no loader has written yet). Compared only for equality.
Marker = tuple[str, int]


class Changes:
    """The loaders' change marker as this worker last read it."""

    def __init__(
        self,
        gateway: Gateway,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.interval_s = interval_s
        self.clock = clock
        #: The marker at the last read that succeeded, and when that read began.
        self.value: Marker | None = None
        self.read_at = -float("inf")
        #: When the last read began, whether it succeeded or not.
        self.tried_at = -float("inf")
        self.failed = False
        self._reading: asyncio.Task[None] | None = None

    def current(self) -> Marker | None:
        """The marker, if the last read that succeeded began at most two
        intervals ago; else None. Starts a read (not awaited) when the last
        one began an interval ago or more."""
        now = self.clock()
        if self._reading is None and now - self.tried_at >= self.interval_s:
            self._reading = asyncio.get_running_loop().create_task(
                self.read(), context=contextvars.Context()
            )
        return self.value if now - self.read_at < 2 * self.interval_s else None

    async def read(self) -> None:
        """One read of the marker (tests await it to be sure of one)."""
        began = self.tried_at = self.clock()
        try:
            found = await self.gateway.find_patiently(
                LOADER, {"_id": MARKER_ID}, {CHANGED_FIELD: 1, EPOCH_FIELD: 1}
            )
        except Exception as exc:
            if not self.failed:
                log.warning("cannot read the store's change marker: %r", exc)
            self.failed = True
            return
        finally:
            self._reading = None
        if self.failed:
            log.info("the store's change marker is read again")
        self.failed = False
        marker = found[0] if found else {}
        count, epoch = marker.get(CHANGED_FIELD, 0), marker.get(EPOCH_FIELD, "")
        self.value = (
            epoch if type(epoch) is str else "",
            count if type(count) is int else 0,
        )
        self.read_at = max(self.read_at, began)

    async def close(self) -> None:
        """Stop a read in flight (the app is stopping)."""
        task, self._reading = self._reading, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
