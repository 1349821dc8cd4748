"""Provider and topic counts, kept in their own collections.

Rebuilt after every load that changed an article, so the API serves counts
from a small indexed collection instead of counting articles on each request.
One projected scan counted here rather than aggregations in the store: it needs
no aggregation operators (FerretDB v1 lacks several), and on FerretDB, which
scans for every aggregation, it is one scan instead of three.
``count`` covers published articles, ``countAll`` all of them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pymongo import DeleteMany, ReplaceOne

from newsgraph.store import Store, unavailable_as_error

_FIELDS = {"_id": 0, "provider.domain": 1, "provider.name": 1, "topics": 1, "published": 1}


def rebuild_facets(store: Store) -> None:
    providers: dict[str, Counter[str]] = defaultdict(Counter)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    topics: dict[str, Counter[str]] = defaultdict(Counter)
    with unavailable_as_error(store.where):
        for doc in store.articles.find({}, _FIELDS, batch_size=10_000):
            counts = ("count", "countAll") if doc.get("published") is not False else ("countAll",)
            provider = doc.get("provider") or {}
            domain = provider.get("domain")
            if domain:
                providers[domain].update(counts)
                if provider.get("name"):
                    names[domain][provider["name"]] += 1
            for topic in doc.get("topics") or ():
                topics[topic].update(counts)
        _replace_all(
            store,
            "providers",
            {
                # The name most of the domain's articles use.
                domain: {
                    "name": names[domain].most_common(1)[0][0] if names[domain] else domain,
                    "count": c["count"],
                    "countAll": c["countAll"],
                }
                for domain, c in providers.items()
            },
        )
        _replace_all(
            store,
            "topics",
            {
                topic: {"count": c["count"], "countAll": c["countAll"]}
                for topic, c in topics.items()
            },
        )


def _replace_all(store: Store, name: str, rows: dict[str, dict[str, Any]]) -> None:
    ops: list[Any] = [ReplaceOne({"_id": key}, row, upsert=True) for key, row in rows.items()]
    ops.append(DeleteMany({"_id": {"$nin": list(rows)}}))
    store.db[name].bulk_write(ops, ordered=False)
