"""What an operation's span says (``api.telemetry.tracing``): the pipeline
opens the span around the steps and the answer, and this fills it in from
what the steps found, once, when the answer is ready.

The attributes: ``graphql.operation.type`` and ``graphql.operation.name``
(OpenTelemetry's semantic conventions for GraphQL servers, which also name
the span by the type); the price (``newsgraph.cost.objects``,
``newsgraph.cost.store_calls``: the worst case the ``Price`` step found);
what the answer took (``newsgraph.objects`` from ``extensions.cost``, and
``newsgraph.store_calls``, counted by the span's store-call children); how
it ran (``newsgraph.execution``: ``compiled``, ``fallback`` or ``ordinary``,
as the metrics count it, or ``shared`` for a subscription, whose articles are
answered once for the identical ones). An answer with errors carries the first one's code
as ``error.type``; one without data (refused, or failed whole) has the
span's status ERROR.
"""

from __future__ import annotations

from typing import Any

from api.errors import error_code
from api.operation.request import Operation
from api.telemetry.tracing import AttributeValue, OperationSpan, Untraced


def describe(span: OperationSpan | Untraced, op: Operation, answer: Any) -> None:
    """Fill in ``span`` for ``op``, answered with ``answer`` (an
    ``ExecutionResult``, or the first part of one delivered in parts; None:
    no answer yet, a subscription that started)."""
    attributes: dict[str, AttributeValue] = {}
    if op.kind is not None:
        attributes["graphql.operation.type"] = op.kind.value
    if op.name:
        attributes["graphql.operation.name"] = op.name
    if op.cost is not None:
        attributes["newsgraph.cost.objects"] = op.cost.objects
        attributes["newsgraph.cost.store_calls"] = op.cost.store_calls
    if op.execution is not None:
        attributes["newsgraph.execution"] = op.execution
    error = None
    failed = False
    if answer is not None:
        actual = ((answer.extensions or {}).get("cost") or {}).get("actual") or {}
        if isinstance(actual.get("objects"), int):
            attributes["newsgraph.objects"] = actual["objects"]
        if answer.errors:
            error = error_code(answer.errors[0])
            failed = answer.data is None
    span.record(
        op.kind.value if op.kind is not None else None, attributes, error=error, failed=failed
    )
