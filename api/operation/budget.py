"""The cost analysis (:mod:`api.operation.cost`) applied to requests: prices kept per
query, the budget a price must stay within, the step that refuses a query
over it, and the one that reports ``extensions.cost`` (requested, actual, budget).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from strawberry.types import ExecutionResult

from api.bounded import ENTRY_BYTES, BoundedLRU, deep_size
from api.errors import QueryTooCostlyError
from api.operation.cost import CAP, Cost, count_objects, query_cost
from api.operation.request import Operation, Refused
from api.telemetry.stats import current_stats


@dataclass(frozen=True)
class _Kept:
    """A cache entry (a price, or the variables a price read) and the
    estimated bytes it holds with its key (whose query text may be long)."""

    value: Any
    size: int


class CostCache:
    """Costs of queries seen before, so a repeated query is priced once: the
    walk is per-request CPU that a popular query need not pay again.

    A cost depends only on the query text, the operation and the values of the
    variables its walk read (``Cost.variables``): those make the key. The walk
    is determined by them, so an entry found under them is what a new walk
    would give, whatever the other variables (an article's id) are.

    Both kinds of entry hold a query text and what the client sent (a cost
    has a path per aliased field, a key the variables' values): bounded by
    their estimated bytes as well as by count, in one cache.
    """

    #: Share of the bound one entry may take; larger ones are priced each time.
    MAX_SHARE = 16

    def __init__(self, maxsize: int = 512, max_bytes: int = 4_000_000) -> None:
        self._entries: BoundedLRU[tuple[Any, ...], _Kept] = BoundedLRU(
            maxsize, max_bytes, lambda kept: kept.size, max_bytes // self.MAX_SHARE
        )

    @property
    def bytes(self) -> int:
        """The estimated bytes held now (never over the bound)."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def cost(
        self,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
    ) -> Cost:
        if not query:  # a document with no text to key it by
            return query_cost(schema, document, variables, operation_name)
        key = self._key(query, operation_name, variables)
        found = self._entries.get(key) if key is not None else None
        if found is not None:
            cost: Cost = found.value
            return cost
        cost = query_cost(schema, document, variables, operation_name)
        text = sys.getsizeof(query) + ENTRY_BYTES  # each key holds the text
        self._entries[("reads", query, operation_name)] = _Kept(
            cost.variables, text + deep_size(cost.variables)
        )
        key = self._key(query, operation_name, variables)
        if key is not None:
            self._entries[key] = _Kept(cost, text + deep_size(key[3]) + deep_size(cost))
        return cost

    def clear(self) -> None:
        self._entries.clear()

    def _key(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None
    ) -> tuple[Any, ...] | None:
        reads = self._entries.get(("reads", query, operation_name))
        if reads is None:
            return None
        names: frozenset[str] = reads.value
        if not names:  # priced alike whatever the variables (most queries)
            return ("cost", query, operation_name, ())
        given = variables if isinstance(variables, Mapping) else {}
        # The type too: 1, 1.0 and True are equal keys, but not the same `first`.
        values = tuple(
            (n, type(given[n]).__name__, given[n]) if n in given else (n, "absent", None)
            for n in sorted(names)
        )
        try:
            hash(values)
        except TypeError:  # a list or object where a scalar belongs: not worth keeping
            return None
        return ("cost", query, operation_name, values)


@dataclass(frozen=True)
class Budget:
    objects: int
    store_calls: int

    def refusal(self, cost: Cost) -> str | None:
        """Why ``cost`` is over this budget, in words that say what to change."""
        if cost.objects > self.objects:
            path, part = cost.heaviest("objects")
            return (
                f"query too costly: it could return {_amount(cost.objects)} objects, over "
                f"the budget of {self.objects:,}; most come from `{path}` ({_amount(part)}). "
                "Ask for fewer items with `first`, or nest fewer lists."
            )
        if cost.store_calls > self.store_calls:
            path, part = cost.heaviest("store_calls")
            return (
                f"query too costly: it could make {_amount(cost.store_calls)} store calls, "
                f"over the budget of {self.store_calls:,}; most come from `{path}` "
                f"({_amount(part)}). A list inside a list asks the store once per parent: "
                "ask for fewer parents with `first`, or fetch that list in a query of its own."
            )
        return None

    def as_dict(self) -> dict[str, int]:
        return {"objects": self.objects, "storeCalls": self.store_calls}


def _amount(n: int) -> str:
    return f"over {n:,}" if n >= CAP else f"{n:,}"


class Price:
    """Step, once the document is valid: price the operation, and refuse it,
    unexecuted, over budget. A subscription is priced as one query per
    article it sends. The price stays on the operation for :class:`Report`."""

    def __init__(self, schema: GraphQLSchema, budget: Budget, costs: CostCache) -> None:
        self.schema = schema
        self.budget = budget
        self.costs = costs

    def __call__(self, op: Operation) -> None:
        assert op.document is not None
        op.cost = self.costs.cost(self.schema, op.query or "", op.document, op.variables, op.name)
        op.calls_before = store_calls_so_far()
        refusal = self.budget.refusal(op.cost)
        if refusal is not None:
            raise Refused(GraphQLError(refusal, original_error=QueryTooCostlyError(refusal)))


class Report:
    """Step on each answer: ``extensions.cost`` (requested, actual, budget) for
    an operation that was priced."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def __call__(self, op: Operation, result: ExecutionResult) -> ExecutionResult:
        cost = op.cost
        if cost is None:  # refused before pricing: nothing to report
            return result
        # The objects the builder counted, if it did; the store calls a kept
        # answer took to make (api.operation.answered).
        objects = getattr(result, "objects", None)
        calls = getattr(result, "store_calls", None)
        report_ = report(cost, self.budget, result.data, op.calls_before, objects, calls)
        result.extensions = {**(result.extensions or {}), **report_}
        return result


def store_calls_so_far() -> int | None:
    """The store calls of the request being served (None outside one)."""
    stats = current_stats()
    return None if stats is None else stats.store_calls


def report(
    cost: Cost,
    budget: Budget,
    data: Any,
    calls_before: int | None,
    objects: int | None = None,
    calls: int | None = None,
) -> dict[str, Any]:
    """``extensions.cost``: the price asked, what the answer took, the budget.
    ``objects`` is the answer's count when the builder already knows it;
    ``calls`` the store calls, when the answer was made before (kept)."""
    now = store_calls_so_far()
    if calls is None and now is not None and calls_before is not None:
        calls = now - calls_before
    if objects is None:
        objects = count_objects(data)
    return {
        "cost": {
            "requested": {"objects": cost.objects, "storeCalls": cost.store_calls},
            "actual": {"objects": objects, "storeCalls": calls},
            "budget": budget.as_dict(),
        }
    }
