"""What each request did: ``stats`` (counted as it runs), ``metrics``
(Prometheus at ``/metrics``), ``logs`` (the access log and the rest),
``tracing`` (OpenTelemetry spans of each operation and its store calls, when
the ``OTEL_*`` settings ask for them).
"""
