"""Step on each answer: the caching policy of its operation, and whether the
answer may be kept by shared caches, for the HTTP layer's cache headers
(``api.http.caching``).

Only an answer that gathers cache keys wants one (an anonymous GET's: see
``api.schema.caching``); any other passes at the cost of one attribute read.
The policy depends on the query text and operation alone, so it is worked out
once for each and kept, bounded by bytes like every cache a client can fill.

**Shared answers carry no client's state.** An answer is shared (``public``:
a CDN or proxy may give it to anyone) when it is an anonymous GET's, its
policy is not private and it has no errors: decided here, once, and nowhere
else. Such an answer is everyone's, so it carries nobody's budget: the step
after this one, ``ReportBudget`` (``api.operation.throttle``), leaves out
``extensions.cost.throttleStatus`` and the ``RateLimit`` headers for it (the
budget is still drawn and refused as for any answer). Kept, they would tell
every client served from the cache the budget of whoever asked first, which
is what the IETF draft's RateLimit fields warn a cached response does, and
made private instead, no anonymous answer could be kept by a CDN at all. A
client that wants its budget reads it on any answer that is not shared (a
POST, a refusal, an error) or sends a key. So this step runs before
``ReportBudget`` (``api.operation.schema``).
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
        keys.policy = found = self.policy(op)
        keys.shared = found is not None and not found.private and not result.errors
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


def shared(op: Operation) -> bool:
    """Whether ``op``'s answer may be kept by shared caches (:class:`CacheHints`
    has decided it): if so it carries no client's own state."""
    keys = getattr(op.context, "keys", None)
    return keys is not None and keys.shared
