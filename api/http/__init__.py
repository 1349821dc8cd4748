"""The transport: how requests arrive and answers leave.

``view`` (strawberry's ASGI view, fitted: context, media types, status codes),
``identity`` (who asks: an address, behind trusted proxies; an API key; the admin),
``media`` (the answer's media type by ``Accept``), ``requests`` (invented
methods refused, HEAD and media types made regular), ``body`` (request size,
before parsing), ``guard`` (each request's deadline, cancelled when its client
hangs up), ``caching`` (ETag and Cache-Control for GET), ``compression`` (gzip for
clients that accept it), ``cors`` (cross-origin requests from browser pages),
``observe`` (one JSON log line per request, its metrics, and the 500 of an app
that failed), ``websocket`` (subscriptions over graphql-transport-ws, bounded),
``sse`` (subscriptions over Server-Sent Events, graphql-sse's distinct
connections, held to the same bounds), ``explorer``
(GraphiQL, served locally), ``connections`` (Uvicorn's HTTP protocol with
header, idle and send timeouts, and a bound on open connections), ``health``
(liveness and readiness, also answered by a process of their own on a port of
their own), ``beats`` (each worker's heartbeat, which the supervisor of ``serve
--workers`` watches).
"""
