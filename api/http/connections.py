"""Connections that cannot be held for free: Uvicorn's HTTP/1.1 protocol with the
timeouts it lacks, and a bound on open connections that sheds idle ones first.

Uvicorn closes a connection that stays idle *after* an answer (``timeout_keep_alive``),
and nothing else: a connection that never sends a byte, or sends a request's
headers a byte at a time, or asks for an answer and never reads it, is held for
as long as its client likes. At the usual limit of 1,024 open files, 1,100 such
connections take every file descriptor, and then nobody is served (measured:
README, Benchmarks). So :class:`GuardedH11Protocol`, Uvicorn's own h11 protocol
with three timers and a count, closes

* a connection with no request yet, or none since its last answer, after
  ``idle`` seconds (Uvicorn's keep-alive timeout, started on connecting too);
* one whose request's headers have not all arrived ``header`` seconds after it
  connected, or after its previous answer (a byte now and then does not restart
  it: a slow trickle of headers is the attack);
* one that reads nothing of its answer for ``send`` seconds: the answer waits in
  the server's buffer and its writing is paused (or, when the connection is
  being closed, the rest never leaves) that long; the connection is reset.

And when the open connections (HTTP and WebSocket) reach ``max_connections``,
each new one makes the connection that has waited longest for a request (or for
the rest of its headers) close, or is closed itself when every other one is
busy with a request; so what an attacker holds goes first, and a new client is
served at once. That bound stays under the open-files limit with room to spare
(:func:`limits_for`), and the accept batch is kept small (:func:`server_options`,
:class:`GuardedServer`), so the process never reaches ``EMFILE``: there, asyncio
logs a traceback for each connection waiting to be accepted, again and again
(98,000 of them in 15 s, measured), and stops accepting for a second each time.

Both protocols (this HTTP one, and :class:`GuardedWebSocketProtocol`, Uvicorn's
own WebSocket protocol) tell the app how many bytes a connection's transport
holds that its client has not read, through the scope's extensions
(``api.live.unsent.EXTENSION``): the ASGI interface does not show it, and a
subscription's client is bounded by it (``NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES``).
A WebSocket whose client reads nothing for ``send`` seconds is reset too, as an
HTTP connection is: a subscriber's close frame, or anything else, would
otherwise wait behind what it does not read for as long as it stays connected
(asyncio's ``close`` waits for the buffer to empty).

Timeouts in the server rather than a reverse proxy: newsgraph ships as one
process (and one image), and these are the timeouts nginx would add (its
``client_header_timeout``, ``keepalive_timeout``, ``send_timeout``, and the
reuse of idle connections when ``worker_connections`` run out). Behind a proxy
they still bound what the proxy itself holds open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request as Handshake

from api.live.unsent import EXTENSION
from core.config import Settings

log = logging.getLogger("newsgraph.api")

#: The least part of the open-files limit kept for everything but client
#: connections (the store's sockets, the liveness port, files, the log).
RESERVE_MIN = 32
#: Most connections accepted in one turn of the event loop; a turn's accepts
#: are counted only on the next turn, so the reserve holds several batches.
ACCEPT_BATCH_MAX = 2048
#: Most client connections when the setting leaves it to newsgraph: beyond it,
#: memory, not file descriptors, runs out first.
AUTO_MAX_CONNECTIONS = 10_000
#: SO_LINGER on, for 0 s: closing sends a reset and drops what is unsent.
_RESET = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a connection may hold what, and how many may be open."""

    idle_s: float
    header_s: float
    send_s: float
    max_connections: int
    #: Connections accepted in one turn of the event loop.
    accept_batch: int


