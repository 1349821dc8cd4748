"""``@defer`` and ``@stream`` in a document: found, or taken out.

Plans answer whole documents only; a document with either directive is
delivered in parts by ordinary execution, or executed without them for a
client that reads no multipart (``api.operation.incremental``).
"""

from __future__ import annotations

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

#: The directives whose results may come in later parts.
INCREMENTAL = frozenset({GraphQLDeferDirective.name, GraphQLStreamDirective.name})


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
