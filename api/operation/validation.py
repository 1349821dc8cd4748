"""Validation: the spec's rules, strawberry's own, and newsgraph's limits on
depth and aliases (and, with introspection off, no ``__schema``/``__type``).

A document that passes is kept in the document cache (``api.operation.documents``),
so a repeated query is validated once: the rules are fixed for the schema, so
a document valid once stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphql import ASTValidationRule, GraphQLSchema
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter
from strawberry.schema.schema import validate_document

from api.operation.documents import DocumentCache
from api.operation.request import Operation, Refused


def validation_rules(
    max_depth: int, max_aliases: int, introspection: bool
) -> tuple[type[ASTValidationRule], ...]:
    """The rules every document must pass. The depth and alias limiters make a
    new rule class each time they are constructed: made once per schema, so
    every request validates with the same rules."""
    rules: list[type[ASTValidationRule]] = [
        *specified_rules,
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


class Validate:
    """Step: validate a document not known to be valid, and keep it once it is."""

    def __init__(
        self,
        schema: GraphQLSchema,
        rules: Sequence[type[ASTValidationRule]],
        cache: DocumentCache,
    ) -> None:
        self.schema = schema
        self.rules = tuple(rules)
        self.cache = cache

    def __call__(self, op: Operation) -> None:
        if op.known:
            return
        assert op.document is not None and op.query is not None
        # strawberry's validate_document adds its own rules (@oneOf inputs, Maybe).
        errors = validate_document(self.schema, op.document, self.rules)
        if errors:
            raise Refused(*errors)
        self.cache.put(op.query, op.document)
