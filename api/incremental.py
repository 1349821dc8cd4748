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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    BREAK,
    DirectiveNode,
    DocumentNode,
    GraphQLDeferDirective,
    GraphQLStreamDirective,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension

from api.media import parse_accept

MULTIPART = "multipart/mixed"
#: The directives whose results may come in later parts.
INCREMENTAL = frozenset({GraphQLDeferDirective.name, GraphQLStreamDirective.name})


@dataclass
class Delivery:
    """How the current request's answer may be delivered."""

    multipart: bool = False


_current: contextvars.ContextVar[Delivery] = contextvars.ContextVar("newsgraph_delivery")


def start(accept: str | None) -> Delivery:
    """Begin a request: whether its client reads ``multipart/mixed``."""
    delivery = Delivery(multipart=accepts_multipart(accept))
    _current.set(delivery)
    return delivery


def current() -> Delivery:
    """The current request's delivery; outside an HTTP request (scripts,
    benchmarks calling the schema directly) nothing is delivered in parts."""
    return _current.get(None) or Delivery()


def accepts_multipart(accept: str | None) -> bool:
    return any(
        (r.type, r.subtype) == ("multipart", "mixed") and r.q > 0
        for r in parse_accept(accept or "")
    )


class _Finder(Visitor):
    found = False

    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        if node.name.value in INCREMENTAL:
            self.found = True
            return BREAK
        return None


class _Stripper(Visitor):
    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        # Removing the node (and nothing else) keeps the fragment or field it
        # was on: the same selections, delivered with the rest.
        return self.REMOVE if node.name.value in INCREMENTAL else None


def is_incremental(document: DocumentNode, query: str | None = None) -> bool:
    """Whether ``document`` uses ``@defer`` or ``@stream`` (in any operation).
    Names cannot be escaped, so text without either word needs no walk."""
    if query is not None and "defer" not in query and "stream" not in query:
        return False
    finder = _Finder()
    visit(document, finder)
    return finder.found


def without_incremental(document: DocumentNode) -> DocumentNode:
    """A copy of ``document`` without ``@defer``/``@stream``; the cached
    original is shared by other requests and stays as it is."""
    stripped: DocumentNode = visit(document, _Stripper())
    return stripped


class IncrementalDelivery(SchemaExtension):
    """Executes a deferred or streamed query whole for a client that cannot
    read multipart. It runs after validation (the directives are valid where
    they are) and after pricing (the price is the same either way)."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if (
            document is not None
            and not current().multipart
            and is_incremental(document, context.query)
        ):
            context.graphql_document = without_incremental(document)
        yield
