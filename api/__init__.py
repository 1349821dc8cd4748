"""The GraphQL API over the article store.

What clients see: ``types`` (the object types), ``query`` (the root ``Query``),
``filters`` (typed filter and order inputs -> one MongoDB query), ``pagination``
(cursors and connections), ``scalars`` (``DateTime``), ``schema`` (assembly,
limits and caches; ``schema.graphql`` is its SDL), ``cost`` (a query's worst
case in objects and store calls, priced before it runs).

Answering a query: ``resolvers`` (what list and lookup fields do),
``projection`` (fetch only what is selected, never a private field),
``context`` (per request: who asks, batch loaders), ``data`` (store calls,
bounded in time, outages made readable), ``errors`` (client errors shown,
all others masked), ``compiled`` (an operation answered by a plan from
``api/plan/``, not a resolver per field; ordinary execution for the rest).

Serving it: ``app`` (the ASGI application), ``requests`` (invented methods
refused, HEAD and media types made regular), ``limits`` (request size, before
parsing), ``persisted`` (automatic persisted queries), ``caching`` (ETag and
Cache-Control for GET), ``observe`` (one JSON log line per request),
``metrics`` (Prometheus at ``/metrics``), ``explorer`` (GraphiQL, served locally).
"""
