"""OpenTelemetry traces: one span per operation, one per store call it makes.

Off unless the environment asks, with the OpenTelemetry SDK's own settings
(nothing of newsgraph's): ``OTEL_TRACES_EXPORTER`` naming an exporter (as the
SDK reads it: ``otlp``, resolved to gRPC or HTTP by
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``/``OTEL_EXPORTER_OTLP_PROTOCOL``, or any
name of the ``opentelemetry_traces_exporter`` entry points, ``console``
among them), or, with that unset, an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
which means ``otlp`` as the SDK's default does. ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` keep it off. The rest (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, the
exporter's endpoint, headers and timeouts, ``OTEL_PROPAGATORS``) the SDK reads
itself.

The SDK is an optional extra (``pip install 'newsgraph[otel]'``): nothing here
imports it until tracing is asked for, and with it off every hook below is a
check of one module variable, so a server that does not trace pays nothing.

Spans are opened where the work is known as a whole, not per resolved field:
the pipeline opens the operation's (``api.operation.traced``), the store
gateway one per call (``api.data.gateway``), and the HTTP layer hands in the
client's ``traceparent`` (``api.http.observe``). A span per resolved object,
as strawberry's own OpenTelemetry extension opens, costs large answers dearly
(strawberry #3475); a plan knows its store calls, and those are the spans
worth having.

Each span is built once, finished, as the SDK's ``ReadableSpan`` (what span
processors and exporters take), and handed to the span processors, with the
SDK's own sampler, id generator, resource, propagators, batching and
exporters. The SDK's live ``Span`` (opened, then given attributes one call
at a time, each checked under a lock) costs about 13 µs a span on this
machine, and an operation with its store calls cost a compiled query 11% more
CPU; built finished, the same spans cost a few µs each (the README's Tracing
section has the measurements). What that leaves out of the SDK's span: the
``OTEL_SPAN_*`` limits (newsgraph's spans carry a handful of short attributes)
and the processors' ``on_start``, which the batch and simple processors do
not use.

Two more of the SDK's steps are taken here in their commonest case, each
giving what the SDK would: a lone well-formed ``traceparent`` under the
default propagators is read to its span context without the propagators'
Context (anything else, a ``tracestate`` or ``baggage`` beside it included,
goes to the propagators), and the default sampler's decision
(``parentbased_always_on``) is made without calling it (any other sampler is
asked). Together they were a third of what the hooks cost a request. What
remains is mostly the SDK's: its span objects and batch queue, and, in the
batch thread, the OTLP exporter's encoding (about 20 µs a span here, more
than all the hooks of a request).
"""

from __future__ import annotations

import atexit
import contextvars
import importlib.metadata
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the optional extra, named in signatures only
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import SpanContext

log = logging.getLogger("newsgraph.api")

#: The instrumentation scope newsgraph's spans carry.
SCOPE: Final = "newsgraph"
#: The span of an operation refused before its type was known (the semantic
#: conventions' name; a known operation's span is named by its type).
UNKNOWN_OPERATION: Final = "GraphQL Operation"
#: The store, as the database semantic conventions name it.
DB_SYSTEM: Final = "mongodb"
#: The SDK's default ``service.name`` starts so; newsgraph names itself instead.
_UNKNOWN_SERVICE = "unknown_service"
#: The SDK's OTLP exporter names, and the protocol setting that picks one
#: (mirroring opentelemetry-sdk's own configuration, which defaults to gRPC).
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}

AttributeValue = str | bool | int | float


class Untraced:
    """What every hook returns with tracing off: a context that does nothing."""

    __slots__ = ()
    recording: Final = False

    def __enter__(self) -> Untraced:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def record(self, *args: object, **kwargs: object) -> None:
        """:meth:`OperationSpan.record`, with nothing to record it in."""

    def returned(self, rows: int) -> None:
        """:meth:`StoreSpan.returned`, with nothing to record it in."""


OFF: Final = Untraced()


