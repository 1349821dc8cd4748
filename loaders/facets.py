"""Provider and topic counts, kept in their own collections.

Rebuilt after every load that changed an article, so the API serves counts
from a small indexed collection instead of counting articles on each request.
Counted here from the loader's snapshot of the store (``loaders.stored``, read
once per loader with the fields counted) rather than by aggregations in the
store: no aggregation operators are needed (FerretDB v1 lacks several), and no
scan beyond the one the loader makes anyway (on FerretDB every aggregation is a
full scan, slower than inserting the same documents). The loader rebuilds under
its lease (``loaders.lease``) from a snapshot it re-reads if another loader wrote
since, so a rebuild never drops rows another loader's articles account for.
Which articles each count covers is the facet's rule (``core.indexes.Facet``).

For an operator who doubts the counts (``newsgraph facets``),
:func:`recount_facets` counts them again from the stored articles themselves,
not from a loader's manifest, under the same lease, and says which rows differ
(with ``rebuild``, it replaces them).
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pymongo import DeleteMany, ReplaceOne

from core.config import Settings
from core.indexes import PROVIDERS_FACET, TOPICS_FACET, Facet
from core.store import Store, unavailable_as_error
from loaders.lease import Lease
from loaders.news import announce

#: What one article contributes to the counts:
#: (published, provider domain, provider name, topics).
Facets = tuple[bool, str | None, str | None, tuple[str, ...]]

#: The fields :func:`facets_of` reads, as a projection.
FACET_FIELDS = {"provider.domain": 1, "provider.name": 1, "topics": 1, "published": 1}


def facets_of(doc: dict[str, Any]) -> Facets:
    provider = doc.get("provider") or {}
    # Interned: the loader keeps one of these per stored article, and a corpus
    # has few distinct providers and topics.
    domain, name = provider.get("domain"), provider.get("name")
    return (
        doc.get("published") is not False,
        sys.intern(domain) if isinstance(domain, str) else None,
        sys.intern(name) if isinstance(name, str) else None,
        tuple(sys.intern(t) for t in doc.get("topics") or () if isinstance(t, str)),
    )


def rebuild_facets(
    store: Store, articles: Iterable[Facets], changed: bool = False
) -> list[tuple[str, str]]:
    """Replace the facet collections with the counts of ``articles`` (the
    loader's snapshot of every stored article, so no scan of the store). With
    ``changed``, returns ``(collection, key)`` of each row that clients now
    see otherwise (its count or name, or whether it is there at all: see
    :func:`public_view`), read before the rows are replaced: what the cache
    purge hook names (``loaders.purge``)."""
    counted = count_facets(articles)
    moved: list[tuple[str, str]] = []
    if changed:
        with unavailable_as_error(store.where):
            before = {c: {r["_id"]: r for r in store.db[c].find()} for c in counted}
        for facet in (PROVIDERS_FACET, TOPICS_FACET):
            rows, old = counted[facet.collection], before[facet.collection]
            for key in sorted(rows.keys() | old.keys()):
                if public_view(facet, rows.get(key)) != public_view(facet, old.get(key)):
                    moved.append((facet.collection, key))
    _write(store, counted)
    return moved


def public_view(facet: Facet, row: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What anyone but the admin is served of a row: its count and name, or
    nothing when none of its articles is published (``api.data.facets``)."""
    if row is None or not row.get(facet.count):
        return None
    return (row.get(facet.count), row.get(facet.name) if facet.name else None)


def count_facets(articles: Iterable[Facets]) -> dict[str, dict[str, dict[str, Any]]]:
    """The rows each facet collection should hold for ``articles``, by
    collection and ``_id``."""
    providers: dict[str, Counter[str]] = defaultdict(Counter)
    # Names each domain's articles use: of published ones (served to anyone),
    # and of all (served to the admin).
    names: dict[bool, dict[str, Counter[str]]] = {
        True: defaultdict(Counter),
        False: defaultdict(Counter),
    }
    topics: dict[str, Counter[str]] = defaultdict(Counter)
    for published, domain, name, article_topics in articles:
        if domain:
            providers[domain].update(PROVIDERS_FACET.counted_in(published))
            if name:
                names[False][domain][name] += 1
                if published:
                    names[True][domain][name] += 1
        in_topics = TOPICS_FACET.counted_in(published)
        for topic in article_topics:
            topics[topic].update(in_topics)

    def most_used(public: bool, domain: str) -> str:
        used = names[public][domain]
        return used.most_common(1)[0][0] if used else domain

    return {
        PROVIDERS_FACET.collection: {
            domain: {
                **_names(PROVIDERS_FACET, most_used(True, domain), most_used(False, domain)),
                **_counts(PROVIDERS_FACET, c),
            }
            for domain, c in providers.items()
        },
        TOPICS_FACET.collection: {topic: _counts(TOPICS_FACET, c) for topic, c in topics.items()},
    }


def _write(store: Store, rows: dict[str, dict[str, dict[str, Any]]]) -> None:
    with unavailable_as_error(store.where):
        for collection, facet_rows in rows.items():
            _replace_all(store, collection, facet_rows)
        # Served beside the articles, and rebuilt after them: an API worker
        # that kept answers when the articles changed drops them again.
        announce(store, 0)


def _names(facet: Facet, public: str, everyone: str) -> dict[str, str]:
    """A row's name fields: the name anyone may see, and the admin's."""
    named = ((facet.name, public), (facet.name_all, everyone))
    return {field: value for field, value in named if field}


def _counts(facet: Facet, counted: Counter[str]) -> dict[str, int]:
    """A row's count fields (zero for a count no article added to)."""
    return {field: counted[field] for field in (facet.count, facet.count_all)}


def _replace_all(store: Store, collection: str, rows: dict[str, dict[str, Any]]) -> None:
    ops: list[Any] = [ReplaceOne({"_id": key}, row, upsert=True) for key, row in rows.items()]
    ops.append(DeleteMany({"_id": {"$nin": list(rows)}}))
    store.db[collection].bulk_write(ops, ordered=False)


@dataclass(frozen=True)
class FacetChange:
    """A facet row the stored articles do not count as it is stored."""

    collection: str
    key: str
    #: The row as stored (without ``_id``), or None: no such row.
    stored: dict[str, Any] | None
    #: The row as the articles count it, or None: no article carries the key.
    counted: dict[str, Any] | None


@dataclass
class Recount:
    """What :func:`recount_facets` found."""

    store: str
    #: Stored articles counted.
    articles: int = 0
    #: Rows each facet collection should hold, by collection.
    rows: dict[str, int] = field(default_factory=dict)
    changes: list[FacetChange] = field(default_factory=list)
    #: Whether the rows were replaced by the counted ones.
    rebuilt: bool = False


class RecountStopped(Exception):
    """:func:`recount_facets`'s ``stop`` was set: it ended before replacing
    any row, and let the lease go."""


def recount_facets(
    store: Store,
    settings: Settings,
    rebuild: bool = False,
    stop: threading.Event | None = None,
) -> Recount:
    """Count the provider and topic rows again from every stored article and
    compare them with the stored rows; with ``rebuild``, replace the rows
    that differ.

    Under the loader lease (waiting for a loader that holds it, as another
    loader would), so no load writes between the count and the comparison.
    The lease's record of when the counts were last rebuilt is left alone: it
    also tells the next loader whether a crashed one left its manifest behind
    the articles, which a recount does not repair. Raises ``StoreUnavailable``
    or ``LeaseError`` (``loaders.lease``). Setting ``stop`` (Ctrl-C or SIGTERM
    to ``newsgraph facets``) ends a wait for the lease at once (``LeaseError``)
    and the scan at its next article (:class:`RecountStopped`), with the lease
    let go; once the rows are being replaced, they all are."""
    lease = Lease(store, settings, stop=stop)
    lease.acquire()
    report = Recount(store=store.where)
    try:

        def articles() -> Iterator[Facets]:
            with unavailable_as_error(store.where):
                for doc in store.articles.find({}, FACET_FIELDS):
                    if stop is not None and stop.is_set():
                        raise RecountStopped()
                    report.articles += 1
                    if report.articles % 1000 == 0 and lease.due():
                        lease.renew()  # a long scan keeps the lease
                    yield facets_of(doc)

        counted = count_facets(articles())
        with unavailable_as_error(store.where):
            stored = {
                collection: {row.pop("_id"): row for row in store.db[collection].find()}
                for collection in counted
            }
        for collection, rows in counted.items():
            report.rows[collection] = len(rows)
            before = stored[collection]
            for key in sorted(before.keys() | rows.keys()):
                if before.get(key) != rows.get(key):
                    change = FacetChange(collection, key, before.get(key), rows.get(key))
                    report.changes.append(change)
        if rebuild and report.changes:
            if stop is not None and stop.is_set():
                raise RecountStopped()
            lease.renew()
            with unavailable_as_error(store.where):
                store.ensure_indexes()
            _write(store, counted)
            report.rebuilt = True
    finally:
        lease.release()
    return report
