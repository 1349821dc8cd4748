"""One run of a plan: the request's context, its arguments, and what the store
answered, by the field that asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, located_error

from api.execution.plan.nodes import Failure, PlanField
from api.schema.context import Context
from api.schema.pagination import Connection
from core.document import Doc, article_id

#: URLs whose ids are kept across requests: the same related stories recur in
#: request after request (a popular article's, the front page's), and
#: ``article_id`` (URL parsing, then a hash) was 7% of the mobile query's time.
ARTICLE_IDS_KEPT = 8192
#: Longest URL whose id is kept: a stored URL may be 10,000 characters long,
#: and 8,192 of those would be 80 MB. Up to this length an entry is at most
#: about 600 bytes (the URL, the id, the cache's node), so all of them take
#: under 5 MB; real article URLs are far shorter, and longer ones are hashed
#: each time (tests/api/test_cache_memory.py).
ARTICLE_ID_URL_MAX = 256

#: ``article_id`` for a ``str`` URL (the only kind it answers for: anything
#: else raises as it always did, uncached).
_cached_article_id = lru_cache(maxsize=ARTICLE_IDS_KEPT)(article_id)


@dataclass(slots=True)
class State:
    """What one run of a plan has found so far (in slots: shaping reads and
    counts on it once per object of the answer)."""

    ctx: Context
    #: Each field's arguments, as its resolver would take them, checked.
    args: dict[PlanField, Any] = field(default_factory=dict)
    #: Looked-up documents (articles, count rows, providers, topics) by key.
    found: dict[PlanField, dict[Any, Doc | None]] = field(default_factory=dict)
    #: Pages by the parent's key (``None`` at the root).
    pages: dict[PlanField, dict[Any, Connection[Any]]] = field(default_factory=dict)
    #: ``totalCount`` of each page, by the page object's id.
    totals: dict[int, int] = field(default_factory=dict)
    errors: list[GraphQLError] = field(default_factory=list)
    #: How many of ``errors`` shaping added (the rest: root arguments refused).
    failures: int = 0
    #: JSON objects shaped so far (the answer's, when no error nulled any).
    objects: int = 0
    #: Where the objects with cache keys are named, if anywhere (``api.schema.caching``).
    cache_keys: set[tuple[str, str]] | None = field(init=False)

    def __post_init__(self) -> None:
        keys = self.ctx.keys
        self.cache_keys = keys.objects if keys is not None else None

    @property
    def admin(self) -> bool:
        return self.ctx.admin

    def article_id(self, web_url: str) -> str:
        """``core.document.article_id``, computed once per URL across requests
        (each is asked when fetching and again when shaping)."""
        if type(web_url) is str and len(web_url) <= ARTICLE_ID_URL_MAX:
            return _cached_article_id(web_url)
        return article_id(web_url)  # raises as an uncached call would, if not a str

    def fail(self, failure: Failure) -> None:
        """A field error absorbed by a nullable field: reported as execution
        reports it (``located_error`` of what was raised, at its path)."""
        self.failures += 1
        path: list[str | int] = []
        at = failure.path
        while at is not None:  # nested (parent, key) pairs, innermost first
            at, key = at
            path.append(key)
        self.errors.append(located_error(failure.raw, failure.nodes, path[::-1]))
