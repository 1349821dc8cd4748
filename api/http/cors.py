"""Cross-origin requests from browser pages: Starlette's CORS middleware, except
that a request without an ``Origin`` does not pass through its machinery.

Only a browser sends ``Origin``, and the mobile apps, servers and CDNs that
send most requests do not; for them all Starlette's middleware does is add
``Origin`` to the answer's ``Vary`` (a cache must not hand their answer to a
page that needs the CORS headers), which this does with a scan of the raw
headers instead of the two header objects and the preflight checks it builds
for every request. The ``Vary`` written is Starlette's to the byte: the values
of the ``Vary`` headers already there and ``Origin``, joined by ``, ``, in the
place of the first, or last if there was none (tests/api/test_delivery.py
holds the two alike).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send


class CrossOrigin(CORSMiddleware):
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        # A plain method, and a plain send wrapper: a request without an
        # Origin passes with no frame of this layer's.
        if scope["type"] != "http" or _has_origin(scope["headers"]):
            return super().__call__(scope, receive, send)

        def vary_by_origin(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message["headers"] = _vary_origin(message.get("headers", ()))
            return send(message)

        return self.app(scope, receive, vary_by_origin)


#: ``Vary`` of an answer that had none.
_VARY_ORIGIN = (b"vary", b"Origin")


def _has_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, _ in headers:  # noqa: SIM110 (a generator costs more, every request)
        if name == b"origin":
            return True
    return False


def _vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A copy of ``headers`` whose ``Vary`` also names ``Origin``."""
    listed = [value for name, value in headers if name == b"vary"]
    if not listed:
        return [*headers, _VARY_ORIGIN]  # nearly every answer: the one join spared
    vary = (b"vary", b", ".join([*listed, b"Origin"]))
    merged: list[tuple[bytes, bytes]] = []
    for header in headers:
        if header[0] != b"vary":
            merged.append(header)
        elif listed:
            merged.append(vary)  # in the place of the first, the others dropped
            listed = []
    return merged
