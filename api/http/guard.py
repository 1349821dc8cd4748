"""A deadline for every HTTP request, and cancellation when its client leaves.

:class:`RequestGuard` gives each HTTP request a :class:`~api.data.deadline.Deadline`
(``NEWSGRAPH_REQUEST_TIMEOUT_MS``), so the GraphQL layer answers with a
``TIMEOUT`` error and whatever it fetched in time, and watches the connection:
if the client hangs up, every pending store call is cancelled at once and the
access log says 499, as nginx does.

The deadline bounds the work, not the transfer: once an answer starts, a slow
reader may take its time over it (the server's send timeout, in
``api/http/connections.py``, drops one that reads nothing). Except for an answer
in parts (``multipart/mixed``, for ``@defer`` and ``@stream``): its later parts
are still work, which a client that does not read would otherwise keep waiting
for ever, so the deadline covers the whole answer, and an answer not finished
by then is cut off where it is (the client sees it end without its last part).

**asyncio, not anyio.** The app runs only on asyncio (uvicorn), and this runs
for every request: its backstop is an asyncio timer (one for all the requests
on a loop: :class:`_Backstops`) that cancels the task serving the request
(``Task.cancel``), its events asyncio's: with an anyio cancel scope and anyio
events, which each ask sniffio which library runs, a guarded request cost the
loop 68 µs, with these 44 µs (measured, around an app that answers at once).
The cancellation is the backstop's own, as :func:`asyncio.timeout` tells its
own (by the task's count of cancellations asked for): one from anyone else
(the server stopping) goes on. Unlike a cancel scope's, it is delivered once,
where the task waits: the clean-up that follows it (starlette closing a file
under an anyio shield) is not cancelled again, though an anyio shield would
not hold off that first one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.data import deadline
from api.data.deadline import Deadline
from api.errors import RequestTimeoutError
from api.http.media import JSON, negotiate
from api.telemetry.stats import current_stats

log = logging.getLogger("newsgraph.api")

#: How long after the deadline the GraphQL layer may take to turn its timed-out
#: store calls into an answer, before the guard stops it and answers instead.
GRACE_S = 0.5


class RequestGuard:
    """Pure ASGI middleware: a deadline and a disconnect watch for each HTTP request."""

    def __init__(self, app: ASGIApp, timeout_ms: int) -> None:
        self.app = app
        self.limit_s = timeout_ms / 1000
        #: Each event loop's backstops (one loop serves; tests run many).
        self._backstops: dict[asyncio.AbstractEventLoop, _Backstops] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain method: the exchange's is the guard's one frame (see ``api.http``).
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        exchange = _Exchange(receive, send)
        backstops = self._backstops.get(exchange.loop)
        if backstops is None:
            backstops = self._backstops_for(exchange.loop)
        return exchange.serve(self.app, scope, self.limit_s, backstops)

    def _backstops_for(self, loop: asyncio.AbstractEventLoop) -> _Backstops:
        # A loop not seen before: the closed ones are forgotten.
        self._backstops = {seen: b for seen, b in self._backstops.items() if not seen.is_closed()}
        backstops = self._backstops[loop] = _Backstops(self.limit_s + GRACE_S)
        return backstops


class _Backstops:
    """The backstops of one event loop's requests, behind one guard: one
    asyncio timer for them all.

    Every request behind a guard has the same time limit, so their backstops
    are due in the order the requests came: a queue, whose first live one the
    timer waits for. A timer of each request's own was made, pushed on the
    loop's heap, cancelled and swept off it again on nearly every request (about
    1 % of a small query's server instructions, measured); a place in the queue
    costs an append, and a pop. It goes off at the time the request's own
    timer would have.
    """

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._queue: deque[_Backstop] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, exchange: _Exchange, loop: asyncio.AbstractEventLoop) -> _Backstop:
        queue = self._queue
        while queue and queue[0].exchange is None:
            queue.popleft()  # the answers that started or ended
        backstop = _Backstop(loop.time() + self.delay_s, exchange)
        queue.append(backstop)
        if self._timer is None:
            self._timer = loop.call_at(backstop.at, self._due, loop)
        return backstop

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        queue = self._queue
        now = loop.time()
        while queue:
            backstop = queue[0]
            exchange = backstop.exchange
            if exchange is not None and backstop.at > now:
                self._timer = loop.call_at(backstop.at, self._due, loop)
                return
            queue.popleft()
            if exchange is not None:
                backstop.exchange = None
                exchange.stop()


class _Backstop:
    """One request's place in :class:`_Backstops`, until its answer starts or ends."""

    __slots__ = ("at", "exchange")

    def __init__(self, at: float, exchange: _Exchange) -> None:
        self.at = at
        #: None once it may no longer go off (the exchange clears it).
        self.exchange: _Exchange | None = exchange


