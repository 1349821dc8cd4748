"""Answering an operation: by a plan computed once per operation (``plan``,
kept and run by ``compiled``), or by ``ordinary`` execution (graphql-core's, a
resolver per field). ``subscription`` answers each article a subscription is
sent, once for all identical subscriptions, by plan or ordinarily.
``incremental`` finds ``@defer``/``@stream`` in a document; ``replay`` keeps a
plan's store answers for the ordinary execution that answers when the plan
falls back.
"""
