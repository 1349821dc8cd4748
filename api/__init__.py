"""The GraphQL API over the article store, grouped by the concern each package holds.

Packages, from the client inwards (each imports only those after it):

- ``http``: the transport (the ASGI view, media types, the body limit, HTTP
  caching, the request deadline guard, WebSocket, GraphiQL);
- ``operation``: what every request passes through, in order (documents,
  persisted queries, selections, cost and budget, errors);
- ``execution``: answering an operation (compiled plans, or ordinary execution);
- ``schema``: what clients see (types, the root query and subscription,
  filters, pagination, Relay nodes, scalars; ``schema.graphql`` is its SDL);
- ``live``: news for subscriptions (one poll of the store per worker);
- ``data``: the store queries (articles, facets, filters, cursors), the
  gateway that bounds every store call, and each request's deadline;
- ``telemetry``: what each request did (stats, metrics, logs).

Beside them: ``app`` (the ASGI application, assembled from the packages),
``errors`` (errors a client may read; everything else masked) and ``bounded``
(caches a client can fill, bounded by bytes).
"""
