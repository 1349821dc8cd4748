"""The GraphQL API over the article store.

``types`` (what clients see), ``filters`` (typed inputs -> one MongoDB query),
``pagination`` (cursors and connections), ``projection`` (fetch only what is
selected), ``data`` (store access and batching), ``context`` (per request),
``schema`` (assembly and limits), ``app`` (the ASGI application).
"""
