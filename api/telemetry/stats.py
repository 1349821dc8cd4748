"""What one request did, counted as it happens: store calls, the operation,
its error codes, how it ran.

The HTTP layer opens a :class:`RequestStats` for each request
(``api.http.observe``, which logs and counts it when the request ends); the
pipeline fills in the operation and its error codes, and the store gateway
counts its round trips into it. It lives in a context variable, so DataLoader
batches that run in their own tasks still count toward the request that
caused them.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestStats:
    store_calls: int = 0
    operation: str | None = None
    error_codes: list[str] = field(default_factory=list)
    #: Set by api.http.guard when the client left mid-request.
    client_gone: bool = False
    #: How each operation ran: "compiled" or "fallback" (api.execution).
    executions: list[str] = field(default_factory=list)


_current: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar(
    "newsgraph_request", default=None
)


def current_stats() -> RequestStats | None:
    """The stats of the request being served, if any."""
    return _current.get()


def count_store_call() -> None:
    stats = _current.get()
    if stats is not None:
        stats.store_calls += 1


class collecting:  # a lowercase name: used as the function it was, in a with statement
    """Stats for the request served inside (an HTTP request).

    A class, not a generator under ``contextlib.contextmanager``: it is opened
    for every request, and the generator's machinery cost more than the rest.
    """

    __slots__ = ("_token",)
    _token: contextvars.Token[RequestStats | None]

    def __enter__(self) -> RequestStats:
        stats = RequestStats()
        self._token = _current.set(stats)
        return stats

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)
