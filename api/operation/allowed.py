"""Which operation of the document runs, and whether it may run here.

The rules are strawberry's, so every transport's answers stay as they were:
without ``operationName`` the first operation is chosen (its name, if it has
one, then names the operation to execute); an operation the transport does
not run (a subscription over GET, a query over WebSocket) is refused with
strawberry's own exceptions, which its views answer with 400 and its
streaming transports as the operation's error.
"""

from __future__ import annotations

from graphql import GraphQLError, OperationDefinitionNode
from graphql import OperationType as GraphQLOperationType
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from api.operation.request import Operation, Refused
from api.schema.context import Context
from api.schema.subscription import over_http
from api.telemetry.stats import current_stats
from core.config import MAX_OPERATION_NAME

#: graphql-core's operation types as strawberry's (which transports speak).
KINDS = {kind: OperationType(kind.value) for kind in GraphQLOperationType}


class NameOperation:
    """Step, first of all: refuse an over-long ``operationName`` (graphql-core
    would echo the client's text, of any length, in its error), and record the
    name for the access log."""

    def __call__(self, op: Operation) -> None:
        name = op.request.operation_name
        if name is not None and len(name) > MAX_OPERATION_NAME:
            message = f"operationName is over {MAX_OPERATION_NAME} characters long"
            raise Refused(GraphQLError(message, extensions={"code": "BAD_REQUEST"}))
        stats = current_stats()
        if stats is not None:
            stats.operation = name


class ChooseOperation:
    """Step, once the document is parsed: the operation that runs, its name and
    type, and whether the transport runs operations of that type; the
    variables it does not declare are dropped."""

    def __call__(self, op: Operation) -> None:
        assert op.document is not None
        operations = [d for d in op.document.definitions if isinstance(d, OperationDefinitionNode)]
        name = op.request.operation_name
        if name is None and operations and operations[0].name:
            name = operations[0].name.value
        if name is None:
            definition = operations[0] if operations else None
        else:
            definition = next((d for d in operations if d.name and d.name.value == name), None)
        if definition is None:
            raise CannotGetOperationTypeError(name)
        kind = KINDS[definition.operation]
        if kind not in op.request.allowed:
            raise InvalidOperationTypeError(kind)
        op.definition, op.name, op.kind = definition, name, kind
        variables = op.variables
        if isinstance(variables, dict) and variables:
            declared = {d.variable.name.value for d in definition.variable_definitions or ()}
            if not declared.issuperset(variables):
                # Undeclared variables are ignored by GraphQL, and were held
                # all the same: in a subscription's share key and executor for
                # as long as it ran (90 kB a subscription, 40 a client). Gone
                # here, where every operation meets its variables' definitions.
                op.variables = {k: v for k, v in variables.items() if k in declared}
                op.request = op.request._replace(variables=op.variables)


class SubscriptionsOverWebSocket:
    """Step, once the document is valid: refuse a subscription that arrived
    where no news can reach it (over HTTP without asking for an event stream:
    graphql-core would run it as a query, and fail obscurely)."""

    def __call__(self, op: Operation) -> None:
        if op.kind is not OperationType.SUBSCRIPTION:
            return
        if not isinstance(op.context, Context) or op.context.feed is None:
            error = over_http()
            raise Refused(GraphQLError(str(error), original_error=error))
