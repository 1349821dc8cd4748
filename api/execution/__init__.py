"""Answering an operation: by a plan computed once per operation (``plan``,
kept and run by ``compiled``), or by ``ordinary`` execution (graphql-core's, a
resolver per field). ``incremental`` finds ``@defer``/``@stream`` in a document.
"""
