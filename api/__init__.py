"""The GraphQL API over the article store.

What clients see: ``types`` (the object types), ``query`` (the root ``Query``),
``subscription`` (the root ``Subscription``: articles as they become news),
``filters`` (typed filter and order inputs -> one MongoDB query), ``pagination``
(cursors and connections), ``scalars`` (``DateTime``), ``schema`` (assembly,
limits and caches; ``schema.graphql`` is its SDL), ``caches`` (parsed and
validated documents, bounded by bytes), ``selections`` (a query's selections
counted before validation, so validation stays cheap), ``cost`` (a query's worst
case in objects and store calls, priced before it runs), ``budget`` (prices kept
per query, and the limit each request's price must stay within).

Answering a query: ``resolvers`` (what list and lookup fields do),
``nodes`` (Relay's ``node(id:)``: opaque ids, refetch by id), ``related``
(an article's related stories, filtered),
``projection`` (fetch only what is selected, never a private field),
``context`` (per request: who asks, batch loaders), ``data`` (store calls,
bounded in time, outages made readable), ``errors`` (client errors shown,
all others masked), ``compiled`` (an operation answered by a plan from
``api/plan/``, not a resolver per field; ordinary execution for the rest),
``direct`` (a query seen before answered by its plan without strawberry's
per-request extension machinery, doing what each extension would).

Serving it: ``app`` (the ASGI application), ``deadline`` (each request's time
limit, cancelled when its client hangs up), ``slots`` (bounded worker threads
for store calls; load shed with 503 past them), ``requests`` (invented methods
refused, HEAD and media types made regular), ``media`` (the response's media
type by ``Accept``, and its status codes), ``incremental`` (``@defer`` and
``@stream`` as ``multipart/mixed``, or the whole answer at once), ``limits`` (request size, before
parsing), ``persisted`` (automatic persisted queries), ``websocket`` (subscriptions
over graphql-transport-ws, bounded), ``feed`` (one poll of the store per
worker, fanned out to its subscriptions), ``matcher`` (a filter evaluated in
memory), ``caching`` (ETag and
Cache-Control for GET), ``observe`` (one JSON log line per request),
``metrics`` (Prometheus at ``/metrics``), ``explorer`` (GraphiQL, served locally).
"""
