"""One operation as the pipeline carries it through its steps.

A transport (``api.http``) hands the pipeline a :class:`Request`: what the
client sent, who it is, and what the transport allows. Each step reads the
:class:`Operation` and fills in what it found (the query text behind a
persisted hash, the parsed document, the operation to run, its price), or
refuses it with :class:`Refused`. Whatever a step finds is kept here, not in
the step, so steps hold only their configuration and caches and serve every
request alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode
from strawberry.types.graphql import OperationType

from api.data.gateway import Gateway
from api.operation.cost import Cost


class Request(NamedTuple):
    """What a client sent, as a transport hands it on (unchanged on its way:
    a named tuple, made in a fraction of a frozen dataclass's time, which
    sets each field through ``object.__setattr__``)."""

    query: str | None
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    #: The request's own ``extensions`` (``persistedQuery`` lives there).
    extensions: dict[str, Any] | None = None
    #: Who asks, and how its answer is fetched (``api.schema.context``).
    context: Any = None
    #: The operation types this transport runs (a GET runs queries only).
    allowed: frozenset[OperationType] = frozenset(OperationType)


@dataclass(eq=False, slots=True)
class Operation:
    """A request on its way through the steps: what each step found (in
    slots: a dozen steps read and write them on every request)."""

    request: Request
    #: The query text: the request's, or the one its persisted hash names.
    query: str | None = None
    #: A hash to register ``query`` under once it has validated.
    register: str | None = None
    document: DocumentNode | None = None
    #: The document was found already valid (cached): not walked or validated again.
    known: bool = False
    #: The operation of the document that runs, its name and type.
    definition: OperationDefinitionNode | None = None
    name: str | None = None
    kind: OperationType | None = None
    #: The document as it executes (``@defer`` taken out for a client that
    #: reads no multipart answer); ``document`` until a step changes it.
    executed: DocumentNode | None = None
    #: Its price (``api.operation.budget``), and the store calls made before it ran.
    cost: Cost | None = None
    calls_before: int | None = None
    #: How it was answered: "compiled" (its plan), "fallback" (ordinary
    #: execution where a plan was tried), "ordinary" (no plan tried), "shared"
    #: (a subscription: each article answered once for the identical ones).
    execution: str | None = None
    #: Points drawn from the client's budget for the answer being made
    #: (``api.operation.throttle``); what it did not use is given back.
    charged: int = 0
    #: What steps hold while the operation runs (a concurrency slot), let go
    #: once by :meth:`close` when it is over: its answer, or last part, made.
    done: list[Callable[[], None]] = field(default_factory=list)
    #: The request's context and variables, which most steps read: copied
    #: once here (the request never changes), not looked up through it each time.
    context: Any = field(init=False, repr=False)
    variables: dict[str, Any] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.context = self.request.context
        self.variables = self.request.variables

    def close(self) -> None:
        """Let go of what the steps hold, last taken first; once."""
        while self.done:
            self.done.pop()()


class Refused(Exception):
    """A step's verdict: the operation stops here, answered with these errors
    and no data. Raised by the step that found the problem; the runner turns
    it into the answer, which the steps after execution still see (errors
    logged and masked, the price reported)."""

    def __init__(self, *errors: GraphQLError) -> None:
        super().__init__(*(error.message for error in errors))
        self.errors = list(errors)


def gateway_of(op: Operation) -> Gateway | None:
    """The store an operation's transport reaches (None for a local caller,
    which has no store of its own: tests, scripts)."""
    gateway = getattr(op.request.context, "gateway", None)
    return gateway if isinstance(gateway, Gateway) else None
