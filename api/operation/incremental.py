"""Incremental delivery: ``@defer`` and ``@stream`` over ``multipart/mixed``.

A client that names ``multipart/mixed`` in its ``Accept`` (Apollo Client sends
``multipart/mixed;deferSpec=20220824,application/json`` for a query with
``@defer``) gets a deferred or streamed query as a multipart stream: the first
part as soon as the non-deferred fields resolve, then one part per deferred
fragment or streamed batch, the last with ``hasNext: false``.

Any other client gets the whole answer in one ordinary response: the
incremental-delivery draft lets a server deliver deferred and streamed data
with the initial result (the directives are a client's hint, not a demand),
and ``{data, errors}`` is the only answer such a client can read. This module
does that by executing the document without its ``@defer``/``@stream``
directives, so the answer equals the one the same query gets without them.
A ``*/*`` or ``multipart/*`` wildcard does not count: curl and browsers send
those and expect JSON.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from api.execution.incremental import is_incremental, without_incremental
from api.operation.request import Operation


@dataclass
class Delivery:
    """How the current request's answer may be delivered."""

    multipart: bool = False


_current: contextvars.ContextVar[Delivery] = contextvars.ContextVar("newsgraph_delivery")


def start(multipart: bool) -> Delivery:
    """Begin a request: whether its client reads ``multipart/mixed``."""
    delivery = Delivery(multipart=multipart)
    _current.set(delivery)
    return delivery


def current_delivery() -> Delivery:
    """The current request's delivery; outside an HTTP request (scripts,
    benchmarks calling the schema directly) nothing is delivered in parts."""
    return _current.get(None) or Delivery()


class Deliver:
    """Step, after pricing (a deferred query costs what it would undeferred):
    for a client that reads no multipart answer, the document executes
    without its ``@defer``/``@stream``, so it is answered whole (and may be
    answered by a plan, which the document with them may not)."""

    def __call__(self, op: Operation) -> None:
        document = op.document
        if (
            document is not None
            and not current_delivery().multipart
            and is_incremental(document, op.query)
        ):
            op.executed = without_incremental(document)
