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


def rebuild_facets(store: Store) -> None:
    with unavailable_as_error(store.where):
        provider_rows = store.articles.aggregate(
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
        providers: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"count": 0, "countAll": 0, "names": Counter()}
        )
        for row in provider_rows:
            key = row["_id"]
            entry = providers[key["d"]]
            _add(entry, row["c"], key.get("p", True))
            if key.get("n"):
                entry["names"][key["n"]] += row["c"]
        _replace_all(
            store,
            "providers",
            {
                domain: {
                    # The name most of the domain's articles use.
                    "name": e["names"].most_common(1)[0][0] if e["names"] else domain,
                    "count": e["count"],
                    "countAll": e["countAll"],
                }
                for domain, e in providers.items()
            },
        )

        topic_rows = store.articles.aggregate(
            [
                {"$match": {"topics.0": {"$exists": True}}},
                {"$unwind": "$topics"},
                {"$group": {"_id": {"t": "$topics", "p": "$published"}, "c": {"$sum": 1}}},
            ]
        )
        topics: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "countAll": 0})
        for row in topic_rows:
            _add(topics[row["_id"]["t"]], row["c"], row["_id"].get("p", True))
        _replace_all(store, "topics", dict(topics))


def _add(entry: dict[str, Any], count: int, published: bool) -> None:
    entry["countAll"] += count
    if published is not False:
        entry["count"] += count


def _replace_all(store: Store, name: str, rows: dict[str, dict[str, Any]]) -> None:
    ops: list[Any] = [ReplaceOne({"_id": key}, row, upsert=True) for key, row in rows.items()]
    ops.append(DeleteMany({"_id": {"$nin": list(rows)}}))
    store.db[name].bulk_write(ops, ordered=False)
