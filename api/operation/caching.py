"""Step on each answer: the caching policy of its operation, for the HTTP
layer's cache headers (``api.http.caching``).

Only an answer that gathers cache keys wants one (an anonymous GET's: see
``api.schema.caching``); any other passes at the cost of one attribute read.
The policy depends on the query text and operation alone, so it is worked out
once for each and kept, bounded by bytes like every cache a client can fill.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema

from api.bounded import BoundedLRU
from api.operation.request import Operation
from api.schema.caching import AnswerPolicy, policy

#: Policies kept (each is its key's query text and a few small objects).
MAX_POLICIES = 1000
MAX_POLICY_BYTES = 4_000_000
#: A policy's own size beside its key's text (bytes, estimated).
POLICY_BYTES = 300


class CacheHints:
    """Step on each answer: hands the operation's policy to the answer's keys."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.policies: BoundedLRU[tuple[str, str | None], tuple[AnswerPolicy | None, int]] = (
            BoundedLRU(MAX_POLICIES, MAX_POLICY_BYTES, lambda entry: entry[1])
        )

    def __call__(self, op: Operation, result: Any) -> Any:
        keys = getattr(op.context, "keys", None)
        if keys is None or op.document is None:
            return result
        keys.policy = self.policy(op)
        return result

    def policy(self, op: Operation) -> AnswerPolicy | None:
        assert op.document is not None
        if not op.query:  # no text to key it by
            return policy(self.schema, op.document, op.name)
        key = (op.query, op.name)
        found = self.policies.get(key)
        if found is None:
            made = policy(self.schema, op.document, op.name)
            found = (made, len(op.query) + len(op.name or "") + POLICY_BYTES)
            self.policies[key] = found
        return found[0]
