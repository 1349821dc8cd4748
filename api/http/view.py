"""Strawberry's ASGI view, fitted to newsgraph: the request's context (who
asks: ``api.http.identity``), media types negotiated before anything runs,
status codes by the ``application/graphql-response+json`` rules, requests
shed with 503, refused for their budget with 429 (``RATE_LIMITED``) or for an
unknown API key with 401, the client's budget in ``RateLimit`` and
``RateLimit-Policy`` headers (draft-ietf-httpapi-ratelimit-headers) on every
answer that is not shared (``api.operation.caching`` decides, and the
pipeline leaves the budget out of one that is), and subscriptions over
WebSocket (``api.http.websocket``) and over Server-Sent Events
(``api.http.sse``) at the same path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson
from cross_web import HTTPException
from graphql import ExperimentalIncrementalExecutionResults as GraphQLIncrementalExecutionResults
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.streaming import HTTPStreamTransport, SSETransport
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.data.deadline import current_deadline
from api.data.gateway import Gateway
from api.data.slots import RETRY_AFTER_S
from api.errors import (
    RateLimitedError,
    TooManySubscriptionsError,
    UnauthenticatedError,
    error_code,
)
from api.http.explorer import Explorer
from api.http.identity import Identify
from api.http.media import GRAPHQL_RESPONSE, JSON, is_request_error, read_accept
from api.http.sse import EventStream, EventStreamResponse, EventStreamTransport, refused
from api.http.websocket import Connections, Socket, TransportWSHandler
from api.live.feed import Feed
from api.operation import incremental
from api.operation.schema import Schema, build_schema
from api.operation.throttle import Decision
from api.operation.trusted import DOCUMENT_ID_FIELDS, with_document_id
from api.schema.context import Context, Identity
from api.telemetry.stats import current_stats
from core.config import Settings

if TYPE_CHECKING:  # strawberry's own HTTP layer, named in a signature only
    from cross_web import AsyncHTTPRequestAdapter
    from strawberry.http import GraphQLRequestProtocol
    from strawberry.types import SubscriptionExecutionResult

log = logging.getLogger("newsgraph.api")


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with newsgraph's context and a faster encoder;
    subscriptions over WebSocket (``api.http.websocket``) at the same path."""

    graphql_transport_ws_handler_class = TransportWSHandler
    websocket_adapter_class = Socket

    def __init__(
        self, settings: Settings, gateway: Gateway, explorer: Explorer, feed: Feed
    ) -> None:
        schema = build_schema(settings)
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.introspection else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_s),
            max_subscriptions_per_connection=None,  # api.http.websocket counts them
            # A browser page on another origin may subscribe as it may query.
            allowed_origins=cors_origins(settings),
        )
        self.settings = settings
        self.gateway = gateway
        self.explorer = explorer
        self.feed = feed
        self.connections = Connections(
            settings.ws_connections_max,
            settings.ws_connections_per_client,
            settings.ws_connections_per_network,
        )
        self.identify = Identify(settings, gateway, schema.limits)

    #: Whether well-formed JSON requests take the quick lane (tests compare it
    #: with strawberry's way, switched off).
    quick = True

    async def close(self) -> None:
        """The app stops: what the schema's caches do in the background stops."""
        schema = self.schema
        assert isinstance(schema, Schema)
        await schema.caches.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.quick_lane(request) if self.quick else None
            if response is None:
                response = await self.run(request)
        except HTTPException as e:
            response = PlainTextResponse(e.reason, status_code=e.status_code)
        await response(scope, receive, send)

    async def quick_lane(self, request: Request) -> Response | None:
        """The answer to a well-formed GraphQL request over JSON (a POST with
        a JSON object, or a GET with its parameters), without strawberry's
        HTTP view: the same pipeline, status rules and body, for a fraction of
        the work. None for anything else (an explorer page, multipart,
        malformed requests, whose refusals strawberry words), which strawberry
        answers. tests/api/test_view.py holds the two to the same responses."""
        heads = _Heads(request.scope["headers"])
        media_type, multipart = read_accept(heads.accept)
        if (
            media_type is None
            or multipart
            or (_event_stream(heads.accept) and self.wants_events(request))
        ):
            return None
        data = await _request_data(request, heads.content_type)
        if data is None:
            return None
        query, variables, name, extensions = data
        incremental.start(False)
        context = await self.context(request, heads.authorization, heads.forwarded)
        result = await self.run_operation(
            request.scope["method"], query, variables, name, extensions, context
        )
        status, headers = status_of(result, media_type)
        headers = {**budget_headers(context), **headers}
        response_data = await self.process_result(request, result)
        body = self.encode_json(body_of(response_data, media_type, status))
        return _Answer(body, status or 200, headers, media_type)

    async def run_operation(
        self,
        method: str,
        query: str | None,
        variables: dict[str, Any] | None,
        name: str | None,
        extensions: dict[str, Any] | None,
        context: Context,
    ) -> Any:
        """The pipeline's answer; a request that names no operation the
        method runs (a GET runs queries only) is refused with strawberry's
        own 400s."""
        budget = current_deadline()
        if budget is not None:
            budget.running = True  # the deadline's backstop answers it as run
        try:
            return await self.schema.execute(
                query,
                root_value=None,
                variable_values=variables,
                context_value=context,
                operation_name=name,
                allowed_operation_types=OperationType.from_http(method),  # type: ignore[arg-type]
                operation_extensions=extensions,
            )
        except CannotGetOperationTypeError as e:
            raise HTTPException(400, e.as_http_error_reason()) from e
        except InvalidOperationTypeError as e:
            raise HTTPException(400, e.as_http_error_reason(method)) from e
        except MissingQueryError as e:
            raise HTTPException(400, "No GraphQL query found in the request") from e

    # -- Server-Sent Events (api.http.sse) -------------------------------------

    @cached_property
    def _stream_transport_map(self) -> dict[str, HTTPStreamTransport]:
        # graphql-sse only (strawberry's multipart subscriptions are not
        # offered), with the heartbeat of the settings.
        transport = EventStreamTransport(self.settings.sse_heartbeat_s)
        return {transport.protocol: transport}

    def wants_events(self, request: Request) -> bool:
        """Whether ``request`` asks for an event stream (graphql-sse)."""
        if not _event_stream(request.headers.get("accept")):
            return False
        return self._get_stream_transport_from_headers(request.headers) is not None

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        if isinstance(request_data, GraphQLRequestData) and request_data.protocol == "sse":
            return await self.event_stream(
                request_adapter.method, request_data, context, sub_response
            )
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def event_stream(
        self, method: str, data: GraphQLRequestData, context: Context, sub_response: Response
    ) -> ExecutionResult | EventStream:
        """An operation over SSE, started: its stream of events, or, if it
        was refused before it started, its one answer with the status of
        any refusal (``api.http.sse``)."""
        if not isinstance(data.operation_name, str | None):
            raise HTTPException(
                400,
                "The GraphQL operation's `operationName` must be a string or null, if provided.",
            )
        events = EventStream()
        context.feed, context.owner = self.feed, events
        schema = self.schema
        assert isinstance(schema, Schema)
        # A GET runs queries only (strawberry would stream a subscription
        # over GET too): an event stream is no resource to cache or link to.
        allowed = {OperationType.QUERY} if method == "GET" else OperationType.from_http(method)  # type: ignore[arg-type]
        try:
            stream = await schema.stream(
                data.query,
                variable_values=data.variables,
                context_value=context,
                operation_name=data.operation_name,
                operation_extensions=data.extensions,
                allowed_operation_types=allowed,
            )
        except BaseException:
            await events.close()
            raise
        if not stream.subscription:
            await events.close()  # a query's one answer: nothing to wait for
        sub_response.headers.update(budget_headers(context))
        answer = stream.answer
        if answer is not None and refused(answer):
            status, headers = status_of(answer, GRAPHQL_RESPONSE)
            full = _too_many(answer)
            if status is None and full is not None and full.worker:
                # The worker's bound, not the client's doing: try again later.
                status = 503
                headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
            elif status is None and full is not None:  # the client's share (api.live.allowance)
                status = 429
            sub_response.status_code = status or 400
            sub_response.headers.update(headers)
            return answer
        events.stream = stream  # a subscription's events, or a query's one answer
        return events

    async def _create_streaming_response(
        self,
        request: Request,
        result: SubscriptionExecutionResult,
        protocol: GraphQLRequestProtocol,
        sub_response: Response,
    ) -> Response:
        transport = self._get_stream_transport(protocol)
        if not isinstance(result, EventStream) or not isinstance(transport, SSETransport):
            return await super()._create_streaming_response(request, result, protocol, sub_response)

        async def process(value: ExecutionResult) -> GraphQLHTTPResponse:
            response, _ = await self._process_stream_result(request, value, [])
            return response

        body = result.body(transport, process, self.encode_json_string, self.feed.turns)
        headers = {**sub_response.headers, **transport.headers}
        return EventStreamResponse(result, body, headers, self.feed)

    async def render_graphql_ide(self, request: Request) -> Response:
        if self.explorer.local:
            return self.explorer.render()
        return await super().render_graphql_ide(request)  # loads GraphiQL from a CDN

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A hash-only persisted-query GET, or one naming a trusted document,
        # has no `query` either: it wants data.
        named = ("extensions", *DOCUMENT_ID_FIELDS)
        return not any(
            field in request.query_params for field in named
        ) and super().should_render_graphql_ide(request)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        if isinstance(request, Request):
            # Negotiated before anything runs, so a client that can read
            # neither media type costs no parsing; the explorer is HTML.
            media_type, multipart = read_accept(request.headers.get("accept"))
            if self.wants_events(request):
                # An event stream (api.http.sse); a refusal before it starts is JSON.
                media_type, multipart = JSON, False
            if incremental.start(multipart).multipart and media_type is None:
                # Its parts are application/json: a multipart reader reads that.
                media_type = JSON
            if media_type is None and not self.should_render_graphql_ide(
                self.request_adapter_class(request)
            ):
                raise HTTPException(
                    406, f"not acceptable: ask for {GRAPHQL_RESPONSE} or application/json"
                )
            sub_response.media_type = media_type
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        if sub_response.media_type != GRAPHQL_RESPONSE:
            return super().create_response(response_data, sub_response)
        if isinstance(response_data, dict):
            response_data = body_of(response_data, GRAPHQL_RESPONSE, sub_response.status_code)
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = GRAPHQL_RESPONSE
        return response

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        name = request_data.operation_name
        if not isinstance(name, str | None):
            # Not a GraphQL request at all: refused as strawberry refuses a
            # `query` that is not a string (graphql-core would crash on it).
            raise HTTPException(
                400,
                "The GraphQL operation's `operationName` must be a string or null, if provided.",
            )
        result = await self.run_operation(
            request_adapter.method,
            request_data.query,
            request_data.variables,
            name,
            request_data.extensions,
            context,
        )
        sub_response.headers.update(budget_headers(context))
        if isinstance(result, GraphQLIncrementalExecutionResults):
            # Executing, so not a request error; streamed as multipart/mixed
            # (run() does it), each part in 200's body like any field error.
            result_: ExecutionResult = result  # type: ignore[assignment]
            return result_
        status, headers = status_of(result, sub_response.media_type)
        if status is not None:
            sub_response.status_code = status
        sub_response.headers.update(headers)
        executed: ExecutionResult = result
        return executed

    async def _process_stream_result(
        self, request: Request, value: Any, all_pending: list[Any]
    ) -> tuple[GraphQLHTTPResponse, list[Any]]:
        response, all_pending = await super()._process_stream_result(request, value, all_pending)
        # strawberry gives each deferred payload its fragment's path, as the
        # 20220824 format Apollo Client reads wants; but that format wants the
        # path of the payload itself, which is deeper by the current draft's
        # `subPath` when fields already sent are left out of the payload.
        for payload in response.get("incremental") or ():
            if "subPath" in payload:
                payload["path"] = [*payload["path"], *payload["subPath"]]
        return response, all_pending

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        stats = current_stats()
        if stats is not None and result.errors:
            stats.error_codes.extend(error_code(e) for e in result.errors)
        return await super().process_result(request, result)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        headers = request.headers
        return await self.context(
            request, headers.get("authorization"), headers.getlist("x-forwarded-for")
        )

    async def context(
        self, request: Request | WebSocket, authorization: str | None, forwarded: list[str]
    ) -> Context:
        """A request's context, from the headers that say who it is from."""
        identity = await self._identity(request, authorization, forwarded)
        return Context(gateway=self.gateway, admin=identity.tier == "admin", identity=identity)

    async def identity(self, request: Request | WebSocket, authorization: str | None) -> Identity:
        """Who a request (or a WebSocket connection) is from."""
        forwarded = request.headers.getlist("x-forwarded-for")
        return await self._identity(request, authorization, forwarded)

    def _identity(
        self, request: Request | WebSocket, authorization: str | None, forwarded: list[str]
    ) -> Awaitable[Identity]:
        # The connection's (host, port), as ``request.client`` reads it, without its tuple made.
        client = request.scope.get("client")
        peer = client[0] if client else None
        return self.identify(peer, forwarded, authorization)

    def parse_query_params(self, params: Mapping[str, str | None]) -> dict[str, Any]:
        # A GET's `variables` and `extensions` are JSON values of their own, and
        # `null` means none (decode_json below refuses a bare null as a body).
        given = {
            k: None if k in ("variables", "extensions") and v == "null" else v
            for k, v in params.items()
        }
        parsed: dict[str, Any] = with_document_id(super().parse_query_params(given))
        return parsed

    def parse_json(self, data: str | bytes) -> Any:
        # A trusted document may be named by `documentId` (or `doc_id`, `id`),
        # which strawberry would drop: it goes on in the request's extensions.
        return with_document_id(super().parse_json(data))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        # strawberry answers json.JSONDecodeError with a 400. orjson raises a
        # subclass of it for invalid UTF-8 too (json.loads would raise
        # UnicodeDecodeError: a 500), and a body that is JSON but not an object
        # (`null`, `"x"`) is refused the same way rather than crashing the view.
        parsed = orjson.loads(data)
        if not isinstance(parsed, dict | list):
            raise json.JSONDecodeError("expected a JSON object with a `query`", str(data)[:20], 0)
        return parsed


