"""HTTP caching of GET queries: ETag, 304 Not Modified, Cache-Control, and the
cache keys a CDN purges by.

Mobile clients and CDNs repeat the same GET query; an unchanged answer then
costs a 304 with no body. Only successful answers to anonymous requests are
cacheable by shared caches: a request with credentials may see unpublished
articles, and an error (a store outage) must not be kept.

How long, and by whom, is the schema's to say (``api.schema.caching``: the
shortest hint among the fields the query selects, private if any field is).
The settings bound it twice: ``max-age`` by ``NEWSGRAPH_CACHE_MAX_AGE``, for
every cache including the browser's, which nothing can purge;
``s-maxage`` by ``NEWSGRAPH_CACHE_SHARED_MAX_AGE``, for shared caches (CDNs),
which the loader's purge hook reaches (``loaders.purge``).

An anonymous answer also lists the cache keys of the objects it holds
(``core.cachekeys``) in each header of ``NEWSGRAPH_CACHE_KEY_HEADERS``:
``Surrogate-Key`` (Fastly, Varnish, space-separated) and ``Cache-Tag``
(Cloudflare, comma-separated) by default. Each header is at most
``NEWSGRAPH_CACHE_KEYS_MAX_BYTES``: the CDNs take 16 KB, but a proxy in front
of the app may take far less for all of a response's headers (nginx's
default buffer is 4 KB), so the default is 2000 bytes, and past the bound the
keys of the type that takes the most room give way to one key for the type.

Whether an answer may be shared at all is the pipeline's to say, with the
policy: its finish step (``api.operation.caching``) marks an answer shared
only when it has no errors and no private field, and then keeps the client's
budget (``RateLimit`` headers, ``extensions.cost.throttleStatus``) out of it,
so a CDN's copy tells nobody another client's budget, and its ETag is the
same whoever asks. This layer adds only what it alone knows: the status and
media type of what goes out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schema.caching import Keys, collecting
from core.cachekeys import bounded
from core.config import Settings

#: GraphQL responses as either media type the view negotiates (api/http/media.py).
CACHEABLE = ("application/json", "application/graphql-response+json")


#: What a GET answer depends on besides its URL. Accept: the media type (and
#: so the status codes, or parts rather than a whole answer) is negotiated.
VARY = "Authorization, Accept, Accept-Encoding"
NOT_SHARED = "private, no-store"
#: Key headers whose names end so list keys separated by commas (Cloudflare's
#: Cache-Tag, Akamai's Edge-Cache-Tag); the others, by spaces.
COMMA_SEPARATED = "cache-tag"


@dataclass(frozen=True)
class CachePolicy:
    """The settings' part of each answer's cache headers."""

    #: Longest ``max-age`` (any cache) and ``s-maxage`` (shared caches), seconds.
    max_age: int = 60
    shared_max_age: int = 60
    #: Headers that list the keys, and each one's bound (bytes).
    key_headers: tuple[str, ...] = ()
    keys_max_bytes: int = 2000

    @classmethod
    def for_settings(cls, settings: Settings) -> CachePolicy:
        settings.check()
        return cls(
            settings.cache_max_age,
            settings.cache_shared_max_age,
            settings.key_headers(),
            settings.cache_keys_max_bytes,
        )

    def cache_control(self, keys: Keys | None) -> str:
        """``Cache-Control`` of a successful anonymous answer: shared only if
        the pipeline said so (``api.operation.caching``), which also kept
        the client's budget out of it."""
        policy = keys.policy if keys is not None else None
        if keys is None or policy is None or not keys.shared:
            return NOT_SHARED
        hinted = policy.max_age
        shared = self.shared_max_age if hinted is None else min(hinted, self.shared_max_age)
        every = min(shared, self.max_age)
        if shared == every:
            return f"public, max-age={every}"
        return f"public, max-age={every}, s-maxage={shared}"

    def key_values(self, keys: Keys) -> list[tuple[str, str]]:
        """The key headers of an answer that holds ``keys``."""
        if keys.objects is None or keys.policy is None:
            return []
        listed = bounded(keys.objects, keys.policy.lists, self.keys_max_bytes)
        spaced, commas = " ".join(listed), ",".join(listed)
        return [
            (name, commas if name.lower().endswith(COMMA_SEPARATED) else spaced)
            for name in self.key_headers
        ]


class QueryCaching:
    def __init__(self, app: ASGIApp, policy: CachePolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain method: anything but a GET query passes with no frame of its own.
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/graphql":
            return self.app(scope, receive, send)
        return self._cached(scope, receive, send)

    async def _cached(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The request's headers this needs, by one scan of the raw list (the
        # first of each, as Starlette's Headers would give).
        authorized = False
        accept = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorized = True
            elif name == b"accept":
                accept = value if accept is None else accept
            elif name == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match
        # An event stream (graphql-sse) is never kept, so it gathers nothing.
        anonymous = not authorized and (accept is None or b"text/event-stream" not in accept)
        start: Message | None = None
        content_type = ""
        chunks: list[bytes] = []
        passing = False
        # Only an answer that may be shared (an anonymous one) has a policy,
        # and its objects are gathered only if a header is to list them.
        keys = Keys(set() if self.policy.key_headers else None) if anonymous else None

        async def buffer(message: Message) -> None:
            nonlocal start, passing, content_type
            if message["type"] == "http.response.start":
                content_type = _content_type(message["headers"])
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
            if start["status"] != 200 or not content_type.startswith(CACHEABLE):
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            # The same body as another media type is another representation.
            digest = hashlib.blake2b(body, digest_size=16, key=content_type.encode()[:64])
            etag = 'W/"' + digest.hexdigest() + '"'
            cache_control = NOT_SHARED
            if anonymous and b'"errors":' not in body:
                cache_control = self.policy.cache_control(keys)
            private = cache_control == NOT_SHARED
            headers["ETag"] = etag
            headers["Cache-Control"] = cache_control
            headers["Vary"] = VARY
            if not private and keys is not None:
                for name, value in self.policy.key_values(keys):
                    headers[name] = value
            if not private and if_none_match is not None and etag.encode() in if_none_match:
                del headers["content-length"]
                await send({**start, "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        if keys is None:
            await self.app(scope, receive, buffer)
            return
        with collecting(keys):
            await self.app(scope, receive, buffer)


def _content_type(headers: list[tuple[bytes, bytes]]) -> str:
    """The first ``Content-Type`` of an answer's raw headers, or ``""``."""
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""
