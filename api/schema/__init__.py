"""What clients see: the public schema.

``types`` (the object types), ``query`` (the root ``Query``),
``subscription`` (the root ``Subscription``: articles as they become news),
``filters`` (filter and order inputs), ``related`` (an article's related
stories, filtered), ``pagination`` (connections), ``nodes`` (Relay's
``node(id:)``: opaque ids, refetch by id), ``scalars`` (``DateTime``),
``facts`` (how each field is answered, declared on the field: read by the
cost analysis, the planner, the projection and HTTP caching), ``caching``
(an answer's caching policy from the fields' and types' hints, and the cache
keys of the objects it holds), ``context`` (per request:
who asks, batch loaders), ``resolvers`` (what list
and lookup fields do by ordinary execution), ``projection`` (fetch only what
is selected, never a private field). ``schema.graphql`` is the SDL, checked
against the code by a test.
"""
