"""``related(first, filter)`` against a plain-Python model of the same rules,
on both engines; ``stored`` shares the batched lookup ``article`` uses."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.document import article_id
from tests.api.fixtures import ADMIN_TOKEN

FILTERS = [
    {},
    {"providerDomain": "HealthDesk.example"},
    {"excludeProviderDomain": "healthdesk.example"},
    {"type": "article"},
    {"minQuality": 50},
    {"publishedAfter": "2025-01-01T00:00:00Z"},
    {"publishedBefore": "2025-06-01T00:00:00Z"},
    {"hasImages": True},
    {"hasImages": False},
    {"stored": True},
    {"stored": False},
    {"stored": True, "hasImages": False, "minQuality": 10},
]


def model(loaded, doc, flt, first, admin):
    """The rule, written plainly."""

    def visible(story):
        target = loaded.articles.find_one({"_id": article_id(story["webUrl"])})
        return target is not None and (admin or target.get("published") is True)

    def when(text):
        return datetime.fromisoformat(text).replace(tzinfo=None)

    out = []
    for s in doc.get("related") or []:
        domain = (s.get("provider") or {}).get("domain")
        moment = s.get("publishedDateTime")
        keep = (
            ("providerDomain" not in flt or domain == flt["providerDomain"].lower())
            and ("excludeProviderDomain" not in flt or domain != flt["excludeProviderDomain"])
            and ("type" not in flt or s.get("type") == flt["type"])
            and ("minQuality" not in flt or (s.get("quality") or -1) >= flt["minQuality"])
            and ("publishedAfter" not in flt or (moment and moment >= when(flt["publishedAfter"])))
            and ("publishedBefore" not in flt or (moment and moment < when(flt["publishedBefore"])))
            and ("hasImages" not in flt or bool(s.get("images")) is flt["hasImages"])
            and ("stored" not in flt or visible(s) is flt["stored"])
        )
        if keep:
            out.append(s["webUrl"])
    return out if first is None else out[:first]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: ",".join(f) or "none")
@pytest.mark.parametrize("first", [None, 1, 0])
@pytest.mark.parametrize("token", [None, ADMIN_TOKEN], ids=["anyone", "admin"])
def test_related_filter_agrees_with_the_model(gql, loaded, flt, first, token):
    query = (
        "query($f: RelatedFilter, $n: Int) { articles(first: 100) { nodes { id"
        " related(first: $n, filter: $f) { webUrl } } } }"
    )
    nodes = gql(query, {"f": flt, "n": first}, token=token)["articles"]["nodes"]
    docs = {d["_id"]: d for d in loaded.articles.find()}
    assert any(doc.get("related") for doc in docs.values())
    for node in nodes:
        got = [s["webUrl"] for s in node["related"]]
        assert got == model(loaded, docs[node["id"]], flt, first, token is not None), flt


def test_stored_shares_the_lookup_that_article_uses(gql, round_trips):
    query = (
        "{ articles(first: 100) { nodes { related(filter: {stored: true}) {"
        " title article { id title } } } } }"
    )
    data = gql(query)
    stories = [s for n in data["articles"]["nodes"] for s in n["related"]]
    assert stories and all(s["article"] is not None for s in stories)
    assert len(round_trips) == 2  # the list, then one batch for every story


def test_first_is_checked(gql):
    for first, message in ((101, "first may be at most 100"), (-1, "first must be zero or more")):
        query = f"{{ articles(first: 1) {{ nodes {{ related(first: {first}) {{ title }} }} }} }}"
        assert message in gql.error(query)