def limits_for(settings: Settings, open_files: int | None = None) -> ConnectionLimits:
    """The limits the settings ask for, within this process's open-files limit
    (``open_files``, by default its soft ``RLIMIT_NOFILE``): a quarter of it
    (at least :data:`RESERVE_MIN`) is kept for all else, and four accept
    batches fit in that quarter."""
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if open_files == resource.RLIM_INFINITY:
            open_files = 1 << 20
    reserve = max(RESERVE_MIN, open_files // 4)
    most = max(1, open_files - reserve)
    wanted = settings.max_connections or AUTO_MAX_CONNECTIONS
    if settings.max_connections > most:
        log.warning(
            "NEWSGRAPH_MAX_CONNECTIONS=%d is over what %d open files allow; serving at most %d",
            settings.max_connections,
            open_files,
            most,
        )
    return ConnectionLimits(
        idle_s=settings.idle_timeout_s,
        header_s=settings.header_timeout_s,
        send_s=settings.send_timeout_s,
        max_connections=min(wanted, most),
        accept_batch=max(1, min(ACCEPT_BATCH_MAX, reserve // 4)),
    )


def server_options(limits: ConnectionLimits) -> dict[str, Any]:
    """Uvicorn ``Config`` options for these limits: the protocol, the idle
    timeout, and the accept batch (``backlog``; asyncio also makes it the
    kernel's queue of connections not yet accepted, which :class:`GuardedServer`
    puts back)."""
    return {
        "http": protocol_for(limits),
        "ws": type("GuardedWebSocketProtocol", (GuardedWebSocketProtocol,), {"limits": limits}),
        "timeout_keep_alive": limits.idle_s,
        "backlog": limits.accept_batch,
    }


def protocol_for(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server: its limits, and its own list of the
    connections waiting for a request."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"limits": limits, "waiting": OrderedDict()},
    )


def _tell_unsent(scope: Any, transport: asyncio.Transport) -> None:
    """Put in ``scope`` how the app can ask what ``transport`` holds unsent."""
    scope.setdefault("extensions", {})[EXTENSION] = transport.get_write_buffer_size


class _SendTimeout(asyncio.Protocol):
    """A connection reset when its client reads nothing for ``send`` seconds:
    its writing stays paused (the transport's buffer over its high-water
    mark) that long. Mixed into both server protocols, before Uvicorn's."""

    limits: ClassVar[ConnectionLimits]
    loop: asyncio.AbstractEventLoop
    _send_timer: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_s, self._send_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_send_timer()

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_timed_out(self) -> None:
        raise NotImplementedError


class GuardedH11Protocol(_SendTimeout, H11Protocol):
    """Uvicorn's h11 protocol, with the timeouts and the bound above."""

    limits: ClassVar[ConnectionLimits]
    #: The connections with no request in progress, longest waiting first.
    waiting: ClassVar[OrderedDict[GuardedH11Protocol, None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Uvicorn starts its keep-alive timer only after an answer: a
        # connection that never sends a request would be held forever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        self._await_request()
        if len(self.connections) > self.limits.max_connections:
            self._shed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:
            # A request's headers arrived (Uvicorn made its cycle): busy. Its
            # task has not run yet: the app finds the extension in its scope.
            _tell_unsent(self.cycle.scope, self.transport)
            self._request_started()
        elif self.transport.get_protocol() is not self:
            # Upgraded to a WebSocket: its own protocol and timers from here.
            self._forget()

    def on_response_complete(self) -> None:
        if self.transport.is_closing():
            # Closed after the answer (Connection: close): the rest of it may
            # still be waiting for a client that does not read.
            self._stop_unread()
        else:
            self._await_request()  # before Uvicorn handles a pipelined request
        super().on_response_complete()

    def timeout_keep_alive_handler(self) -> None:
        super().timeout_keep_alive_handler()
        self._stop_unread()

    # What holds a connection, and what ends it.

    def _await_request(self) -> None:
        self.waiting[self] = None
        self.waiting.move_to_end(self)
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.limits.header_s, self._header_timed_out)

    def _request_started(self) -> None:
        self.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _forget(self) -> None:
        self._request_started()
        self._stop_send_timer()

    def _header_timed_out(self) -> None:
        self._header_timer = None
        self._end()

    def _send_timed_out(self) -> None:
        self._send_timer = None
        if not self.transport.is_closing() or self.transport.get_write_buffer_size():
            log.debug(
                "resetting a connection whose client read nothing for %gs", self.limits.send_s
            )
            self._drop()

    def _stop_unread(self) -> None:
        """Reset the connection if what is left to send has not left within
        the send timeout (a close waits for it to be sent, however long)."""
        if self.transport.get_write_buffer_size() and self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_s, self._send_timed_out)

    def _end(self) -> None:
        self._forget()
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size():
            self._drop()  # an answer it has not read
        else:
            self.transport.close()

    def _drop(self) -> None:
        _reset(self.transport)

    def _shed(self) -> None:
        """Too many connections: the one that has waited longest for a request
        goes; this new one if every other is busy."""
        oldest = next(iter(self.waiting))
        log.debug("at %d connections: closing the longest idle", self.limits.max_connections)
        oldest._end()


def _reset(transport: asyncio.Transport) -> None:
    """Reset the connection, and drop what the kernel still holds for it: a
    plain close would leave megabytes (as much as the kernel's send buffer
    grew to) waiting, in a socket no process holds, for a reader that never
    comes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


class GuardedWebSocketProtocol(_SendTimeout, WebSocketsSansIOProtocol):
    """Uvicorn's WebSocket protocol, telling the app what its transport holds
    unsent, and reset when its client reads nothing for ``send`` seconds."""

    def handle_connect(self, event: Handshake) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.handshake_complete:  # the app's task made
            _tell_unsent(self.scope, self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_send_timer()
        super().connection_lost(exc)

    def _send_timed_out(self) -> None:
        self._send_timer = None
        if self.transport.get_write_buffer_size():
            log.debug("resetting a WebSocket whose client read nothing for %gs", self.limits.send_s)
            _reset(self.transport)


class GuardedServer(uvicorn.Server):
    """Uvicorn's server, with the kernel's queue of connections not yet accepted
    set back to ``backlog`` once it serves: asyncio sets that queue to the accept
    batch (``Config.backlog``), and a burst of new clients must not be refused."""

    def __init__(self, config: uvicorn.Config, backlog: int) -> None:
        super().__init__(config)
        self.backlog = backlog

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        for sock in sockets or ():
            sock.listen(self.backlog)
