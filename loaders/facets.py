"""Provider and topic counts, kept in their own collections.

Rebuilt after every load that changed an article, so the API serves counts
from a small indexed collection instead of counting articles on each request.
Uses only ``$match``/``$unwind``/``$group`` with ``$sum``: stages that MongoDB
and FerretDB both run. ``count`` covers published articles, ``countAll`` all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pymongo import DeleteMany, ReplaceOne

from newsgraph.store import Store, unavailable_as_error

_PUBLISHED = {"published": {"$ne": False}}


def rebuild_facets(store: Store) -> None:
    with unavailable_as_error(store.where):
        _replace_all(store, "providers", _provider_counts(store))
        _replace_all(store, "topics", _topic_counts(store))


def _provider_counts(store: Store) -> dict[str, dict[str, Any]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    rows = store.articles.aggregate(
        [
            {"$match": {"provider.domain": {"$exists": True}}},
            {
                "$group": {
                    "_id": {"d": "$provider.domain", "n": "$provider.name", "p": "$published"},
                    "c": {"$sum": 1},
                }
            },
        ]
    )
    for row in rows:
        key, n = row["_id"], row["c"]
        counts[key["d"]]["countAll"] += n
        if key.get("p") is not False:
            counts[key["d"]]["count"] += n
        if key.get("n"):
            names[key["d"]][key["n"]] += n
    return {
        domain: {
            # The name most of the domain's articles use.
            "name": names[domain].most_common(1)[0][0] if names[domain] else domain,
            "count": c["count"],
            "countAll": c["countAll"],
        }
        for domain, c in counts.items()
    }


def _topic_counts(store: Store) -> dict[str, dict[str, Any]]:
    # Filter before $unwind: FerretDB v1's $unwind keeps only the unwound field,
    # so `published` cannot be read after it.
    topics: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "countAll": 0})
    for field, match in (("countAll", {}), ("count", _PUBLISHED)):
        rows = store.articles.aggregate(
            [
                {"$match": {"topics.0": {"$exists": True}, **match}},
                {"$unwind": "$topics"},
                {"$group": {"_id": "$topics", "c": {"$sum": 1}}},
            ]
        )
        for row in rows:
            topics[row["_id"]][field] = row["c"]
    return dict(topics)


def _replace_all(store: Store, name: str, rows: dict[str, dict[str, Any]]) -> None:
    ops: list[Any] = [ReplaceOne({"_id": key}, row, upsert=True) for key, row in rows.items()]
    ops.append(DeleteMany({"_id": {"$nin": list(rows)}}))
    store.db[name].bulk_write(ops, ordered=False)
