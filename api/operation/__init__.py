"""What every operation passes through before and around its execution.

``schema`` (the schema with its limits and caches, in request order),
``documents`` (parsed and validated documents, cached by text and bounded by
bytes), ``persisted`` (automatic persisted queries), ``selections`` (a query's
selections counted before validation), ``cost`` (a query's worst case in
objects and store calls, priced before it runs), ``budget`` (prices kept per
query, the limit each must stay within, ``extensions.cost``), ``incremental``
(``@defer``/``@stream`` delivered in parts, or whole), ``direct`` (a query
seen before, answered without strawberry's per-request machinery).
"""
