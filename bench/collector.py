"""A stand-in for an OpenTelemetry collector, for the traced servers of the
``cpu`` scenario: it takes OTLP over HTTP (protobuf) on loopback, counts the
spans of each request path, and answers success.

A traced server is then set up exactly as in production, by the ``OTEL_*``
settings alone (``otlp`` over ``http/protobuf`` to this endpoint): the SDK's
batch processor and its OTLP exporter, which encodes every span in the
server process and posts each batch. So the server's CPU holds the whole
cost of tracing, the export included; only the collector's own work (here,
decoding the batches to count them) is in the benchmark's process. The
counts show the spans really left: a server whose spans never arrived would
have measured a tracing that did less than it claims.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Collector:
    """Spans received, by the request path they were posted to."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.spans: Counter[str] = Counter()
        self.lock = threading.Lock()

    def endpoint(self, name: str) -> str:
        """The traces endpoint for one server (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)."""
        return f"{self.url}/{name}/v1/traces"

    def received(self, name: str) -> int:
        with self.lock:
            return self.spans[f"/{name}/v1/traces"]


@contextmanager
def collecting() -> Iterator[Collector]:
    """A collector on a free loopback port, until the block ends."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    collector: Collector

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            with collector.lock:
                collector.spans[self.path] += count
            # An empty ExportTraceServiceResponse: all accepted.
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line a batch on stderr says nothing

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    collector = Collector(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="otlp-collector", daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