class _Exchange:
    """One request's conversation with its client, watched for the client leaving.

    ASGI says a client left only to whoever calls ``receive`` after the body,
    and the app never does once it has read it; so a watcher does, and hands
    the ``http.disconnect`` to the app too if it asks later.

    The watcher is a task started when the app has read the body, which waits
    in the server's ``receive`` itself: not one started with the request to
    wait for the body first, nor events to tell it and the app (each a wake-up
    of the event loop, and for the watcher a cancellation, on every request).
    Once the answer is all sent it is left to end by itself: ASGI's
    ``receive`` says ``http.disconnect`` once the answer is sent, so it ends
    there, and then has nothing to do.

    It is started at the event loop's next turn after the body is read, and
    only if the answer is not all sent by then: a task's first step waits for
    that turn anyway, so it watches from the same moment, and a request
    answered without giving up the loop (a query whose store reads were
    answered on it: ``api.data.gateway``) had nothing to watch while it ran,
    the loop being its own. Such a request pays a callback, not a task, its
    wait in the server's ``receive`` and the wake-up that ends it (measured:
    about 2 % of a small query's instructions in process).
    """

    #: The request's deadline, from the start of :meth:`serve`.
    budget: Deadline

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.loop = asyncio.get_running_loop()
        self.started = False
        self.complete = False
        #: The task running the app, while it does: what the backstop stops.
        self._serving: asyncio.Task[object] | None = None
        #: Set while it may still go off.
        self._backstop: _Backstop | None = None
        self._stopped = False
        #: The body is read: from here the client says nothing but that it left.
        self._read = False
        #: Reads the connection once the body is read (:meth:`watch`), from
        #: the loop's next turn (:meth:`_start_watching`).
        self._watcher: asyncio.Task[None] | None = None
        #: The client left (or its connection failed); and, made only if the
        #: app asks for more after its body, what its ``receive`` waits on.
        self._gone = False
        self._left: asyncio.Event | None = None

    async def serve(
        self, app: ASGIApp, scope: Scope, limit_s: float, backstops: _Backstops
    ) -> None:
        loop = self.loop
        with deadline.within(limit_s, loop) as budget:
            self.budget = budget
            task = asyncio.current_task(loop)  # the loop given: no lookup (a getpid() on 3.11)
            assert task is not None  # an ASGI app runs in a task
            cancelling = task.cancelling()
            self._serving = task
            # The backstop: it stops the work GRACE_S after the deadline, wherever
            # it is waiting (a slow upload included), if the answer is not started.
            self._backstop = backstops.add(self, loop)
            ours = caught = False
            try:
                try:
                    await app(scope, self.receive, self.send)
                finally:
                    self._serving = None
                    if self._backstop is not None:
                        self._backstop.exchange = None
                    if self._watcher is not None and not self.complete:
                        # An answer not all sent: the server may say nothing more.
                        self._watcher.cancel()
                    # Its own cancellation taken back; another asked for goes on.
                    ours = self._stopped and task.uncancel() <= cancelling
            except asyncio.CancelledError:
                if not ours:
                    raise
                caught = True
            if caught and not self.budget.gone:
                if not self.started:
                    await self.answer_timeout(Headers(scope=scope).get("accept"))
                elif not self.complete:
                    await self.cut_off()

    def stop(self) -> None:
        """Stop the work: the backstop's time came, or the client left."""
        task = self._serving
        if task is None or self._stopped:
            return
        if task is asyncio.current_task():
            # The app itself heard the client leave: it is cancelled where it
            # next waits, not here, where it may never wait again.
            asyncio.get_running_loop().call_soon(self.stop)
            return
        self._stopped = True
        task.cancel()

    async def receive(self) -> Message:
        if self._read:
            # Nothing but a disconnect follows the body, and the watcher reads it.
            if not self._gone:
                if self._left is None:
                    self._left = asyncio.Event()
                await self._left.wait()
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.client_left()
        elif not message.get("more_body", False):
            self._read = True
            self.loop.call_soon(self._start_watching)
        return message

    def _start_watching(self) -> None:
        """The watcher, started at the loop's first turn after the body was
        read, unless the app is done by then (its answer sent, or it ended)."""
        if self._serving is not None and not self.complete and not self._gone:
            self._watcher = self.loop.create_task(self.watch())

    def send(self, message: Message) -> Awaitable[None]:
        kind = message["type"]
        if kind == "http.response.body":
            if not message.get("more_body", False):
                self.complete = True
        elif kind == "http.response.start":
            self.started = True
            if self._backstop is not None and not _in_parts(message.get("headers", ())):
                # The deadline bounds the work, not the transfer to a slow reader.
                self._backstop.exchange = None
                self._backstop = None
        return self._send(message)

    async def watch(self) -> None:
        # A plain asyncio task, not an anyio task group: the group's scopes
        # and cancellation delivery cost a tenth of a small query's server
        # CPU (measured), and a watcher needs neither.
        try:
            while (await self._receive())["type"] != "http.disconnect":
                pass
        except Exception:  # the server cannot read the connection: as good as gone
            log.warning("watching for the client leaving failed", exc_info=True)
        self.client_left()

    def client_left(self) -> None:
        self._gone = True
        if self._left is not None:
            self._left.set()
        if self.complete:
            return  # the answer was all sent: an ordinary end of the exchange
        self.budget.cancel()
        self.stop()
        stats = current_stats()
        if stats is not None:
            stats.client_gone = True

    async def cut_off(self) -> None:
        """End an answer in parts that the deadline stopped half way: the
        HTTP answer ends whole, its multipart body without its closing part."""
        stats = current_stats()
        if stats is not None:
            stats.error_codes.append(RequestTimeoutError(self.budget.limit_s).code)
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def answer_timeout(self, accept: str | None) -> None:
        """Answer the TIMEOUT the GraphQL layer did not, as it would have:
        negotiated like its answers (api/http/media.py), with the same status rules."""
        error = RequestTimeoutError(self.budget.limit_s)
        # A client that accepts neither media type would have been refused
        # before anything ran; one that reads only multipart gets JSON parts.
        media_type = negotiate(accept) or JSON
        answer: dict[str, object] = {
            "errors": [{"message": str(error), "extensions": error.extensions}]
        }
        status = 200
        if media_type == JSON or self.budget.running:
            # Executed (data fetched in time: none), or a legacy client, which
            # gets every GraphQL response in a 200 with `data`.
            answer = {"data": None, **answer}
        else:
            # The request itself had not arrived (its body was still on the
            # way): no GraphQL response, so no `data`, and 408 says what happened.
            status = 408
        body = orjson.dumps(answer)
        stats = current_stats()
        if stats is not None:
            stats.error_codes.append(error.code)
        headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if status == 408:
            # The rest of the body may still come, a byte at a time: the
            # connection cannot carry another request, so it ends here.
            headers.append((b"connection", b"close"))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


def _in_parts(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether an answer's raw headers say it comes in parts: its first
    ``Content-Type`` (as Starlette's ``Headers`` would read it) is multipart."""
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"multipart/")
    return False
