"""Answering an operation: by a plan computed once per operation
(``plan``, served by ``compiled``), or by ordinary execution, a resolver per
field. ``incremental`` finds ``@defer``/``@stream`` in a document.
"""