class Spans:
    """What spans are made with: the SDK's parts, bound once tracing is on."""

    def __init__(self, provider: TracerProvider, processors: Sequence[SpanProcessor]) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.trace.sampling import DEFAULT_ON
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.processors = tuple(processors)
        #: The sampler, ids and resource the SDK read from the environment.
        self.sampler = provider.sampler
        #: The SDK's default sampler (``parentbased_always_on``), whose
        #: decision :meth:`OperationSpan.__enter__` makes without asking it:
        #: keep a root, follow a parent's sampled flag.
        self.default_sampling = self.sampler is DEFAULT_ON
        self._w3c = (TraceContextTextMapPropagator, W3CBaggagePropagator)
        self.ids = provider.id_generator
        self.resource = _hashed(provider.resource)
        self.scope = InstrumentationScope(SCOPE, _version())
        self.context, self.propagate, self.trace = context, propagate, trace
        self.ReadableSpan, self.Event, self.SpanContext = ReadableSpan, Event, SpanContext
        self.TraceFlags = TraceFlags
        self.SERVER, self.CLIENT = SpanKind.SERVER, SpanKind.CLIENT
        self.SAMPLED = TraceFlags(TraceFlags.SAMPLED)
        self.OK = Status(StatusCode.UNSET)
        self.Status, self.ERROR = Status, StatusCode.ERROR
        #: The propagators' header names, as ASGI gives them (lowercase
        #: bytes), for the propagators they were read from, and whether those
        #: are the SDK's default W3C ones (``tracecontext,baggage``).
        self._textmap: object = None
        self._fields: frozenset[bytes] = frozenset()
        self.w3c = False

    def fields(self) -> frozenset[bytes]:
        """The header names the global propagators read (``OTEL_PROPAGATORS``),
        found again only if the propagators were replaced."""
        textmap = self.propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._fields = frozenset(f.lower().encode("latin-1") for f in textmap.fields)
            inner = getattr(textmap, "_propagators", None)  # a CompositePropagator's
            self.w3c = inner is not None and all(type(p) in self._w3c for p in inner)
            self._textmap = textmap
        return self._fields

    def emit(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: Any,
        attributes: dict[str, AttributeValue],
        started: int,
        error: BaseException | str | None = None,
        failed: bool = False,
        ended: int | None = None,
    ) -> None:
        """One finished span, to every processor: ended now, or at ``ended``."""
        status = self.OK
        events: tuple[Any, ...] = ()
        if isinstance(error, BaseException):
            code = getattr(error, "code", None) or type(error).__qualname__
            attributes["error.type"] = code
            status = self.Status(self.ERROR, str(error)[:200])
            events = (
                self.Event(
                    "exception",
                    {"exception.type": type(error).__qualname__, "exception.message": str(error)},
                ),
            )
        elif error is not None:
            attributes["error.type"] = error
            if failed:
                status = self.Status(self.ERROR, error)
        span = self.ReadableSpan(
            name,
            context,
            parent,
            self.resource,
            attributes,
            events,
            kind=kind,
            status=status,
            start_time=started,
            end_time=ended or time.time_ns(),
            instrumentation_scope=self.scope,
        )
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()


#: The spans' makings; None: tracing is off.
_spans: Spans | None = None
#: Whether the environment was read (by :func:`configure`) or spans given (:func:`use`).
_configured = False
#: The operation being served in this context, for its store calls' spans.
_operation: contextvars.ContextVar[OperationSpan | None] = contextvars.ContextVar(
    "newsgraph_operation_span", default=None
)


#: The client's trace context (:func:`incoming`) in this context, if it sent one.
_client: contextvars.ContextVar[_Client | None] = contextvars.ContextVar(
    "newsgraph_client_trace", default=None
)


def enabled() -> bool:
    return _spans is not None


def operation() -> OperationSpan | Untraced:
    """The span of one operation, as a context: its store calls are its
    children, and its parent is the client's span if the HTTP layer was handed
    one (and the sampler keeps it). Named and described by
    :meth:`OperationSpan.record` once the pipeline knows the operation."""
    spans = _spans
    if spans is None:
        return OFF
    return OperationSpan(spans)


def store_call(command: str, collection: str) -> StoreSpan | Untraced:
    """The span of one store call, a child of the operation being served; no
    span for a call outside one (the subscription feed's polling), or in one
    the sampler dropped."""
    if _spans is None:
        return OFF
    parent = _operation.get()
    if parent is None or not parent.open:
        return OFF
    parent.store_calls += 1
    if parent.context is None:
        return OFF
    return StoreSpan(parent, command, collection)


def incoming(headers: Iterable[tuple[bytes, bytes]]) -> _Incoming | Untraced:
    """The client's trace context (W3C ``traceparent``, and whatever else
    ``OTEL_PROPAGATORS`` names) from a request's headers, made current inside:
    the operations it carries become children of the client's span."""
    spans = _spans
    if spans is None:
        return OFF
    fields = spans.fields()
    # ASGI header names are lowercase bytes: most requests carry none of
    # these, and pay one set lookup a header.
    carrier = {
        name.decode("latin-1"): value.decode("latin-1") for name, value in headers if name in fields
    }
    if not carrier:
        return OFF
    if spans.w3c and len(carrier) == 1:
        # A lone, well-formed traceparent (what a tracing client sends) under
        # the default propagators: read here, to the same span context the
        # SDK's propagator makes, without the Context it would build.
        header = carrier.get("traceparent")
        if header is not None and (parent := _traceparent(spans, header)) is not None:
            return _Incoming((parent, None))
    context = spans.propagate.extract(carrier)
    parent = spans.trace.get_current_span(context).get_span_context()
    return _Incoming((parent, context))


