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
header, idle and send timeouts, and a bound on open connections; its WebSocket
protocol with the send timeout; both telling the app what a connection holds
unsent), ``health``
(liveness and readiness, also answered by a process of their own on a port of
their own), ``beats`` (each worker's heartbeat, which the supervisor of ``serve
--workers`` watches).

The middleware layers (``api.app`` lists them) run for every request, so each
costs as little as it can where it has nothing to do. A layer that hands a
request on untouched returns the inner app's awaitable rather than awaiting
it (its ``__call__`` a plain method): it adds no coroutine frame, which the
request's task would otherwise pass through each time it resumes (every store
call's answer). A ``send`` wrapper that only reads or edits a message and
passes it on is a plain function too, returning the inner ``send``'s awaitable.
"""
