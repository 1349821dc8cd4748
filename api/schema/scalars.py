"""``DateTime``: ISO-8601 in UTC, as stored.

The store holds naive datetimes that are UTC by contract (see
``core.document``); they go out with a ``Z``. Inputs may carry any offset
and are converted to UTC; an input without one is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from api.errors import ClientError


def serialize(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def parse(value: object) -> datetime:
    if not isinstance(value, str):
        raise ClientError("expected an ISO-8601 date-time string such as 2025-01-31T12:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ClientError(
            f"{value[:60]!r} is not an ISO-8601 date-time; use a form such as 2025-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


DateTime = strawberry.scalar(
    name="DateTime",
    description="An ISO-8601 date-time in UTC, such as 2025-01-31T12:00:00.000Z.",
    serialize=serialize,
    parse_value=parse,
)
