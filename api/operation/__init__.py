"""The one request pipeline: what every operation passes through, in order.

``pipeline`` (the runner: the steps, then the answer, then the steps on each
answer), ``schema`` (strawberry's schema whose operations all go through it,
and the list of steps in their order), ``request`` (the operation as the steps
fill it in, and a step's refusal). The steps: ``allowed`` (the operation's
name and type, and where it may run), ``throttle`` (each client's budget:
points that refill, operations at once, a pool for heavy ones), ``trusted``
(trusted documents: only an app's own operations run), ``persisted``
(automatic persisted queries), ``documents`` (parsed and validated documents,
cached by text and bounded by bytes), ``selections`` (a query's selections counted before
validation), ``validation`` (the rules), ``budget`` (the price, within budget,
and ``extensions.cost``; the analysis is ``cost``), ``incremental``
(``@defer``/``@stream`` delivered in parts, or whole), ``run`` (the answer: a
plan, or ordinary execution, or the same query's kept by ``answered``
until the store changes), ``masking`` (errors logged, classified, masked),
``traced`` (what the operation's span says, when tracing is on),
``caching`` (the answer's caching policy, from the schema's hints).
The path in order: docs/request-path.md.
"""
