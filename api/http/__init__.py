"""The transport: how requests arrive and answers leave.

``view`` (strawberry's ASGI view, fitted: context, media types, status codes),
``identity`` (who asks: an address, behind trusted proxies; an API key; the admin),
``media`` (the answer's media type by ``Accept``), ``requests`` (invented
methods refused, HEAD and media types made regular), ``body`` (request size,
before parsing), ``guard`` (each request's deadline, cancelled when its client
hangs up), ``caching`` (ETag and Cache-Control for GET), ``observe`` (one JSON
log line per request, and its metrics), ``websocket`` (subscriptions over
graphql-transport-ws, bounded), ``explorer`` (GraphiQL, served locally).
"""
