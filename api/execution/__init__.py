"""Answering an operation: by a plan computed once per operation (``plan``,
kept and run by ``compiled``), or by ``ordinary`` execution (graphql-core's, a
resolver per field). ``incremental`` finds ``@defer``/``@stream`` in a document;
``replay`` keeps a plan's store answers for the ordinary execution that answers
when the plan falls back.
"""
