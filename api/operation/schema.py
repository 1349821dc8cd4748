"""The schema every transport calls, with its pipeline.

Strawberry stays the schema (types, SDL, the validation rules it adds) and the
transports' front door (its HTTP view, its WebSocket protocol handler, which
call ``Schema.execute`` and ``Schema.stream``). Both of those go through
newsgraph's one pipeline (``api.operation.pipeline``), whose steps are listed
once, in order, in :func:`steps`; strawberry is given no extensions.

Objects are served straight from stored documents, so the default resolver
reads a dict's key (and falls back to an attribute for the connection types).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.types.graphql import OperationType

from api.execution.compiled import Plans
from api.operation.allowed import ChooseOperation, NameOperation, SubscriptionsOverWebSocket
from api.operation.answered import AnswerCache
from api.operation.budget import Budget, CostCache, Price, Report
from api.operation.caching import CacheHints
from api.operation.documents import DocumentCache, FindDocument
from api.operation.incremental import Deliver
from api.operation.masking import MaskErrors
from api.operation.persisted import (
    NoPersistedQueries,
    PersistedQueries,
    RegisterPersisted,
    ResolvePersisted,
    SharedRegistry,
)
from api.operation.pipeline import Outcome, Pipeline, Step, Stream
from api.operation.request import Request
from api.operation.run import Execute
from api.operation.selections import LimitSelections
from api.operation.throttle import Admit, Limits, ReportBudget, Throttle, ThrottlePayload
from api.operation.trusted import TrustDocuments, TrustedDocuments
from api.operation.validation import Validate, validation_rules
from api.schema.query import Query
from api.schema.resolvers import read_field
from api.schema.scalars import DateTime
from api.schema.subscription import Subscription
from core.config import Settings


@dataclass(frozen=True)
class Caches:
    """What the steps keep between requests, one of each per schema (so per
    app and worker), shared by all requests and each bounded by estimated
    bytes as well as by count (api.bounded): whatever texts clients send, a
    worker's query caches hold at most ``query_cache_bytes`` (documents) +
    a quarter of it (prices) + ``plan_cache_bytes`` + ``persisted_queries_max_bytes``."""

    #: Parsed, validated documents by query text.
    documents: DocumentCache
    #: Automatic persisted queries by hash.
    persisted: PersistedQueries
    #: Prices by query text and the variables they read.
    costs: CostCache
    #: Plans by query text (None: compiled execution is off).
    plans: Plans | None
    #: Answers by operation, until the store changes (None: none kept).
    answers: AnswerCache | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Caches:
        persisted = (
            PersistedQueries(
                settings.persisted_queries_max,
                settings.persisted_queries_max_bytes,
                SharedRegistry(
                    settings.persisted_queries_days, settings.persisted_queries_stored_max
                )
                if settings.persisted_queries_shared
                else None,
            )
            if settings.persisted_queries
            else NoPersistedQueries()
        )
        plans = Plans(max_bytes=settings.plan_cache_bytes) if settings.compiled else None
        costs = CostCache(max_bytes=settings.query_cache_bytes // 4)
        answers = (
            AnswerCache(
                settings.answer_cache_bytes,
                settings.answer_cache_check_ms / 1000,
                settings.cache_max_age,
            )
            if settings.answer_cache_bytes > 0
            else None
        )
        return cls(DocumentCache(settings.query_cache_bytes), persisted, costs, plans, answers)

    async def close(self) -> None:
        """The app stops: what the caches still do in the background stops."""
        if self.answers is not None:
            await self.answers.close()


def steps(
    schema: strawberry.Schema,
    settings: Settings,
    caches: Caches,
    budget: Budget,
    limits: Limits,
    trusted: TrustedDocuments,
) -> list[Step]:
    """The steps every operation takes before it is answered, in order."""
    rules = validation_rules(settings.max_query_depth, settings.max_aliases, settings.introspection)
    return [
        # First: an unknown key, too many at once, or an empty budget costs nothing more.
        Admit(limits),
        NameOperation(),
        # Before anything is parsed: an untrusted document costs a look-up.
        TrustDocuments(trusted),
        ResolvePersisted(caches.persisted),
        # Cached; or refused by a count before the lexer runs, or as before; or parsed.
        FindDocument(caches.documents, settings.max_tokens),
        ChooseOperation(),
        # Before validation: bounds what validation may cost.
        LimitSelections(settings.max_selections, settings.max_field_repeats),
        Validate(schema._schema, rules, caches.documents),
        RegisterPersisted(caches.persisted),
        SubscriptionsOverWebSocket(),
        # Only a valid operation is priced (and maybe refused).
        Price(schema._schema, budget, caches.costs),
        # The price drawn from the client's budget.
        Throttle(limits),
        # After pricing: a deferred query costs what it would undeferred.
        Deliver(),
    ]


class Schema(strawberry.Schema):
    """Strawberry's schema, whose operations all run through :attr:`pipeline`."""

    pipeline: Pipeline
    caches: Caches
    #: Each client's budget (``api.operation.throttle``).
    limits: Limits

    @property
    def documents(self) -> DocumentCache:
        return self.caches.documents

    @property
    def persisted(self) -> PersistedQueries:
        return self.caches.persisted

    async def execute(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> Outcome:
        request = _request(
            query,
            variable_values,
            context_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        return await self.pipeline.execute(request)

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> Stream:
        request = _request(
            query,
            variable_values,
            context_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        return await self.pipeline.stream(request)

    async def subscribe(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> Stream:
        return await self.stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            (OperationType.SUBSCRIPTION,),
        )


#: What a transport that says nothing allows.
ALL_OPERATIONS = frozenset(OperationType)


def _request(
    query: str | None,
    variables: dict[str, Any] | None,
    context: Any,
    operation_name: str | None,
    allowed: Iterable[OperationType] | None,
    extensions: dict[str, Any] | None,
) -> Request:
    return Request(
        query,
        variables,
        operation_name,
        extensions,
        context,
        # Tested for membership by the steps: a one-shot iterator is read once.
        ALL_OPERATIONS if allowed is None else _as_set(allowed),
    )


def _as_set(allowed: Iterable[OperationType]) -> frozenset[OperationType]:
    return allowed if isinstance(allowed, frozenset) else frozenset(allowed)


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or Settings()
    schema = Schema(
        query=Query,
        subscription=Subscription,
        config=StrawberryConfig(
            default_resolver=read_field,
            scalar_map={datetime: DateTime},
            # @defer and @stream, delivered as multipart/mixed (api/operation/incremental.py).
            enable_experimental_incremental_execution=True,
        ),
    )
    caches = Caches.for_settings(settings)
    budget = Budget(settings.max_query_objects, settings.max_query_store_calls)
    limits = Limits.for_settings(settings)
    schema.caches = caches
    schema.limits = limits
    schema.pipeline = Pipeline(
        steps(schema, settings, caches, budget, limits, TrustedDocuments.for_settings(settings)),
        Execute(schema, caches.plans, caches.answers),
        # CacheHints first: an answer shared caches may keep carries no client's budget.
        [MaskErrors(), Report(budget), CacheHints(schema._schema), ReportBudget(limits)],
        each=[ThrottlePayload(limits)],
    )
    return schema


def sdl() -> str:
    """The schema in GraphQL's schema definition language."""
    return build_schema().as_str() + "\n"
