"""Caches a client can fill, bounded by the memory they hold, not only by how many entries.

A cache keyed by what clients send (query texts, persisted-query hashes, plans,
prices, checked arguments) would otherwise let one client pin as much memory as
it can send distinct keys times the largest entry: each is given a byte
estimate here (:func:`document_size` for parsed documents, :func:`deep_size`
for small structures, measured counts for plans) and the cache evicts, least
recently used first, past its byte bound.
"""

from __future__ import annotations

import enum
import sys
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, overload

from cachetools import LRUCache
from graphql import DocumentNode, Token, TokenKind

#: Bytes an entry holds besides its value: the key it is kept under and the
#: LRU's bookkeeping (measured for a 64-character hash key: 240; rounded up).
ENTRY_BYTES = 300

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class BoundedLRU(LRUCache[K, V], Generic[K, V]):
    """An LRU cache bounded by entries and by bytes (as ``sizeof`` estimates
    them). An entry over ``max_item_bytes`` is not kept at all, so one large
    value cannot flush everything else."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        sizeof: Callable[[V], int],
        max_item_bytes: int | None = None,
    ) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=sizeof)
        self.max_entries = max_entries
        self.max_item_bytes = max_bytes if max_item_bytes is None else max_item_bytes
        # cachetools' own entries and recency order, read by :meth:`get`
        # directly (None where a version keeps them under other names).
        self._found: dict[K, V] | None = getattr(self, "_Cache__data", None)
        self._recency: OrderedDict[K, None] | None = getattr(self, "_LRUCache__order", None)

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: V | T) -> V | T: ...

    def get(self, key: K, default: Any = None) -> Any:
        # One look-up where cachetools makes two (``in``, then ``[]``): the
        # caches are read on every request, and nearly always hold the key.
        # Read where cachetools keeps it, and marked used as its ``[]`` marks
        # it, without that method's three calls (a dozen reads a request).
        found, recency = self._found, self._recency
        if found is None or recency is None:
            try:
                return self[key]
            except KeyError:
                return default
        try:
            value = found[key]
        except KeyError:
            return default
        recency.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        if self.getsizeof(value) > self.max_item_bytes:
            self.pop(key, None)  # a stale smaller value must not stay behind
            return
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            self.popitem()


#: Objects shared by every entry, never held on an entry's account: code,
#: classes, modules and enum members.
_SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, enum.Enum)


def deep_size(value: object, skip: Callable[[object], bool] = lambda _: False) -> int:
    """Estimated bytes ``value`` holds: its own ``sys.getsizeof`` and that of
    everything it reaches through containers and attributes (dataclasses,
    ``__slots__``), each object once. Code, classes, modules and enum members
    are shared, and so is what ``skip`` names: not counted. For cache entries
    of a few hundred objects (a price, a field's checked arguments), measured
    once when they are kept."""
    seen: set[int] = set()
    stack: list[Any] = [value]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _SHARED) or skip(item):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, (str, bytes, int, float, bool)) or item is None:
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        else:
            attributes = getattr(item, "__dict__", None)
            if attributes is not None:
                stack.append(attributes)
            for klass in type(item).__mro__:
                slots = getattr(klass, "__slots__", ())
                for name in (slots,) if isinstance(slots, str) else slots:
                    stack.append(getattr(item, name, None))
    return total


#: Memory of a parsed document per token, measured with tracemalloc: 420–640
#: bytes (Token, Location, the AST nodes), rounded up; a comment is a bare
#: Token (190 bytes).
BYTES_PER_TOKEN = 700
BYTES_PER_COMMENT = 250


def document_size(query: str, document: DocumentNode) -> int:
    """Estimated bytes of a parsed document and its query text. Counts the
    tokens chained from the document's location (comments included, since the
    lexer keeps them too); linear, and only paid once per cached document.
    Whatever holds any node of the document (a plan holds its fields' nodes)
    holds all of this: each node's location reaches the whole token chain."""
    if document.loc is None:  # parsed without locations: every character a token, at most
        return len(query) * BYTES_PER_TOKEN + 2 * sys.getsizeof(query)
    size = 2 * sys.getsizeof(query)  # the text, and the copies token values make of it
    token: Token | None = document.loc.start_token
    while token is not None:
        size += BYTES_PER_COMMENT if token.kind is TokenKind.COMMENT else BYTES_PER_TOKEN
        token = token.next
    return size
