"""HTTP caching of GET queries: ETag, 304 Not Modified, Cache-Control.

Mobile clients and CDNs repeat the same GET query; an unchanged answer then
costs a 304 with no body. Only successful answers to anonymous requests are
cacheable by shared caches: a request with credentials may see unpublished
articles, and an error (a store outage) must not be kept.

The answer's ETag leaves out ``extensions.cost.throttleStatus``, the client's
budget as it stood (``api.operation.throttle``), which changes with every
request while the answer does not.
"""

from __future__ import annotations

import hashlib
import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: GraphQL responses as either media type the view negotiates (api/http/media.py).
CACHEABLE = ("application/json", "application/graphql-response+json")


#: What a GET answer depends on besides its URL. Accept: the media type (and
#: so the status codes, or parts rather than a whole answer) is negotiated.
VARY = "Authorization, Accept, Accept-Encoding"

#: The budget in an answer: numbers only, so text in the data (where a quote
#: is escaped) never matches it.
THROTTLE_STATUS = re.compile(rb',?"throttleStatus":\{(?:"[A-Za-z]+":[0-9.e+-]+,?)*\}')


def etag_basis(body: bytes) -> bytes:
    """What an answer's ETag is computed from: its bytes without the budget
    (the last thing in it, so looked for from the end)."""
    at = body.rfind(b'"throttleStatus":{')
    if at < 0:
        return body
    start = at - 1 if at and body[at - 1 : at] == b"," else at
    found = THROTTLE_STATUS.match(body, start)
    return body if found is None else body[:start] + body[found.end() :]


class QueryCaching:
    def __init__(self, app: ASGIApp, max_age: int) -> None:
        self.app = app
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        start: Message | None = None
        chunks: list[bytes] = []
        passing = False

        async def buffer(message: Message) -> None:
            nonlocal start, passing
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message["headers"]).get("content-type", "")
                # A stream (multipart/mixed parts of a deferred query) goes out as
                # it comes: buffering it for an ETag would hold back its first part.
                passing = not content_type.startswith(CACHEABLE)
                if passing:
                    # Not cached here, and by no one else: the same URL answers
                    # other clients whole (Accept), so a shared cache must not
                    # hand them this stream.
                    headers = MutableHeaders(raw=message["headers"])
                    headers["Cache-Control"] = "no-store"
                    headers["Vary"] = VARY
                    await send(message)
                else:
                    start = message
                return
            if passing:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            body = b"".join(chunks)
            headers = MutableHeaders(raw=start["headers"])
            content_type = headers.get("content-type", "")
            if start["status"] != 200 or not content_type.startswith(CACHEABLE):
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            # The same body as another media type is another representation.
            digest = hashlib.blake2b(
                etag_basis(body), digest_size=16, key=content_type.encode()[:64]
            )
            etag = 'W/"' + digest.hexdigest() + '"'
            private = "authorization" in request_headers or b'"errors":' in body
            headers["ETag"] = etag
            headers["Cache-Control"] = (
                "private, no-store" if private else f"public, max-age={self.max_age}"
            )
            headers["Vary"] = VARY
            if not private and etag in request_headers.get("if-none-match", ""):
                del headers["content-length"]
                await send({**start, "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffer)
