"""GraphQL over WebSocket at ``/graphql``: protocol ``graphql-transport-ws``,
for subscriptions.

Strawberry speaks the protocol; this module makes a connection safe to hold
open for anyone:

- a socket counts toward a limit only once its ``connection_init`` is
  accepted; before that it must send one within
  ``NEWSGRAPH_WS_ANONYMOUS_INIT_TIMEOUT_S`` (``NEWSGRAPH_WS_INIT_TIMEOUT_S``
  when its handshake carried the admin token), else it is closed with 4408,
  and a client may have only as many such sockets waiting as it may hold
  (more are closed with 1013 at once), so sockets opened as fast as one
  client can hold nothing of anyone else's;
- at ``connection_init`` the connection is counted for its client (its
  identity's key, ``api.http.identity``: an address, an API key, the admin),
  its network (``api.http.identity.network_key``: an IPv6 /48, an IPv4 /24)
  and its worker: a client holds at most
  ``NEWSGRAPH_WS_CONNECTIONS_PER_CLIENT`` connections, the clients of a
  network ``NEWSGRAPH_WS_CONNECTIONS_PER_NETWORK`` together, a worker
  ``NEWSGRAPH_WS_CONNECTIONS_MAX`` (more are closed with 1013, try again
  later); a connection runs at most
  ``NEWSGRAPH_SUBSCRIPTIONS_PER_CONNECTION`` operations, counted from their
  ``subscribe`` message (a bound on this connection's work, which only a
  connection has: it is here), and a client's subscriptions over all its
  connections and event streams, its network's and the worker's, are bounded
  in count and bytes where every subscription joins the feed
  (``api.live.allowance``);
  a subscription over any of them is refused with an ``error``, code
  ``TOO_MANY_SUBSCRIPTIONS``, so that one client cannot take every
  connection or subscription from the others;
- a message is text of at most ``NEWSGRAPH_MAX_BODY_BYTES`` (else 1009), a JSON
  object of the protocol's shape (else 4400);
- ``connection_init``'s payload may carry ``{"authorization": "Bearer
  <token>"}``, an API key or the admin token, as the handshake's
  ``Authorization`` header may: the connection's identity
  (``api.http.identity``), whose budget its subscriptions draw from and for
  whom it is counted; an unknown or revoked key is closed with 4403;
- the server pings every ``NEWSGRAPH_WS_KEEPALIVE_S``, and closes a client it
  has heard nothing from for two of those (4408);
- a client that falls a whole queue behind (it stopped reading), or whose
  connection holds more than ``NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES`` it has
  not read when another message is to be sent (``api.live.unsent``: that
  message is not sent), is closed with 4008, after its subscriptions are
  dropped (``api.live.feed``);
- only subscriptions run here (queries and mutations are answered over
  HTTP, where caching and persisted queries work): each subscription is
  validated, limited and priced as a query is (``api.operation.schema``), and
  each payload's price is drawn from its client's budget before it is made
  (the pipeline's ``each`` steps, ``api.operation.pipeline.Pipeline.draw``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.errors import TooManySubscriptionsError
from api.http.identity import network_key
from api.http.sse import refused
from api.live.feed import Feed
from api.live.unsent import Unsent
from api.schema.context import Context, Identity
from core.config import MAX_WS_OPERATION_ID, Settings

log = logging.getLogger("newsgraph.api")

#: Close codes (4xxx are the application's; graphql-transport-ws defines 44xx).
TOO_MANY_CONNECTIONS = 1013  # standard: try again later
MESSAGE_TOO_BIG = 1009  # standard
BAD_MESSAGE = 4400
SILENT = 4408  # no connection_init in time, or no answer to pings
FORBIDDEN = 4403  # graphql-transport-ws: the credentials are refused
TOO_SLOW = 4008  # fell a whole queue behind


class Host(Protocol):
    """What a connection needs of the view that accepted it (``api.http.view``)."""

    settings: Settings
    feed: Feed
    connections: Connections

    def encode_json(self, data: object) -> bytes: ...

    def decode_json(self, data: str | bytes) -> object: ...

    async def identity(self, request: Any, authorization: str | None) -> Identity: ...


#: Who a connection's limits count for: its identity's key
#: (``api.schema.context.Identity``), whose budget its payloads draw from too.
Client = str
#: The shares a socket counts toward: each one's key, its bound, and who is
#: refused past it.
Counted = list[tuple[tuple[str, Client], int, str]]


class Connections:
    """The WebSocket connections one worker holds, and each client's share
    and its network's (``api.http.identity.network_key``: a client's IPv6 /48
    or IPv4 /24, whose clients together may hold ``per_network``; a client
    that is its own network, an API key or the admin, has no second share).

    A socket counts only once its ``connection_init`` is accepted; until then
    it waits, and a client (a network) may have only as many sockets waiting
    as it may hold: more are refused at once, and a waiting one is closed at
    its init deadline."""

    def __init__(self, most: int, per_client: int, per_network: int = sys.maxsize) -> None:
        self.most = most
        self.per_client = per_client
        self.per_network = per_network
        self.open = 0
        #: Sockets waiting, and connections held, per client and per network.
        self._waiting: Counter[tuple[str, Client]] = Counter()
        self._counted: Counter[tuple[str, Client]] = Counter()
        self._held: dict[Client, set[object]] = {}

    def _shares(self, client: Client) -> Counted:
        shares: Counted = [(("client", client), self.per_client, "this client")]
        network = network_key(client)
        if network != client:
            shares.append((("network", network), self.per_network, "this client's network"))
        return shares

    @staticmethod
    def _full(counter: Counter[tuple[str, Client]], shares: Counted) -> tuple[str, int] | None:
        for key, most, who in shares:
            if counter[key] >= most:
                return who, most
        return None

    @staticmethod
    def _add(counter: Counter[tuple[str, Client]], shares: Counted, step: int) -> None:
        for key, _, _ in shares:
            counter[key] += step
            if counter[key] <= 0:
                del counter[key]

    def wait(self, client: Client) -> bool:
        """A new socket of ``client``, before its ``connection_init``: False
        if that client (its network) has as many waiting as it may."""
        shares = self._shares(client)
        if self._full(self._waiting, shares) is not None:
            return False
        self._add(self._waiting, shares, 1)
        return True

    def stop_waiting(self, client: Client) -> None:
        self._add(self._waiting, self._shares(client), -1)

    def enter(self, holder: object, client: Client) -> str | None:
        """Count ``holder`` for ``client``; or why not (the close reason)."""
        shares = self._shares(client)
        full = self._full(self._counted, shares)
        if full is not None:
            who, most = full
            return f"too many connections from {who} (at most {most})"
        if self.open >= self.most:
            return "too many connections; try again later"
        self._held.setdefault(client, set()).add(holder)
        self._add(self._counted, shares, 1)
        self.open += 1
        return None

    def leave(self, holder: object, client: Client) -> None:
        held = self._held.get(client)
        if held is None or holder not in held:
            return
        held.discard(holder)
        self._add(self._counted, self._shares(client), -1)
        self.open -= 1
        if not held:
            del self._held[client]


class Socket(ASGIWebSocketAdapter):
    """Strawberry's WebSocket, reading only text messages of bounded size and
    writing text frames (graphql-transport-ws is text: a browser client cannot
    read JSON from a binary frame); it remembers when it last heard the client."""

    def __init__(self, view: Any, request: Any, response: Any) -> None:
        super().__init__(view, request, response)
        self.max_bytes: int = view.settings.max_body_bytes
        self.heard = time.monotonic()
        #: What the connection holds that its client has not read, and who
        #: decides whether it may be sent more (its handler: the feed's
        #: bound on it, ``api.live.feed.Feed.admits``).
        self.unsent = Unsent(request.scope)
        self.admits: Callable[[int, int], bool] | None = None

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            self.heard = time.monotonic()
            text = message.get("text")
            if text is None:
                raise NonTextMessageReceived
            if len(text) > self.max_bytes or len(text.encode()) > self.max_bytes:
                await self.close(
                    MESSAGE_TOO_BIG, f"a message may be at most {self.max_bytes} bytes"
                )
                return
            try:
                yield self.view.decode_json(text)
            except json.JSONDecodeError as exc:
                if not ignore_parsing_errors:
                    raise NonJsonMessageReceived from exc

    async def send_json(self, message: Mapping[str, object]) -> None:
        data = self.view.encode_json(message)
        if self.admits is not None and not self.admits(self.unsent.bytes, len(data)):
            raise WebSocketDisconnected  # dropped for what it has not read: not sent
        text = data.decode() if isinstance(data, bytes) else data
        try:
            await self.unsent.send(self.ws.send_text(text), len(data))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        # Already closed (by the client, or by an earlier close): nothing to send.
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.ws.close(code=code, reason=reason)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """One client's connection: the protocol, within this module's bounds."""

    view: Host  # type: ignore[assignment]
    websocket: Socket

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = self.view.settings
        self.context.feed = self.view.feed
        self.context.owner = self
        self.websocket.admits = functools.partial(self.view.feed.admits, self)
        self._closing: tuple[int, str] | None = None
        self._close_now = asyncio.Event()
        #: One payload of this connection's answered and written at a time (Owner).
        self.writing = asyncio.Lock()
        #: Who the socket counts for: before ``connection_init`` as it waits
        #: (by its handshake), then as a connection held (by its init too).
        self.waiting: Client | None = self.context.identity.key
        self.client: Client | None = None
        if not self.context.admin:  # a handshake without the admin token
            seconds = self.settings.ws_anonymous_init_timeout_s
            self.connection_init_wait_timeout = timedelta(seconds=seconds)

    # -- the connection's life ---------------------------------------------

    async def handle(self) -> None:
        connections = self.view.connections
        assert self.waiting is not None
        if not connections.wait(self.waiting):
            self.waiting = None
            await self.websocket.close(
                TOO_MANY_CONNECTIONS,
                "too many connections from this client (or its network) waiting for "
                "connection_init",
            )
            return
        try:
            reader = asyncio.create_task(super().handle())
            watcher = asyncio.create_task(self._watch())
            try:
                await asyncio.wait({reader, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reader, watcher):
                    task.cancel()
                await asyncio.gather(reader, watcher, return_exceptions=True)
        finally:
            if self.waiting is not None:
                connections.stop_waiting(self.waiting)
            if self.client is not None:
                connections.leave(self, self.client)
            self.view.feed.leave_all(self)

    async def _watch(self) -> None:
        """Ping the client every keep-alive interval, and close the connection
        when it has been silent for two, or when it is dropped."""
        interval = float(self.settings.ws_keepalive_s)
        while not self._close_now.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._close_now.wait(), interval)
                break
            if time.monotonic() - self.websocket.heard > 2 * interval:
                self._closing = (SILENT, "no answer to pings")
                break
            if self.connection_acknowledged:
                # Bounded: a send waits while the client does not read.
                with contextlib.suppress(TimeoutError, WebSocketDisconnected):
                    await asyncio.wait_for(self.send_message({"type": "ping"}), interval)
        code, reason = self._closing or (TOO_SLOW, "too slow")
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        # The close frame waits behind what the client has not read yet; it
        # gets the same patience as a silent client, then the app lets go.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.websocket.close(code, reason), 2 * interval)

    def overflowed(self, why: str | None = None) -> None:
        """A subscription fell a whole queue behind, or the connection holds
        too much unread (``api.live.feed``): close."""
        if why is None:
            why = f"too slow: {self.view.feed.queue_size} articles were waiting to be sent"
        self._closing = (TOO_SLOW, why)
        self._close_now.set()

    # -- messages ----------------------------------------------------------

    async def handle_message(self, message: Any) -> None:
        problem = _malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload")
        if payload is None:  # the protocol allows null, or no payload at all
            message = {**message, "payload": {}}
        elif isinstance(payload, dict):
            authorization = payload.get("authorization", payload.get("Authorization"))
            if isinstance(authorization, str):
                identity = await self.view.identity(self.websocket.ws, authorization)
                self.context.identity = identity
                self.context.admin = identity.tier == "admin"
        if self.context.identity.refused is not None:
            await self.websocket.close(FORBIDDEN, f"Forbidden: {self.context.identity.refused}")
            return
        first = not (self.connection_init_received or self.connection_timed_out)
        if first and self.waiting is not None:
            # From now on the socket counts, for the identity its init names.
            connections = self.view.connections
            connections.stop_waiting(self.waiting)
            self.waiting = None
            client = self.context.identity.key
            refusal = connections.enter(self, client)
            if refusal is not None:
                self.connection_init_received = True
                if self.connection_init_timeout_task is not None:
                    self.connection_init_timeout_task.cancel()
                await self.websocket.close(TOO_MANY_CONNECTIONS, refusal)
                return
            self.client = client
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: Any) -> None:
        most = self.settings.subscriptions_per_connection
        full = message["id"] not in self.operations and len(self.operations) >= most
        if full and self.connection_acknowledged:  # (if not: strawberry closes the connection)
            error = TooManySubscriptionsError(
                f"a connection may hold at most {most} subscriptions; complete one first"
            )
            formatted = GraphQLError(str(error), extensions=error.extensions).formatted
            await self.send_message({"id": message["id"], "type": "error", "payload": [formatted]})
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """One subscription: ``error`` if it cannot start, else ``next`` for
        each article and ``complete`` at its end."""
        try:
            stream = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context.for_operation(),
                operation_name=operation.operation_name,
                allowed_operation_types=(OperationType.SUBSCRIPTION,),
            )
            # Started: the pipeline holds the variables the operation declares
            # (api.operation.allowed); strawberry's copy of all those the
            # message sent, up to its 100 kB, is not kept as long as it runs.
            operation.variables = None
            first = True
            async with contextlib.aclosing(stream):
                async for result in stream:
                    if not isinstance(result, ExecutionResult):
                        break  # never here: api.operation.incremental strips @defer
                    if first and refused(result):
                        await operation.send_initial_errors(result.errors or [])
                        return
                    first = False
                    # Encoding and writing a payload is CPU that never waits
                    # (JSON, and the compression of permessage-deflate: about
                    # 20 ms a megabyte, for each subscriber): payloads take
                    # turns with the worker's other requests (api.live.feed.Turns).
                    await self.view.feed.turns.take()
                    await operation.send_next(result)
                    del result  # written: not kept while the next article waits
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except WebSocketDisconnected:
            pass
        except Exception:
            log.exception("subscription %s failed", operation.id[:MAX_WS_OPERATION_ID])
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})


def _malformed(message: Any) -> str | None:
    """Why a message is not one of the protocol's, or None."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string `type`"
    kind = message["type"]
    if kind in ("subscribe", "complete"):
        op_id = message.get("id")
        if not isinstance(op_id, str) or not op_id or len(op_id) > MAX_WS_OPERATION_ID:
            return f"`id` must be a non-empty string of at most {MAX_WS_OPERATION_ID} characters"
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return "`payload` must be an object with a string `query`"
        if not isinstance(payload.get("variables"), dict | None):
            return "`payload.variables` must be an object or null"
        if not isinstance(payload.get("operationName"), str | None):
            return "`payload.operationName` must be a string or null"
    return None