#: A W3C traceparent of version 00, as a client sends it (the SDK's own
#: propagator reads any other: later versions, surrounding blanks, refusals).
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def _traceparent(spans: Spans, header: str) -> SpanContext | None:
    match = _TRACEPARENT.fullmatch(header)
    if match is None:
        return None
    trace_id, span_id, flags = (int(group, 16) for group in match.groups())
    if not trace_id or not span_id:
        return None  # invalid: the SDK's propagator ignores it
    return spans.SpanContext(trace_id, span_id, True, spans.TraceFlags(flags))


#: The client's span, and the Context the propagators made of its headers
#: (None: only its traceparent, read by :func:`_traceparent`).
_Client = tuple["SpanContext", "Context | None"]


class _Incoming:
    """The client's context, current for newsgraph's spans (a context
    variable of newsgraph's, which :meth:`OperationSpan.__enter__` reads
    before OpenTelemetry's current context: the same parent, without
    attaching a context of the SDK's for each request)."""

    __slots__ = ("client", "token")

    def __init__(self, client: _Client) -> None:
        self.client = client

    def __enter__(self) -> None:
        self.token = _client.set(self.client)

    def __exit__(self, *exc: object) -> None:
        _client.reset(self.token)


class OperationSpan:
    """An operation's span while it is served (see :func:`operation`). Its
    store calls find it in a context variable of newsgraph's; it is not made
    the OpenTelemetry context's current span (nothing else in the process
    makes spans, and that costs a few µs an operation)."""

    __slots__ = (
        "_token",
        "attributes",
        "context",
        "error",
        "failed",
        "name",
        "open",
        "parent",
        "spans",
        "started",
        "store_calls",
    )
    recording: Final = True

    def __init__(self, spans: Spans) -> None:
        self.spans = spans
        self.store_calls = 0
        self.open = False
        self.name = UNKNOWN_OPERATION
        self.attributes: dict[str, AttributeValue] = {}
        self.error: str | None = None
        self.failed = False
        #: This span's context; None: the sampler dropped it (and its children).
        self.context: SpanContext | None = None

    def __enter__(self) -> OperationSpan:
        spans = self.spans
        client = _client.get()
        if client is None:  # no client context: whatever else made one current
            current: Context | None = spans.context.get_current()
            parent = spans.trace.get_current_span(current).get_span_context()
        else:
            parent, current = client
        valid = parent.is_valid
        self.parent = parent if valid else None
        trace_id = parent.trace_id if valid else spans.ids.generate_trace_id()
        if spans.default_sampling:  # parentbased_always_on, as the SDK decides it
            keep = not valid or parent.trace_flags.sampled
            trace_state = parent.trace_state if valid else None
        else:
            if current is None:
                current = spans.trace.set_span_in_context(spans.trace.NonRecordingSpan(parent))
            sampled = spans.sampler.should_sample(
                current, trace_id, UNKNOWN_OPERATION, spans.SERVER
            )
            keep = sampled.decision.is_sampled()  # type: ignore[no-untyped-call]
            trace_state = sampled.trace_state
            self.attributes.update(sampled.attributes)
        if keep:
            self.context = spans.SpanContext(
                trace_id, spans.ids.generate_span_id(), False, spans.SAMPLED, trace_state
            )
        self._token = _operation.set(self)
        self.open = True
        self.started = time.time_ns()
        return self

    def record(
        self,
        kind: str | None,
        attributes: Mapping[str, AttributeValue],
        error: str | None = None,
        failed: bool = False,
    ) -> None:
        """What the pipeline found: the operation's type (the span's name),
        its attributes, the code of its answer's first error, and whether it
        failed outright (refused, or no data: the span's status is ERROR)."""
        if kind is not None:
            self.name = kind
        self.attributes.update(attributes)
        self.error = error
        self.failed = failed

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self.open = False
        _operation.reset(self._token)
        context = self.context
        if context is None:
            return
        self.attributes["newsgraph.store_calls"] = self.store_calls
        self.spans.emit(
            self.name,
            context,
            self.parent,
            self.spans.SERVER,
            self.attributes,
            self.started,
            error or self.error,
            self.failed,
        )


