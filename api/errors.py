"""Errors a client is meant to read, and the rule that hides all others.

Resolvers raise :class:`ClientError` for anything the client can fix (a bad
cursor, ``first`` over the cap); its message is shown as is. Any other
exception is a bug or an outage, and the client sees only a generic message
(the server logs the details), so internals never leak.
"""

from __future__ import annotations

from graphql import GraphQLError, ValueNode


class ClientError(Exception):
    """A problem with the request, explained so the client can fix it."""

    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.extensions = {"code": self.code}


class StoreUnavailableError(ClientError):
    code = "STORE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("the article store is not answering right now; try again shortly")


class QueryTooCostlyError(ClientError):
    """A query whose worst case is over the budget, refused before it runs."""

    code = "QUERY_TOO_COSTLY"


#: Code of a variable the request's variables could not give (wrong type,
#: missing, unknown input field, bad scalar): the request's own mistake.
BAD_USER_INPUT = "BAD_USER_INPUT"


def is_input_error(error: GraphQLError) -> bool:
    """Whether graphql-core refused the request's variables or arguments.

    It reports each as a GraphQLError wrapping the GraphQLError that explains
    it: with no path when a variable is refused before executing, with the
    field's path when an argument is (a variable declared nullable, given null
    for a non-null argument that has a default), located at the argument's
    value. graphql-core's other field errors (a value the schema cannot
    serialize) are located at the field: our bugs, never the client's mistake.
    """
    original = error.original_error
    if not isinstance(original, GraphQLError):
        return False
    if error.path is None:
        return True
    return bool(original.nodes) and all(isinstance(n, ValueNode) for n in original.nodes or ())


class RequestTimeoutError(ClientError):
    """The request ran out of time (``NEWSGRAPH_REQUEST_TIMEOUT_MS``); what it
    had not fetched by then is missing, and its pending store calls were dropped.

    ``waiting_on_store``: the time ran out while a store call had not answered.
    Said so, because a store that hangs (a stalled server, a partition that
    drops packets) first shows as this, and "ask for less" alone sends the
    client looking at its own query; a heavy query ends the same way, so the
    message names both."""

    code = "TIMEOUT"

    def __init__(self, limit_s: float, waiting_on_store: bool = False) -> None:
        if waiting_on_store:
            advice = (
                "the article store had not answered by then: try again shortly, "
                "or ask for less (a smaller `first`, fewer nested fields) if the query is large"
            )
        else:
            advice = "ask for less (a smaller `first`, fewer nested fields) or try again later"
        super().__init__(
            f"the request did not finish within its {limit_s:g} s limit and was stopped; {advice}"
        )


class OverloadedError(ClientError):
    """Every store slot stayed busy for the whole short wait: the request is
    shed (HTTP 503 with Retry-After) rather than queued behind the others."""

    code = "OVERLOADED"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the server is busy; retry in {retry_after_s} s")


class RateLimitedError(ClientError):
    """The client has spent its budget (``api.operation.throttle``), or runs
    as many operations as it may at once: HTTP 429 with ``Retry-After``."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnauthenticatedError(ClientError):
    """The request named an API key that is unknown or revoked: HTTP 401."""

    code = "UNAUTHENTICATED"


class TooManySubscriptionsError(ClientError):
    """A connection, a client or the worker holds as many subscriptions (or
    as much memory in them) as it may. ``worker``: the worker's bound, not
    the client's doing (an event stream answers 503 with Retry-After, not 429)."""

    code = "TOO_MANY_SUBSCRIPTIONS"

    def __init__(self, message: str, worker: bool = False) -> None:
        super().__init__(message)
        self.worker = worker


class ClientClosedRequestError(ClientError):
    """The client hung up; nobody reads this, but the work it stops is real."""

    code = "CLIENT_CLOSED_REQUEST"

    def __init__(self) -> None:
        super().__init__("the client closed the connection before the answer was ready")


def should_mask(error: GraphQLError) -> bool:
    """For strawberry's MaskErrors: hide everything but client errors, GraphQL's
    own parse and validation errors (which have no original error) and its
    refusals of the request's variables."""
    original = error.original_error
    client_side = isinstance(original, ClientError) or is_input_error(error)
    return original is not None and not client_side


def classify(error: GraphQLError) -> None:
    """Give a refused variable its code (replacing a scalar's own, so that every
    refused variable reads the same to the client)."""
    if is_input_error(error):
        error.extensions = {**(error.extensions or {}), "code": BAD_USER_INPUT}


#: What clients see instead of an unexpected error's message.
INTERNAL_MESSAGE = "internal error"


def error_code(error: GraphQLError) -> str:
    """A response error's code, for metrics and logs: its own, INTERNAL for a
    masked one, GRAPHQL_VALIDATION_FAILED for GraphQL's parse and validation
    errors (which carry none)."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    if error.message == INTERNAL_MESSAGE:
        return "INTERNAL"
    return "GRAPHQL_VALIDATION_FAILED"
