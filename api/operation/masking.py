"""Errors on their way out: classified, logged, and all but the client's masked.

Every error of every answer passes here once, as graphql-core made it: a
refused variable gets its code (``BAD_USER_INPUT``), an unexpected error is
logged with its traceback and its message replaced by ``internal error``; a
client's mistake is logged in one short line (a hostile client could make
the document a megabyte long, so the document is never logged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError

from api.errors import INTERNAL_MESSAGE, classify, should_mask
from api.operation.request import Operation

log = logging.getLogger("newsgraph.api")


def log_errors(errors: Iterable[GraphQLError]) -> None:
    """Classify and log each error (before any is masked)."""
    for error in errors:
        classify(error)
        if should_mask(error):
            log.error("error resolving %s", error.path, exc_info=error.original_error)
        else:
            log.info("client error: %s", error.message[:200])


def masked(error: GraphQLError) -> GraphQLError:
    """The error a client sees: itself, or ``internal error`` at the same place."""
    if not should_mask(error):
        return error
    return GraphQLError(
        INTERNAL_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
    )


def processed(errors: list[GraphQLError] | None) -> list[GraphQLError] | None:
    """``errors`` logged, and as the client sees them."""
    if not errors:
        return errors
    log_errors(errors)
    return [masked(error) for error in errors]


class MaskErrors:
    """Step on each answer: its errors logged, classified and masked."""

    def __call__(self, op: Operation, result: Any) -> Any:
        if result.errors:
            result.errors = processed(result.errors)
        return result

    @staticmethod
    def part(part: Any) -> Any:
        """A later part of an incremental answer: the errors of each deferred
        or streamed payload, and of each completed one, the same way."""
        for payload in [
            *(getattr(part, "incremental", None) or ()),
            *(getattr(part, "completed", None) or ()),
        ]:
            if getattr(payload, "errors", None):
                payload.errors = processed(payload.errors)
        return part