class StoreSpan:
    """One store call's span (see :func:`store_call`): its collection and
    command, and the documents a find returned; its duration is the call's,
    waiting for a store slot included (a chained find's second, asked in the
    first's thread: from when it began there, ``api.data.gateway.Chain``)."""

    __slots__ = ("collection", "command", "ended", "operation", "rows", "started")
    recording: Final = True

    def __init__(self, operation: OperationSpan, command: str, collection: str) -> None:
        self.operation = operation
        self.command = command
        self.collection = collection
        self.rows: int | None = None
        #: When it ended, if not as it exits: a chained find's first ended in
        #: the worker thread, as the second began (``api.data.gateway.Chain``).
        self.ended: int | None = None

    def __enter__(self) -> StoreSpan:
        self.started = time.time_ns()
        return self

    def returned(self, rows: int) -> None:
        self.rows = rows

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        operation = self.operation
        parent = operation.context
        assert parent is not None
        spans = operation.spans
        context = spans.SpanContext(
            parent.trace_id, spans.ids.generate_span_id(), False, spans.SAMPLED, parent.trace_state
        )
        attributes: dict[str, AttributeValue] = {
            "db.system.name": DB_SYSTEM,
            "db.operation.name": self.command,
            "db.collection.name": self.collection,
        }
        if self.rows is not None:
            attributes["db.response.returned_rows"] = self.rows
        name = f"{self.command} {self.collection}"
        spans.emit(
            name, context, parent, spans.CLIENT, attributes, self.started, error, ended=self.ended
        )


# -- configuration ------------------------------------------------------------


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Tracing as the environment says (see the module's docstring), once per
    process: later calls (each app :func:`api.app.create_app` makes) keep what
    the first found. Whether tracing is on."""
    global _configured, _spans
    if _configured:
        return enabled()
    _configured = True
    _spans = spans_from(os.environ if environ is None else environ)
    if _spans is not None:
        atexit.register(_spans.shutdown)  # what is still batched is sent
    return enabled()


def use(
    processor: SpanProcessor | None, provider: TracerProvider | None = None
) -> tuple[Spans | None, bool]:
    """Spans to ``processor`` from now on (None: tracing off), whatever the
    environment says, sampled as ``provider`` would (by default one made from
    the environment): for tests and benchmarks. Returns what was in force, for
    :func:`restore`."""
    global _spans, _configured
    before = (_spans, _configured)
    _configured = True
    if processor is None:
        _spans = None
    else:
        if provider is None:
            from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

            provider = SdkTracerProvider(shutdown_on_exit=False)
        _spans = Spans(provider, [processor])
    return before


def restore(before: tuple[Spans | None, bool]) -> None:
    global _spans, _configured
    _spans, _configured = before


def _hashed(resource: Any) -> Any:
    """``resource`` with its hash found once. The OTLP encoder groups each
    batch's spans by resource, hashing each span's; the SDK's ``Resource``
    hashes by JSON-encoding its attributes every time (about 4 µs a span
    here, a sixth of encoding it). A resource cannot change, nor can its hash."""
    from opentelemetry.sdk.resources import Resource

    class HashedResource(Resource):
        def __init__(self, attributes: Any, schema_url: str | None) -> None:
            super().__init__(attributes, schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    return HashedResource(resource.attributes, resource.schema_url)


def _version() -> str | None:
    try:
        return importlib.metadata.version("newsgraph")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout
        return None


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The trace exporters the environment asks for, by their entry point
    names (the SDK's rules), or none: tracing off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names:
        endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        if not any(environ.get(e, "").strip() for e in endpoints):
            return []  # the one rule of newsgraph's own: nothing said, nothing traced
        names = "otlp"
    if names.lower() == "none":
        return []
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or "grpc"
    )
    found = []
    for name in (n.strip() for n in names.split(",")):
        if name == "otlp":
            if protocol not in _OTLP_BY_PROTOCOL:
                raise TracingSetupError(f"unknown OTLP protocol {protocol!r}")
            name = _OTLP_BY_PROTOCOL[protocol]
        if name and name != "none":
            found.append(name)
    return found


class TracingSetupError(Exception):
    """The environment asks for traces that cannot be made."""


def spans_from(environ: Mapping[str, str]) -> Spans | None:
    """The spans the environment asks for, or None (tracing off). Tracing
    asked for without the SDK installed, or with an exporter that is not, is
    logged and left off: telemetry never keeps the API from serving."""
    try:
        names = exporter_names(environ)
        if not names:
            return None
        return _sdk_spans(names)
    except (ImportError, TracingSetupError) as exc:
        log.warning(
            "tracing is off: %s (the OTEL_* settings ask for it; "
            "install it with: pip install 'newsgraph[otel]')",
            exc,
        )
        return None


def _sdk_spans(names: list[str]) -> Spans:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = [_exporter(name) for name in names]
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith(_UNKNOWN_SERVICE):
        resource = resource.merge(Resource({SERVICE_NAME: "newsgraph"}))
    # The sampler (OTEL_TRACES_SAMPLER) and id generator from the environment.
    provider = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
    # Batched (OTEL_BSP_*): exporting never holds up a request.
    log.info("tracing on: spans to %s", ", ".join(names))
    return Spans(provider, [BatchSpanProcessor(exporter) for exporter in exporters])


def _exporter(name: str) -> SpanExporter:
    found = importlib.metadata.entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise TracingSetupError(f"no trace exporter named {name!r} is installed")
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter
