"""OpenTelemetry tracing (api/telemetry/tracing.py): the spans an operation
leaves, read from the SDK's in-memory exporter, on both engines; the client's
``traceparent`` honoured over HTTP and WebSocket; the OTEL_* settings read as
the SDK reads them; nothing traced unless they ask."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.errors import RequestTimeoutError
from api.telemetry import tracing
from core.config import Settings
from core.store import Store

sdk = pytest.importorskip(
    "opentelemetry.sdk.trace",
    reason="the otel extra is not installed (pip install '.[otel]'; scripts/install does)",
)
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

FRONT = """query Front {
  articles(first: 3) { totalCount nodes { id title provider { name } } }
}"""
#: A W3C trace context, as a client that traces would send it.
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for one test (whatever the environment says)."""
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    before = tracing.use(processor)
    yield exporter
    tracing.restore(before)
    processor.shutdown()


@pytest.fixture
def traced(loaded: Store, api_settings: Settings, exported: InMemorySpanExporter) -> TestClient:
    with TestClient(create_app(api_settings, loaded)) as client:
        exported.clear()  # what starting the app did (the feed does not poll unasked)
        yield client


def operations(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def test_a_query_is_one_span_with_its_store_calls_as_children(
    traced: TestClient,
    exported: InMemorySpanExporter,
    round_trips: list[str],
    api_settings: Settings,
) -> None:
    response = traced.post("/graphql", json={"query": FRONT})
    assert response.status_code == 200 and "errors" not in response.json()
    (op,) = operations(exported)
    assert op.name == "query"  # by its type, as the semantic conventions name it
    attrs = dict(op.attributes or {})
    assert attrs["graphql.operation.type"] == "query"
    assert attrs["graphql.operation.name"] == "Front"
    cost = response.json()["extensions"]["cost"]
    assert attrs["newsgraph.cost.objects"] == cost["requested"]["objects"]
    assert attrs["newsgraph.cost.store_calls"] == cost["requested"]["storeCalls"]
    assert attrs["newsgraph.objects"] == cost["actual"]["objects"]
    assert attrs["newsgraph.store_calls"] == len(round_trips) == cost["actual"]["storeCalls"]
    assert attrs["newsgraph.execution"] == ("compiled" if api_settings.compiled else "ordinary")
    assert op.parent is None  # no client context: a trace of its own
    assert op.status.status_code is StatusCode.UNSET

    calls = children(exported, op)
    assert len(calls) == len(round_trips) > 0
    assert len(exported.get_finished_spans()) == 1 + len(calls)  # nothing per resolved field
    for call in calls:
        assert call.kind is SpanKind.CLIENT
        assert call.context.trace_id == op.context.trace_id
        call_attrs = dict(call.attributes or {})
        assert call_attrs["db.system.name"] == "mongodb"
        assert call.name == f"{call_attrs['db.operation.name']} {call_attrs['db.collection.name']}"
        assert call.start_time is not None and call.end_time is not None
        assert op.start_time <= call.start_time <= call.end_time <= op.end_time  # type: ignore[operator]
    finds = [c for c in calls if c.attributes and c.attributes["db.operation.name"] == "find"]
    assert {c.attributes["db.collection.name"] for c in finds} >= {"articles"}  # type: ignore[index]
    assert all(isinstance(c.attributes["db.response.returned_rows"], int) for c in finds)  # type: ignore[index]


def test_the_client_s_traceparent_is_the_operation_s_parent(
    traced: TestClient, exported: InMemorySpanExporter
) -> None:
    response = traced.post("/graphql", json={"query": FRONT}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    (op,) = operations(exported)
    assert op.context.trace_id == TRACE_ID
    assert op.parent is not None and op.parent.span_id == PARENT_ID and op.parent.is_remote
    calls = children(exported, op)
    assert calls and all(c.context.trace_id == TRACE_ID for c in calls)
    # A GET takes the same path, with the same context.
    exported.clear()
    response = traced.get("/graphql", params={"query": FRONT}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    (op,) = operations(exported)
    assert op.context.trace_id == TRACE_ID and op.name == "query"


def test_a_malformed_traceparent_starts_a_trace_of_its_own(
    traced: TestClient, exported: InMemorySpanExporter
) -> None:
    traced.post("/graphql", json={"query": FRONT}, headers={"traceparent": "00-nonsense-01"})
    (op,) = operations(exported)
    assert op.parent is None


def test_a_refused_operation_has_a_span_saying_why(
    loaded: Store, api_settings: Settings, exported: InMemorySpanExporter
) -> None:
    settings = dataclasses.replace(api_settings, max_query_objects=5)
    with TestClient(create_app(settings, loaded)) as client:
        exported.clear()
        body = client.post("/graphql", json={"query": FRONT}).json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    (op,) = operations(exported)
    attrs = dict(op.attributes or {})
    assert op.name == "query" and attrs["graphql.operation.name"] == "Front"
    assert attrs["newsgraph.cost.objects"] > 5  # the price that was refused
    assert attrs["error.type"] == "QUERY_TOO_COSTLY"
    assert attrs["newsgraph.store_calls"] == 0 and "newsgraph.execution" not in attrs
    assert op.status.status_code is StatusCode.ERROR
    assert op.status.description == "QUERY_TOO_COSTLY"
    assert children(exported, op) == []


def test_a_document_that_does_not_parse_is_a_graphql_operation_span(
    traced: TestClient, exported: InMemorySpanExporter
) -> None:
    traced.post("/graphql", json={"query": "{ articles("})
    (op,) = operations(exported)
    assert op.name == "GraphQL Operation"  # no type known
    attrs = dict(op.attributes or {})
    assert attrs["error.type"] == "GRAPHQL_VALIDATION_FAILED"
    assert "graphql.operation.type" not in attrs
    assert op.status.status_code is StatusCode.ERROR


def test_how_it_ran_is_an_attribute(
    traced: TestClient, exported: InMemorySpanExporter, api_settings: Settings
) -> None:
    # Introspection is answered by ordinary execution, where a plan was tried.
    traced.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})
    (op,) = operations(exported)
    expected = "fallback" if api_settings.compiled else "ordinary"
    assert dict(op.attributes or {})["newsgraph.execution"] == expected
    assert children(exported, op) == []


def test_with_tracing_off_nothing_is_traced(
    loaded: Store, api_settings: Settings, exported: InMemorySpanExporter
) -> None:
    before = tracing.use(None)
    try:
        assert tracing.operation() is tracing.OFF
        assert tracing.store_call("find", "articles") is tracing.OFF
        assert tracing.incoming([(b"traceparent", TRACEPARENT.encode())]) is tracing.OFF
        with TestClient(create_app(api_settings, loaded)) as client:
            response = client.post(
                "/graphql", json={"query": FRONT}, headers={"traceparent": TRACEPARENT}
            )
        assert response.status_code == 200
    finally:
        tracing.restore(before)
    assert exported.get_finished_spans() == ()


def test_a_span_another_instrumentation_made_current_is_the_operation_s_parent(
    exported: InMemorySpanExporter,
) -> None:
    """Without a client's context, the operation continues OpenTelemetry's
    current span, as one made by an ASGI instrumentation around the app."""
    from opentelemetry import context, trace

    outer = trace.SpanContext(TRACE_ID, PARENT_ID, False, trace.TraceFlags(1))
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(outer)))
    try:
        with tracing.operation():
            pass
    finally:
        context.detach(token)
    (op,) = exported.get_finished_spans()
    assert op.context.trace_id == TRACE_ID
    assert op.parent is not None and op.parent.span_id == PARENT_ID


def test_the_client_s_context_is_read_by_the_propagators_in_force(
    exported: InMemorySpanExporter,
) -> None:
    """The header names come from the global propagators, found again when
    they are replaced (as ``OTEL_PROPAGATORS`` or the application may)."""
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    headers = [(b"content-type", b"application/json"), (b"traceparent", TRACEPARENT.encode())]
    with tracing.incoming(headers), tracing.operation():
        pass
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(W3CBaggagePropagator())
    try:
        assert tracing.incoming(headers) is tracing.OFF  # no field it reads
        with tracing.incoming(headers), tracing.operation():
            pass
    finally:
        propagate.set_global_textmap(before)
    first, second = exported.get_finished_spans()
    assert first.parent is not None and first.context.trace_id == TRACE_ID
    assert second.parent is None and second.context.trace_id != TRACE_ID


@pytest.mark.parametrize(
    "traceparent",
    [
        TRACEPARENT,
        TRACEPARENT[:-2] + "00",  # not sampled
        TRACEPARENT[:-2] + "03",  # flags beyond sampled
        TRACEPARENT.upper(),  # hex must be lowercase
        " " + TRACEPARENT,
        TRACEPARENT + "-extra",  # version 00 has four fields
        "01" + TRACEPARENT[2:] + "-extra",  # a later version may have more
        "ff" + TRACEPARENT[2:],  # the invalid version
        f"00-{0:032x}-{PARENT_ID:016x}-01",
        f"00-{TRACE_ID:032x}-{0:016x}-01",
        "00-nonsense-01",
    ],
)
def test_the_client_s_span_is_what_the_sdk_s_propagator_reads(
    exported: InMemorySpanExporter, traceparent: str
) -> None:
    """A lone traceparent is read without the SDK's propagator when it is
    well formed (and by it otherwise): to the same span context either way."""
    from opentelemetry import propagate, trace

    expected = trace.get_current_span(
        propagate.extract({"traceparent": traceparent})
    ).get_span_context()
    incoming = tracing.incoming([(b"traceparent", traceparent.encode())])
    with incoming:
        client = tracing._client.get()
    assert client is not None
    assert client[0] == expected
    if traceparent == TRACEPARENT:
        assert client[1] is None  # read here, not by the propagator
    with incoming, tracing.operation():
        pass
    spans = exported.get_finished_spans()
    kept = not expected.is_valid or expected.trace_flags.sampled  # parentbased_always_on
    assert len(spans) == kept
    if kept and expected.is_valid:
        assert spans[0].parent == expected and spans[0].context.trace_id == expected.trace_id


def test_the_client_s_tracestate_is_carried_on(exported: InMemorySpanExporter) -> None:
    from opentelemetry.trace import TraceState

    headers = [(b"traceparent", TRACEPARENT.encode()), (b"tracestate", b"vendor=value")]
    with tracing.incoming(headers), tracing.operation():
        pass
    (op,) = exported.get_finished_spans()
    assert op.context.trace_state == TraceState([("vendor", "value")])
    assert op.parent is not None and op.parent.span_id == PARENT_ID


def test_spans_carry_the_provider_s_resource(exported: InMemorySpanExporter) -> None:
    """The same resource, equal and hashing alike (the OTLP encoder groups
    spans by it), however its hash is found."""
    with tracing.operation():
        pass
    (op,) = exported.get_finished_spans()
    spans = tracing._spans
    assert spans is not None
    assert op.resource == spans.provider.resource
    assert hash(op.resource) == hash(spans.provider.resource)
    assert len({op.resource, spans.provider.resource}) == 1


def test_store_calls_outside_an_operation_have_no_span(exported: InMemorySpanExporter) -> None:
    # The subscription feed polls the store on its own: no span, no root trace per poll.
    with tracing.store_call("find", "loader") as span:
        assert not span.recording
    with tracing.operation():
        pass
    with tracing.store_call("find", "loader") as span:  # after the operation ended
        assert not span.recording
    assert [s.name for s in exported.get_finished_spans()] == ["GraphQL Operation"]


def test_a_store_call_that_fails_says_so_in_its_span(exported: InMemorySpanExporter) -> None:
    async def failing() -> None:
        with tracing.operation() as op:
            op.record("query", {"graphql.operation.type": "query"})
            with tracing.store_call("count", "articles"):
                raise RequestTimeoutError(0.5)

    with pytest.raises(RequestTimeoutError):
        asyncio.run(failing())
    call, op = exported.get_finished_spans()
    assert call.name == "count articles" and call.parent is not None
    assert call.parent.span_id == op.context.span_id
    for span in (call, op):
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes or {})["error.type"] == "TIMEOUT"
        assert [e.name for e in span.events] == ["exception"]


# -- subscriptions over WebSocket -------------------------------------------------


def subscribe(
    client: TestClient, query: str, headers: dict[str, str], refused: bool = False
) -> dict[str, Any]:
    """A graphql-transport-ws subscription set up (or its refusal), then the socket closed."""
    with client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"], headers=headers
    ) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": query}})
        if refused:
            return ws.receive_json()
        ws.send_json({"type": "ping"})  # answered once the subscription is set up
        return ws.receive_json()


def test_a_subscription_has_a_span_for_its_start_in_the_handshake_s_trace(
    traced: TestClient, exported: InMemorySpanExporter
) -> None:
    subscribe(
        traced,
        "subscription News { articlePublished { id title } }",
        {"traceparent": TRACEPARENT},
    )
    (op,) = operations(exported)
    attrs = dict(op.attributes or {})
    assert op.name == "subscription" and attrs["graphql.operation.name"] == "News"
    assert attrs["graphql.operation.type"] == "subscription"
    # Its articles are answered for every identical subscription at once.
    assert attrs["newsgraph.execution"] == "shared"
    assert "newsgraph.cost.objects" in attrs
    assert op.context.trace_id == TRACE_ID and op.parent is not None
    assert op.parent.span_id == PARENT_ID


def test_a_refused_subscription_s_span(traced: TestClient, exported: InMemorySpanExporter) -> None:
    refused = subscribe(traced, "subscription { articlePublished { nope } }", {}, refused=True)
    assert refused["type"] == "error"
    (op,) = operations(exported)
    assert op.status.status_code is StatusCode.ERROR
    assert dict(op.attributes or {})["error.type"] == "GRAPHQL_VALIDATION_FAILED"


# -- the OTEL_* settings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),  # off by default
        ({"OTEL_SERVICE_NAME": "news"}, []),  # a name alone sends nothing anywhere
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, ["otlp_proto_grpc"]),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            ["otlp_proto_http"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_grpc"]),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ["otlp_proto_http"],
        ),
        ({"OTEL_TRACES_EXPORTER": "console,otlp_proto_http"}, ["console", "otlp_proto_http"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, []),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_the_environment_says_where_spans_go(environ: dict[str, str], names: list[str]) -> None:
    assert tracing.exporter_names(environ) == names


def test_the_sdk_reads_the_rest_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "news-api")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    spans = tracing.spans_from({"OTEL_TRACES_EXPORTER": "console"})
    assert spans is not None
    try:
        assert spans.resource.attributes["service.name"] == "news-api"
        assert spans.resource.attributes["deployment.environment"] == "test"
        assert [type(p).__name__ for p in spans.processors] == ["BatchSpanProcessor"]
    finally:
        spans.shutdown()
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    spans = tracing.spans_from({"OTEL_TRACES_EXPORTER": "console"})
    assert spans is not None
    try:
        assert spans.resource.attributes["service.name"] == "newsgraph"
    finally:
        spans.shutdown()


@pytest.mark.parametrize(
    ("sampler", "traceparent", "kept"),
    [
        ("always_off", None, False),
        ("parentbased_always_on", None, True),
        ("parentbased_always_on", TRACEPARENT[:-2] + "00", False),  # the client's span unsampled
        ("parentbased_always_off", TRACEPARENT, True),  # the client's span sampled
        ("parentbased_always_off", None, False),
    ],
)
def test_the_sampler_is_the_environment_s(
    loaded: Store,
    api_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    sampler: str,
    traceparent: str | None,
    kept: bool,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    exporter = InMemorySpanExporter()
    before = tracing.use(SimpleSpanProcessor(exporter))
    try:
        headers = {"traceparent": traceparent} if traceparent else {}
        with TestClient(create_app(api_settings, loaded)) as client:
            response = client.post("/graphql", json={"query": FRONT}, headers=headers)
        assert response.status_code == 200
    finally:
        tracing.restore(before)
    spans = exporter.get_finished_spans()
    assert (len(spans) > 1) is kept and (len(spans) == 0) is not kept  # store calls follow


@pytest.mark.parametrize(
    ("environ", "why"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin_json"}, "no trace exporter named 'zipkin_json'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "unknown OTLP protocol 'http/json'",
        ),
    ],
)
def test_tracing_that_cannot_be_made_is_logged_and_left_off(
    environ: dict[str, str], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="newsgraph.api"):
        assert tracing.spans_from(environ) is None
    assert why in caplog.text and "newsgraph[otel]" in caplog.text


def test_configure_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    before = tracing.use(None)
    try:
        tracing.restore((None, False))  # as a fresh process
        assert tracing.configure({"OTEL_TRACES_EXPORTER": "console"}) is True
        assert tracing.enabled()
        assert tracing.configure({}) is True  # the second app keeps the first's
    finally:
        if tracing._spans is not None:
            tracing._spans.shutdown()
        tracing.restore(before)


MOBILE = """query($id: ID!) { article(id: $id) { title
  related { title article { id title } } } }"""


def mobile_spans(
    loaded: Store,
    api_settings: Settings,
    exported: InMemorySpanExporter,
    chained: bool,
    gateway: Any = None,
) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The mobile query's operation span and its store calls' spans, its two
    finds asked as one job (``api.data.gateway.Chain``) or one by one."""
    from api.data.gateway import Gateway

    doc = loaded.articles.find_one({"published": True, "related.1": {"$exists": True}})
    assert doc is not None
    with pytest.MonkeyPatch.context() as patch:
        if not chained:
            patch.setattr(Gateway, "can_chain", lambda self: False)
        made = None if gateway is None else gateway(Gateway(loaded, 10_000))
        with TestClient(create_app(api_settings, loaded, gateway=made)) as client:
            exported.clear()
            client.post("/graphql", json={"query": MOBILE, "variables": {"id": doc["_id"]}})
    (op,) = operations(exported)
    calls = sorted(children(exported, op), key=lambda s: s.start_time or 0)
    exported.clear()
    return op, calls


def test_a_chained_query_traces_its_two_finds_as_two_calls_would(
    loaded: Store, api_settings: Settings, exported: InMemorySpanExporter
) -> None:
    traced = {
        chained: mobile_spans(loaded, api_settings, exported, chained) for chained in (True, False)
    }
    for op, calls in traced.values():
        assert dict(op.attributes or {})["newsgraph.store_calls"] == 2
        assert [c.name for c in calls] == ["find articles", "find articles"]
        first, second = calls
        assert op.start_time <= first.start_time <= first.end_time <= second.start_time  # type: ignore[operator]
        assert second.start_time <= second.end_time <= op.end_time  # type: ignore[operator]
    chained, unchained = traced[True][1], traced[False][1]
    for a, b in zip(chained, unchained, strict=True):
        assert dict(a.attributes or {}) == dict(b.attributes or {})  # rows returned among them
        assert a.status.status_code is b.status.status_code


def test_a_chained_find_that_fails_fails_its_own_span(
    loaded: Store, api_settings: Settings, exported: InMemorySpanExporter
) -> None:
    import pymongo.errors

    from tests.api.test_chained import Failing

    down = pymongo.errors.AutoReconnect("connection reset")
    for chained in (True, False):
        _, (first, second) = mobile_spans(
            loaded, api_settings, exported, chained, lambda g: Failing(g, 2, down)
        )
        assert first.status.status_code is not StatusCode.ERROR
        assert "error.type" not in dict(first.attributes or {})
        assert second.status.status_code is StatusCode.ERROR
        assert dict(second.attributes or {})["error.type"] == "STORE_UNAVAILABLE"
