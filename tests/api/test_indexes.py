"""Every query the API sends is backed by an index the store ensures."""

import pytest

from api.data.gateway import Gateway
from core.indexes import INDEXES
from tests.api.fixtures import ADMIN_TOKEN
from tests.api.test_articles import FILTERS

ORDERS = ["PUBLISHED_DESC", "PUBLISHED_ASC", "QUALITY_DESC", "HEAT_DESC"]


@pytest.fixture
def sent(monkeypatch):
    queries = []
    original = Gateway.find

    async def spy(self, collection, query, projection=None, sort=None, limit=0):
        queries.append((collection, query, sort))
        return await original(self, collection, query, projection, sort, limit)

    monkeypatch.setattr(Gateway, "find", spy)
    return queries


def constrained(query: dict) -> set[str]:
    """Fields a query narrows on, through $and (not through $or/$nor: a
    keyset clause narrows, but the index must come from the rest)."""
    fields = set()
    for key, value in query.items():
        if key == "$and":
            for part in value:
                fields |= constrained(part)
        elif not key.startswith("$"):
            fields.add(key)
    return fields


def backing_index(collection: str, query: dict, sort) -> str | None:
    """An index that leads with a field the query narrows on, or, for a query
    that narrows only on ``published``, the ``published_*`` index of its sort."""
    fields = constrained(query)
    sort_key = sort[0][0] if sort else None
    for model in INDEXES[collection]:
        keys = list(model.document["key"])
        if keys[0] in fields - {"published"}:
            return model.document["name"]
        if keys[0] == "published" and "published" in fields and keys[1] == sort_key:
            return model.document["name"]
    return None


@pytest.mark.parametrize("token", [None, ADMIN_TOKEN])
def test_every_filter_and_order_uses_an_index(gql, sent, token):
    for flt in FILTERS:
        for order in ORDERS:
            args = f"filter: {{{flt}}}, orderBy: {order}, first: 2"
            query = f"{{ articles({args}) {{ nodes {{ id }} }} }}"
            gql(query, token=token)
    for order in ORDERS:
        gql(f"{{ articles(orderBy: {order}) {{ nodes {{ id }} }} }}", token=token)
    gql(
        '{ articles(filter: {search: "clinic"}, orderBy: RELEVANCE) { nodes { id } } }', token=token
    )
    gql("{ providers { nodes { domain } } topics { nodes { name } } }", token=token)
    assert len(sent) > len(FILTERS) * len(ORDERS)
    unbacked = [(c, q, s) for c, q, s in sent if backing_index(c, q, s) is None]
    assert not unbacked, unbacked


def test_mongodb_plans_use_indexes(gql, sent, loaded):
    """Ask the store's planner: a real MongoDB's, or the embedded engine's
    (which, running strict in the tests, refuses an unindexed query anyway)."""
    if not loaded.embedded and "ferretdbVersion" in loaded.db.client.server_info():
        pytest.skip(
            "FerretDB's SQLite backend does not report index use in explain(); "
            "the static check above covers it"
        )
    gql('{ articles(filter: {topic: "Energy"}) { nodes { id } } }')
    gql("{ articles(orderBy: QUALITY_DESC) { nodes { id } } }")
    for collection, query, sort in sent:
        plan = loaded.db[collection].find(query).sort(sort).explain()["queryPlanner"]
        if loaded.embedded:
            assert plan["winningPlan"] != "COLLSCAN", query
            assert plan["winningPlan"]["sorted"], (query, plan["winningPlan"])
        else:
            assert "IXSCAN" in str(plan["winningPlan"]), (query, plan["winningPlan"])
