"""Subscriptions over Server-Sent Events: the graphql-sse protocol's
"distinct connections" mode, at ``/graphql``.

A client POSTs a GraphQL request as it would for a query, with ``Accept:
text/event-stream``; the answer is an event stream: an ``event: next`` for
each article (its ``data`` one JSON execution result), and ``event:
complete`` at its end. Strawberry reads the request and speaks the media
type (``strawberry.http.streaming.SSETransport``); this module holds the
stream to newsgraph's rules, as ``api.http.websocket`` holds a connection:

- the operation takes the one pipeline (``Pipeline.stream``), started before
  the answer's headers are sent: a stream refused there (its document, its
  price, its budget, an untrusted document, a subscription over GET) is an
  ordinary HTTP answer with the status the view gives any refusal (400, 429
  with ``Retry-After``, 401), not a stream; a query over SSE is answered as
  the protocol says, with one ``next`` and ``complete``;
- each subscription counts, and is charged its bytes, where every
  subscription joins the feed (``api.live.allowance``), with its client's
  WebSocket subscriptions: one over its client's share
  (``NEWSGRAPH_SUBSCRIPTIONS_PER_CLIENT``, and its bytes) or its network's
  (``NEWSGRAPH_SUBSCRIPTIONS_PER_NETWORK``, and its bytes) is refused with
  429, code ``TOO_MANY_SUBSCRIPTIONS``; one over the worker's
  (``NEWSGRAPH_SUBSCRIPTIONS_MAX``, and its bytes) with 503 and
  ``Retry-After``. The join is one synchronous step, so two arriving at once
  cannot both pass; a query over SSE never joins, and counts for nothing;
- the request's deadline bounds the start, not the stream
  (``api.http.guard`` lifts it once the answer starts); a client that stops
  reading is reset by the send timeout (``api.http.connections``), or drops
  out when it falls a whole queue behind, or when its connection holds more
  than ``NEWSGRAPH_SUBSCRIPTION_UNSENT_BYTES`` it has not read as another
  event is to be sent (``api.live.feed``, ``api.live.unsent``: that event is
  not sent), which ends its stream; every ``NEWSGRAPH_SSE_HEARTBEAT_S`` with nothing to send, a
  comment keeps proxies from closing the connection;
- each payload is drawn from the client's budget before it is made, takes
  its turn with the worker's other requests, and is written before the
  next is made, as over WebSocket.

GET streams run queries only (a GET runs queries only, everywhere), so a
subscription is POST-only: a subscription's request is not a resource to
cache or link to. The protocol's "single connection mode" (a reservation,
then operations POSTed beside the stream) would keep state per token across
requests, which a fleet of workers cannot share cheaply; it is not served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.streaming import SSETransport
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from api.errors import QueryTooCostlyError
from api.live.feed import Feed, Turns
from api.live.unsent import Unsent
from api.operation.pipeline import Stream

#: How an answer is made into the JSON object an event carries.
Process = Callable[[ExecutionResult], Awaitable[GraphQLHTTPResponse]]
#: The JSON encoder of the view.
Encode = Callable[[object], str]


class EventStreamTransport(SSETransport):
    """Strawberry's SSE media type, with newsgraph's heartbeat."""


class EventStream:
    """One subscription over SSE: the owner of its place in the feed
    (``api.live.feed.Owner``) and the body of its answer."""

    def __init__(self) -> None:
        #: Held while one payload is made and written (``api.operation.run``).
        self.writing = asyncio.Lock()
        self._ended = asyncio.Event()
        self.stream: Stream | None = None
        #: The next answer, awaited beside the heartbeat and the end.
        self._waiting: asyncio.Future[ExecutionResult] | None = None

    def overflowed(self, why: str | None = None) -> None:
        """The subscription fell a whole queue behind, or its connection held
        too much unread, and it left the feed: end."""
        self._ended.set()

    def __aiter__(self) -> EventStream:  # strawberry's view reads a stream by these
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration

    async def body(
        self,
        transport: SSETransport,
        process: Process,
        encode: Encode,
        turns: Turns,
    ) -> AsyncGenerator[str, None]:
        """The answer's events: ``next`` per answer, a comment every
        heartbeat with nothing else, and ``complete`` at the end (not when
        the stream was dropped for falling behind: the client sees the
        stream end without it, and may subscribe again)."""
        assert self.stream is not None
        answers = self.stream
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            while True:
                if self._waiting is None:
                    self._waiting = asyncio.ensure_future(anext(answers))
                waiting = self._waiting
                done, _ = await asyncio.wait(
                    (waiting, ended),
                    timeout=transport.heartbeat_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if waiting in done:
                    try:
                        result = waiting.result()
                    except StopAsyncIteration:
                        break
                    self._waiting = None
                    # Encoding is CPU that never waits: it takes turns with
                    # the worker's requests (api.live.feed.Turns).
                    await turns.take()
                    yield transport.encode_next(await process(result), encode)
                    del result  # written: not kept while the next article waits
                elif ended in done:
                    return
                else:
                    yield transport.heartbeat_message(encode)
            yield transport.encode_complete()
        finally:
            ended.cancel()

    async def close(self) -> None:
        """The answer is over (sent, cut off, or never begun): the
        subscription leaves the feed, and stops counting for its client."""
        with anyio.CancelScope(shield=True):
            waiting, self._waiting = self._waiting, None
            if waiting is not None:  # an answer on its way: stopped first
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
            if self.stream is not None:
                await self.stream.aclose()


class EventStreamResponse(StreamingResponse):
    """An event stream's answer; its subscription ends with it, however it
    ends. Each event is sent only if the feed admits it, given what the
    connection holds unread (``api.live.feed.Feed.admits``)."""

    def __init__(
        self,
        events: EventStream,
        body: AsyncGenerator[str, None],
        headers: Mapping[str, str],
        feed: Feed,
    ) -> None:
        super().__init__(body, headers=headers)
        self.events = events
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        unsent = Unsent(scope)

        async def metered(message: Message) -> None:
            body = message.get("body", b"")
            if body and not self.feed.admits(self.events, unsent.bytes, len(body)):
                return  # dropped for what it has not read (the stream ends): not sent
            await unsent.send(send(message), len(body))

        try:
            await super().__call__(scope, receive, metered)
        finally:
            await self.events.close()


def refused(result: ExecutionResult) -> bool:
    """Whether a stream's one answer says it never ran: a mistake found before
    execution (validation, variables, its filter, the transport), or its
    price (strawberry reports that one as a result of execution)."""
    if isinstance(result, PreExecutionError):
        return True
    errors = result.errors or []
    return (
        result.data is None
        and bool(errors)
        and all(isinstance(e.original_error, QueryTooCostlyError) for e in errors)
    )
