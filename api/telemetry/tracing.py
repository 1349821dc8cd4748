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
itself. A process whose tracer provider was already set (run under
``opentelemetry-instrument``) sends its spans there instead.

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
"""

from __future__ import annotations

import contextvars
import importlib.metadata
import logging
import os
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:  # the optional extra, named in signatures only
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer, TracerProvider

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


class _Api(NamedTuple):
    """The OpenTelemetry API's modules, bound once tracing is on (imported
    then, not per span)."""

    context: ModuleType
    propagate: ModuleType
    trace: ModuleType


_otel: _Api
#: The tracer spans start from; None: tracing is off.
_tracer: Tracer | None = None
#: Whether the environment was read (by :func:`configure`) or a tracer given (:func:`use`).
_configured = False
#: The operation being served in this context, for its store calls' spans.
_operation: contextvars.ContextVar[OperationSpan | None] = contextvars.ContextVar(
    "newsgraph_operation_span", default=None
)


def enabled() -> bool:
    return _tracer is not None


def operation() -> OperationSpan | Untraced:
    """The span of one operation, as a context: the current span inside it
    (the parent of its store calls), its parent the client's context if the
    HTTP layer was handed one. Named and described by
    :meth:`OperationSpan.record` once the pipeline knows the operation."""
    tracer = _tracer
    if tracer is None:
        return OFF
    return OperationSpan(tracer)


def store_call(command: str, collection: str) -> StoreSpan | Untraced:
    """The span of one store call, a child of the operation being served; no
    span for a call outside one (the subscription feed's polling)."""
    tracer = _tracer
    if tracer is None:
        return OFF
    parent = _operation.get()
    if parent is None or not parent.open:
        return OFF
    parent.store_calls += 1
    return StoreSpan(tracer, command, collection)


def incoming(headers: Iterable[tuple[bytes, bytes]]) -> _Incoming | Untraced:
    """The client's trace context (W3C ``traceparent``, and whatever else
    ``OTEL_PROPAGATORS`` names) from a request's headers, made current inside:
    the operations it carries become children of the client's span."""
    if _tracer is None:
        return OFF
    propagate = _otel.propagate
    fields = propagate.get_global_textmap().fields
    carrier = {
        key: value.decode("latin-1")
        for name, value in headers
        if (key := name.decode("latin-1").lower()) in fields
    }
    if not carrier:
        return OFF
    return _Incoming(propagate.extract(carrier))


class _Incoming:
    __slots__ = ("context", "token")

    def __init__(self, context: Context) -> None:
        self.context = context

    def __enter__(self) -> None:
        self.token = _otel.context.attach(self.context)

    def __exit__(self, *exc: object) -> None:
        _otel.context.detach(self.token)


class OperationSpan:
    """An operation's span while it is served (see :func:`operation`)."""

    __slots__ = ("_otel_token", "_token", "open", "span", "store_calls", "tracer")
    recording: Final = True

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.store_calls = 0
        self.open = False

    def __enter__(self) -> OperationSpan:
        otel = _otel
        self.span = self.tracer.start_span(UNKNOWN_OPERATION, kind=otel.trace.SpanKind.SERVER)
        self._otel_token = otel.context.attach(otel.trace.set_span_in_context(self.span))
        self._token = _operation.set(self)
        self.open = True
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
        failed outright (refused, or no data)."""
        span = self.span
        if kind is not None:
            span.update_name(kind)
        span.set_attributes({**attributes, "newsgraph.store_calls": self.store_calls})
        if error is not None:
            span.set_attribute("error.type", error)
        if failed:
            span.set_status(_otel.trace.Status(_otel.trace.StatusCode.ERROR, error))

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self.open = False
        span = self.span
        if error is not None:
            _failed(span, error)
        span.end()
        _operation.reset(self._token)
        _otel.context.detach(self._otel_token)


class StoreSpan:
    """One store call's span (see :func:`store_call`): its collection and
    command, and the documents a find returned; its duration is the call's,
    waiting for a store slot included."""

    __slots__ = ("collection", "command", "span", "tracer")
    recording: Final = True

    def __init__(self, tracer: Tracer, command: str, collection: str) -> None:
        self.tracer = tracer
        self.command = command
        self.collection = collection

    def __enter__(self) -> StoreSpan:
        self.span = self.tracer.start_span(
            f"{self.command} {self.collection}",
            kind=_otel.trace.SpanKind.CLIENT,
            attributes={
                "db.system.name": DB_SYSTEM,
                "db.operation.name": self.command,
                "db.collection.name": self.collection,
            },
        )
        return self

    def returned(self, rows: int) -> None:
        self.span.set_attribute("db.response.returned_rows", rows)

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if error is not None:
            _failed(self.span, error)
        self.span.end()


def _failed(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_attribute("error.type", getattr(error, "code", None) or type(error).__qualname__)
    span.set_status(_otel.trace.Status(_otel.trace.StatusCode.ERROR, str(error)[:200]))


# -- configuration ------------------------------------------------------------


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Tracing as the environment says (see the module's docstring), once per
    process: later calls (each app :func:`api.app.create_app` makes) keep what
    the first found. Whether tracing is on."""
    global _configured
    if _configured:
        return enabled()
    _configured = True
    provider = provider_from(os.environ if environ is None else environ)
    if provider is not None:
        _set(provider)
    return enabled()


def use(provider: TracerProvider | None) -> tuple[Tracer | None, bool]:
    """Spans to ``provider`` from now on (None: tracing off), whatever the
    environment says: for tests and benchmarks. Returns what was in force,
    for :func:`restore`."""
    global _tracer, _configured
    before = (_tracer, _configured)
    _configured = True
    if provider is None:
        _tracer = None
    else:
        _set(provider)
    return before


def restore(before: tuple[Tracer | None, bool]) -> None:
    global _tracer, _configured
    _tracer, _configured = before


def _set(provider: TracerProvider) -> None:
    global _tracer, _otel
    import opentelemetry.context
    import opentelemetry.propagate
    import opentelemetry.trace

    _otel = _Api(opentelemetry.context, opentelemetry.propagate, opentelemetry.trace)
    try:
        version = importlib.metadata.version("newsgraph")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout
        version = None
    _tracer = provider.get_tracer(SCOPE, version)


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


def provider_from(environ: Mapping[str, str]) -> TracerProvider | None:
    """The tracer provider the environment asks for, or None (tracing off).
    Tracing asked for without the SDK installed, or with an exporter that is
    not, is logged and left off: telemetry never keeps the API from serving."""
    try:
        names = exporter_names(environ)
        if not names:
            return None
        return _sdk_provider(names)
    except (ImportError, TracingSetupError) as exc:
        log.warning(
            "tracing is off: %s (the OTEL_* settings ask for it; "
            "install it with: pip install 'newsgraph[otel]')",
            exc,
        )
        return None


def _sdk_provider(names: list[str]) -> TracerProvider:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    given = trace.get_tracer_provider()
    if isinstance(given, SdkTracerProvider):  # set up already (opentelemetry-instrument)
        return given
    exporters = [_exporter(name) for name in names]
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith(_UNKNOWN_SERVICE):
        resource = resource.merge(Resource({SERVICE_NAME: "newsgraph"}))
    # The sampler (OTEL_TRACES_SAMPLER) and span limits come from the environment.
    provider = SdkTracerProvider(resource=resource)
    for exporter in exporters:  # batched: exporting never holds up a request
        provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing on: spans to %s", ", ".join(names))
    return provider


def _exporter(name: str) -> SpanExporter:
    found = importlib.metadata.entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise TracingSetupError(f"no trace exporter named {name!r} is installed")
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter
