"""Responses compressed for clients that accept gzip: mobile clients on slow
networks, and article lists are repetitive JSON.

Starlette's GZip middleware, except that a client that accepts no gzip gets
the answer untouched without passing it through the middleware at all
(Starlette's wraps every response to add ``Vary: Accept-Encoding``; the GET
answers a cache may keep get theirs from ``api.http.caching``, and nothing
else is cached).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Receive, Scope, Send


class Compression(GZipMiddleware):
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        # A plain method: a request it does not compress passes with no frame of its own.
        if scope["type"] == "http" and not _accepts_gzip(scope):
            return self.app(scope, receive, send)
        return super().__call__(scope, receive, send)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:  # noqa: SIM110 (a generator costs more, every request)
        if name == b"accept-encoding" and b"gzip" in value:
            return True
    return False
