"""newsgraph's real app with its store stubbed, for the ``cpu`` scenario:
``uvicorn --factory bench.stubbed:create_app``, run in its own process so its
CPU time is its own.

The benchmark process captures every store call the timed queries make (by
:class:`bench.querying.MemoryGateway`, from a real corpus) and saves them with
the answers the real app gave (:class:`Capture`); this process replays them.
Everything but the store call is the app's own code: HTTP, middleware,
GraphQL, the gateway's bookkeeping (store-call counts in the cost extension,
the request's deadline), JSON encoding, and where each answer is handed
back: on the event loop for the calls the real app answered there (an
embedded store's small reads: ``api.data.gateway``), through a worker thread
for the others.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from api.app import create_app as create_api
from api.data.gateway import Find, Read, hop
from api.telemetry import tracing
from bench.querying import Found, MemoryGateway, Uncaptured, call_key
from core.config import Settings
from core.document import Doc
from core.store import Store, connect

#: Names the file :meth:`Capture.save` wrote, for the server processes.
CAPTURE_ENV = "NEWSGRAPH_BENCH_CAPTURE"
#: Set (to anything): the server traces every operation (``cpu_traced``).
TRACING_ENV = "NEWSGRAPH_BENCH_TRACING"


@dataclass
class Capture:
    """What a stubbed server needs: the store's answer to each call, and the
    real app's response body to each query (by name), which the bare endpoint
    returns and every stubbed answer is checked against; and the calls the
    real app answered on the event loop (by key)."""

    found: dict[bytes, Found]
    counted: dict[bytes, int]
    answers: dict[str, bytes]
    on_loop: set[bytes] = field(default_factory=set)

    def save(self, path: Path) -> None:
        # pickle, not BSON: the documents come back exactly as the driver gave
        # them (timezone-aware datetimes included). Written and read by this
        # benchmark only.
        path.write_bytes(pickle.dumps(self))

    @classmethod
    def load(cls, path: Path) -> Capture:
        capture = pickle.loads(path.read_bytes())
        assert isinstance(capture, cls), type(capture)
        return capture

    @classmethod
    def from_env(cls) -> Capture:
        return cls.load(Path(os.environ[CAPTURE_ENV]))


class StubGateway(MemoryGateway):
    """Answers from a :class:`Capture` only, each answer handed back through
    :meth:`Gateway.call` as a store call would be, so that the request's
    bookkeeping (its span too, when traced) costs what it does in the real
    app: only the store is gone. A call the real app answered on the event
    loop is answered on it here too, through the gateway's own way there
    (its bound, the engine's quick mode on the empty store, which reads
    nothing); the others through a worker thread. Two chained finds (the
    mobile query's: ``api.data.gateway.Chain``) are one job, as in the real
    app, each looked up in the capture (:meth:`_find_now`): on the loop if
    the real app answered the first there."""

    def __init__(self, store: Store, op_timeout_ms: int, capture: Capture) -> None:
        super().__init__(store, op_timeout_ms, replaying=True)
        self.found = capture.found
        self.counted = capture.counted
        self.on_loop = capture.on_loop

    async def find(
        self,
        collection: str,
        query: dict[str, Any],
        projection: dict[str, int] | None = None,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        key = call_key("find", collection, query, projection, sort, limit)
        found = self.found.get(key)
        if found is None:
            raise Uncaptured(f"find on {collection}: {query!r}")
        return await self.call("find", collection, self._answer(key, found.docs))

    async def count(self, collection: str, query: dict[str, Any]) -> int:
        key = call_key("count", collection, query)
        counted = self.counted.get(key)
        if counted is None:
            raise Uncaptured(f"count on {collection}: {query!r}")
        return await self.call("count", collection, self._answer(key, counted))

    def _answer(self, key: bytes, answer: Any) -> Any:
        """The call handing back ``answer``: one the gateway may answer on
        the loop (a :class:`Read`) if the real app's was, else one it may not."""
        if key in self.on_loop:
            return Read(_given, answer)
        return lambda: answer

    def _on_loop(self, call: Read[Any]) -> Any:
        # A chain on the loop only if the real app's first find was there
        # (the capture has its two finds one by one).
        if call.fn == self._chained and call_key("find", *call.arg.first) not in self.on_loop:
            return hop
        return super()._on_loop(call)

    #: Its finds and counts go through Gateway.call, and a chain's through
    #: :meth:`_find_now`: it chains as the real app's gateway does, and
    #: answers on the loop where the real app did.
    chains = True
    reads_on_loop = True

    def _find_now(self, find: Find) -> list[Doc]:
        """A chained find's answer, in the worker thread, from the capture."""
        found = self.found.get(call_key("find", *find))
        if found is None:
            raise Uncaptured(f"find on {find.collection}: {find.query!r}")
        return found.docs


def _given(answer: Any) -> Any:
    return answer


def create_app() -> Starlette:
    """The app with settings from the environment (``NEWSGRAPH_COMPILED``
    among them), over an empty embedded store that is never asked: the
    gateway answers from the capture named by ``NEWSGRAPH_BENCH_CAPTURE``,
    each answer handed back where the real app's was: on the event loop, or
    through a worker thread. With ``NEWSGRAPH_BENCH_TRACING`` set, tracing is as the
    ``OTEL_*`` settings say, read as ``newsgraph serve`` reads them (the
    benchmark points them at :mod:`bench.collector`); without it, off, whatever
    ``OTEL_*`` settings the server inherits."""
    settings = dataclasses.replace(Settings.from_env(), mongodb_uri="")
    if os.environ.get(TRACING_ENV):
        if not tracing.configure():
            raise RuntimeError(f"{TRACING_ENV} is set, but the OTEL_* settings trace nothing")
    else:
        tracing.use(None)
    gateway = StubGateway(connect(settings), settings.store_op_timeout_ms, Capture.from_env())
    return create_api(settings, gateway=gateway)