class _Answer(Response):
    """A quick-lane answer: its headers as ``Response`` writes them (names
    lower-cased, in order, then ``content-length`` and ``content-type``),
    without its search for those two among them: the view's headers
    (``status_of``, ``budget_headers``) are never either."""

    def __init__(self, body: bytes, status: int, headers: dict[str, str], media_type: str) -> None:
        self.status_code = status
        self.media_type = media_type
        self.background = None
        self.body = body
        self.raw_headers = [
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", media_type.encode("latin-1")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # ``Response.__call__``'s two messages, without its checks for a
        # WebSocket's denial and a background task: a quick-lane answer is
        # an HTTP request's, with none.
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


class _Heads:
    """The request headers the quick lane reads, found in one pass over the
    raw headers, as Starlette's ``Headers`` reads them (the first of each
    name, every ``X-Forwarded-For``), which would scan them once for each."""

    __slots__ = ("accept", "authorization", "content_type", "forwarded")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        accept = authorization = content_type = None
        forwarded: list[str] = []
        for name, value in raw:
            if name == b"accept":
                if accept is None:
                    accept = value.decode("latin-1")
            elif name == b"content-type":
                if content_type is None:
                    content_type = value.decode("latin-1")
            elif name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        self.accept: str | None = accept
        self.authorization: str | None = authorization
        self.content_type: str | None = content_type
        self.forwarded = forwarded


def _event_stream(accept: str | None) -> bool:
    """Whether an ``Accept`` may ask for an event stream: the only transport
    offered is graphql-sse's, which takes nothing but ``text/event-stream``."""
    return accept is not None and "event-stream" in accept.lower()


def status_of(result: Any, media_type: str | None) -> tuple[int | None, dict[str, str]]:
    """An answer's status code (None: 200) and the headers that go with it."""
    refused = _refusal(result.errors)
    if isinstance(refused, RateLimitedError):
        # Over its budget: nothing ran, and waiting is what helps.
        return 429, {"Retry-After": str(refused.retry_after_s), "Cache-Control": "no-store"}
    if isinstance(refused, UnauthenticatedError):
        return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    budget = current_deadline()
    if budget is not None and budget.shed:
        # Shed, not failed: nothing is wrong with the query, and a 503 with
        # Retry-After is what clients, proxies and load balancers retry.
        return 503, {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
    if media_type == GRAPHQL_RESPONSE and is_request_error(result.data, result.errors):
        # The media type's own rule: a request that failed before it ran
        # (no `data`) is a 400; field errors with data stay a 200.
        return 400, {}
    return None, {}


def body_of(
    response_data: GraphQLHTTPResponse, media_type: str | None, status: int | None
) -> GraphQLHTTPResponse:
    """What an answer's body holds: under application/graphql-response+json a
    4xx or 5xx means "not executed" (a request error, or shed with 503 to be
    retried whole), so it has no `data`."""
    if media_type == GRAPHQL_RESPONSE and status and "data" in response_data:
        response_data = response_data.copy()
        response_data.pop("data", None)
    return response_data


async def _request_data(
    request: Request, content_type: str | None
) -> tuple[str | None, dict[str, Any] | None, str | None, dict[str, Any] | None] | None:
    """``(query, variables, operationName, extensions)`` of a well-formed GraphQL
    request over JSON (``content_type`` its header); None for anything else
    (strawberry then words the refusal)."""
    method = request.scope["method"]
    if method == "POST":
        if (content_type or "").partition(";")[0].strip() != "application/json":
            return None
        try:
            data = orjson.loads(await read_body(request))
        except orjson.JSONDecodeError:
            return None
    elif method == "GET":
        params = request.query_params
        if "query" not in params and "extensions" not in params:
            return None  # the explorer, or no request at all
        data = dict(params)
        for key in ("variables", "extensions"):
            raw = data.get(key)
            if raw is None or raw == "null":
                data[key] = None
                continue
            try:
                data[key] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
    else:
        return None
    if not isinstance(data, dict):
        return None
    # A trusted document named by `documentId` (or `doc_id`, `id`), as on strawberry's way.
    data = with_document_id(data)
    query, variables = data.get("query"), data.get("variables")
    name, extensions = data.get("operationName"), data.get("extensions")
    if not (
        isinstance(query, str | None)
        and isinstance(variables, dict | None)
        and isinstance(name, str | None)
        and isinstance(extensions, dict | None)
    ):
        return None
    return query, variables, name, extensions


async def read_body(request: Request) -> bytes:
    """``await request.body()``, the same bytes and the same exception for a
    client that left (``ClientDisconnect``), read without the async generator
    (``Request.stream``) and its ``aclosing`` that Starlette reads it through:
    those cost about as much as the rest of reading a GraphQL request
    (callgrind: 23 k of the 47 k instructions the quick lane spent reading
    one). The body
    is kept where ``Request.body`` keeps it, so strawberry's way, which takes
    the requests the quick lane leaves, reads the same bytes again; a
    request whose body was read, or began to be, is left to Starlette."""
    if hasattr(request, "_body") or request._stream_consumed:
        return await request.body()
    chunks: list[bytes] = []
    receive = request.receive
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect()
    request._stream_consumed = True
    body = request._body = b"".join(chunks)
    return body


def _too_many(result: ExecutionResult) -> TooManySubscriptionsError | None:
    """Why a subscription was refused when it joined the feed, if for the
    subscriptions the worker holds (``NEWSGRAPH_SUBSCRIPTIONS_MAX``,
    ``NEWSGRAPH_SUBSCRIPTIONS_MAX_BYTES``) or its client's share of them
    (``NEWSGRAPH_SUBSCRIPTIONS_PER_CLIENT``,
    ``NEWSGRAPH_SUBSCRIPTIONS_PER_CLIENT_BYTES``) or its network's
    (``NEWSGRAPH_SUBSCRIPTIONS_PER_NETWORK``,
    ``NEWSGRAPH_SUBSCRIPTIONS_PER_NETWORK_BYTES``; ``api.live.allowance``)."""
    for error in result.errors or ():
        if isinstance(error.original_error, TooManySubscriptionsError):
            return error.original_error
    return None


def _refusal(errors: list[Any] | None) -> Exception | None:
    """The budget's or the key's refusal among an answer's errors, if any."""
    for error in errors or ():
        if isinstance(error.original_error, RateLimitedError | UnauthenticatedError):
            return error.original_error
    return None


def budget_headers(context: Context) -> dict[str, str]:
    """The client's budget as the IETF draft's ``RateLimit-Policy`` (the tier:
    its whole bucket, ``q``, and the seconds it takes to fill, ``w``) and
    ``RateLimit`` (points left, ``r``, and the seconds until full, ``t``)."""
    status = context.budget_status
    if not isinstance(status, Decision):
        return {}
    name = context.identity.tier
    policy = status.policy
    return {
        "RateLimit-Policy": f'"{name}";q={policy.burst};w={policy.window_s};qu="points"',
        "RateLimit": f'"{name}";r={int(status.available)};t={status.full_in_s}',
    }


def cors_origins(settings: Settings) -> list[str]:
    return [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
