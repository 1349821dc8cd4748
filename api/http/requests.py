"""Requests made regular before anything routes or parses them.

What a client may send that strawberry and Starlette would otherwise answer
badly: a method name of its own invention (answered 405 here, so it never
reaches routing, metrics or logs as itself), ``HEAD`` (answered as ``GET``
without the body, as HTTP says, where the view alone would refuse it), and a
media type in capitals (``APPLICATION/JSON`` is ``application/json``: media
types are case-insensitive, but strawberry compares them as written).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Every method the API answers; OPTIONS is CORS's preflight.
METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS"})
ALLOW = ", ".join(sorted(METHODS)).encode()


class RegularRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain method: a regular request passes with no frame of its own.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        method = scope["method"]
        if method not in METHODS:
            return _not_allowed(send)
        headers = _regular(scope["headers"])
        if headers is not scope["headers"]:
            scope = {**scope, "headers": headers}
        if method != "HEAD":
            return self.app(scope, receive, send)

        def without_body(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            return send(message)

        return self.app({**scope, "method": "GET"}, receive, without_body)


def _regular(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with each media type in lowercase: the same list when
    all are already (nearly every request), so it is not copied for nothing."""
    for name, value in headers:
        if name == b"content-type":
            media_type = value.partition(b";")[0]
            if media_type != media_type.lower():
                return [_lower_media_type(name, value) for name, value in headers]
    return headers


def _lower_media_type(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    if name != b"content-type":
        return name, value
    media_type, sep, params = value.partition(b";")
    return name, media_type.lower() + sep + params


async def _not_allowed(send: Send) -> None:
    body = b'{"errors":[{"message":"method not allowed: use GET or POST"}]}'
    await send(
        {
            "type": "http.response.start",
            "status": 405,
            "headers": [
                (b"allow", ALLOW),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
