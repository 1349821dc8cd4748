"""Which media type a GraphQL response is sent as, and what that changes.

The GraphQL-over-HTTP spec has two: ``application/graphql-response+json``,
whose status code tells a request error (400, no ``data``) from a response
with field errors (200), and ``application/json``, which legacy clients get:
200 for every GraphQL response, as this API has always answered.

A client gets ``application/graphql-response+json`` when its ``Accept``
names it at least as highly as ``application/json``; ``application/json``
when it sends no ``Accept`` (or one that cannot be read), when JSON ranks
higher, or when it accepts both only through a wildcard (``*/*``,
``application/*``: Apollo Client 3, browsers and curl send those, and expect
what they always got); and nothing (406) when it accepts neither.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from graphql import GraphQLError

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class MediaRange(NamedTuple):
    type: str
    subtype: str
    q: float

    def specificity(self, media_type: str) -> int:
        """How closely this range names ``media_type``: 2 exactly, 1 by
        ``type/*``, 0 by ``*/*``; -1 if it does not cover it."""
        type_, _, subtype = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 0
        if self.type != type_:
            return -1
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == subtype else -1


def parse_accept(header: str) -> list[MediaRange]:
    """The readable media ranges of an ``Accept`` header; malformed ones are
    skipped (RFC 9110 lets a server disregard what it cannot read)."""
    ranges = []
    for element in header.split(","):
        media_range, *params = (part.strip() for part in element.split(";"))
        type_, slash, subtype = media_range.lower().partition("/")
        if not slash or not type_ or not subtype or (type_ == "*" and subtype != "*"):
            continue
        q = _quality(params)
        if q is not None:
            ranges.append(MediaRange(type_, subtype, q))
    return ranges


def _quality(params: list[str]) -> float | None:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0 <= q <= 1 else None
    return 1.0


def _preference(ranges: list[MediaRange], media_type: str) -> tuple[float, int]:
    """The quality ``media_type`` gets (from the most specific range that
    covers it, as RFC 9110 says) and how specific that range is."""
    best = (0.0, -1)
    for media_range in ranges:
        specificity = media_range.specificity(media_type)
        if specificity < 0:
            continue
        if specificity > best[1] or (specificity == best[1] and media_range.q > best[0]):
            best = (media_range.q, specificity)
    return best


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or ``None`` if the client accepts neither."""
    return _negotiated(parse_accept(accept or ""))


def read_accept(accept: str | None) -> tuple[str | None, bool]:
    """What a client's ``Accept`` says, read once: the media type to answer
    with (None: neither), and whether it reads ``multipart/mixed``. A client
    sends the same few on every request: what a short one says is kept."""
    if accept is None or len(accept) > ACCEPT_KEPT_MAX:
        return _read_accept(accept or "")
    return _kept_accept(accept)


def _read_accept(accept: str) -> tuple[str | None, bool]:
    ranges = parse_accept(accept)
    return _negotiated(ranges), _multipart(ranges)


#: ``Accept`` values whose reading is kept, and the longest kept: each entry
#: is its text, a small tuple and the cache's node (under 600 bytes), so all
#: of them take under 80 kB whatever clients send.
ACCEPTS_KEPT = 128
ACCEPT_KEPT_MAX = 256
_kept_accept = lru_cache(maxsize=ACCEPTS_KEPT)(_read_accept)


def _negotiated(ranges: list[MediaRange]) -> str | None:
    if not ranges:
        return JSON  # no Accept (or none readable): a legacy client
    graphql_q, graphql_specificity = _preference(ranges, GRAPHQL_RESPONSE)
    json_q, _ = _preference(ranges, JSON)
    if graphql_q == json_q == 0:
        return None
    if graphql_q > json_q or (graphql_q == json_q and graphql_specificity == 2):
        return GRAPHQL_RESPONSE
    return JSON


def is_request_error(data: object, errors: list[GraphQLError] | None) -> bool:
    """Whether the GraphQL request failed before it executed: the document did
    not parse or validate, a variable could not be coerced, the operation was
    refused (cost, persisted query). graphql-core then gives no data, and none
    of the errors has a path; an error raised by a field always has one, so a
    field error is never taken for the request's (its data may be null too)."""
    return data is None and bool(errors) and all(error.path is None for error in errors or ())


MULTIPART = "multipart/mixed"


def _multipart(ranges: list[MediaRange]) -> bool:
    return any((r.type, r.subtype) == ("multipart", "mixed") and r.q > 0 for r in ranges)
