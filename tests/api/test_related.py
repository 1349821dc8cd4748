"""Related stories, the mobile query, and the cost of nesting (no N+1)."""

from core.document import article_id

MOBILE = """
query Story($id: ID!) {
  article(id: $id) {
    title excerpt publishedDateTime webUrl
    provider { name domain }
    images { url width height isCached }
    related {
      title webUrl publishedDateTime
      provider { name domain }
      images { url width height }
      article { id title related { title } }
    }
  }
}
"""


def with_related(store):
    return store.articles.find_one({"published": True, "related.1": {"$exists": True}})


def test_mobile_query_returns_a_story_and_its_related_stories(gql, loaded):
    doc = with_related(loaded)
    story = gql(MOBILE, {"id": doc["_id"]})["article"]
    assert story["title"] == doc["title"]
    assert [r["title"] for r in story["related"]] == [r["title"] for r in doc["related"]]
    for related, stored_related in zip(story["related"], doc["related"], strict=True):
        assert related["provider"]["domain"] == stored_related["provider"]["domain"]
        assert len(related["images"]) == len(stored_related.get("images", []))
        target = loaded.articles.find_one({"_id": article_id(stored_related["webUrl"])})
        if target is None or not target["published"]:
            assert related["article"] is None
        else:
            assert related["article"]["id"] == target["_id"]
            assert [r["title"] for r in related["article"]["related"]] == [
                r["title"] for r in target.get("related", [])
            ]
    assert any(r["article"] for r in story["related"])  # the samples link to each other


def test_store_round_trips_do_not_grow_with_the_list(gql, round_trips):
    query = """query($n: Int) { articles(first: $n) { nodes {
        title provider { name articleCount } topics { name articleCount }
        related { title provider { domain } article { title provider { articleCount } } } } } }"""
    costs = {}
    for n in (1, 4, 11):
        round_trips.clear()
        gql(query, {"n": n})
        costs[n] = len(round_trips)
    # At most one query per kind of lookup per nesting level: the list, the
    # provider and topic counts of its items, the batched related articles, and
    # the provider counts of those (none when the loader has them cached).
    assert max(costs.values()) <= 5, costs
    assert costs[11] <= costs[4], costs


def test_only_selected_fields_are_fetched(gql, loaded, monkeypatch):
    from api.data.gateway import Gateway

    projections = []
    original = Gateway.find

    async def spy(self, collection, query, projection=None, *args, **kwargs):
        projections.append(dict(projection or {}))
        return await original(self, collection, query, projection, *args, **kwargs)

    monkeypatch.setattr(Gateway, "find", spy)
    gql("{ articles(first: 2) { edges { node { title } } nodes { webUrl } } }")
    assert projections == [{"publishedDateTime": 1, "title": 1, "webUrl": 1}]


def test_related_story_fields_come_from_the_citing_article(gql, loaded):
    # A related story's title is what the citing article says, even where the
    # stored article is titled differently.
    doc = with_related(loaded)
    data = gql(MOBILE, {"id": doc["_id"]})["article"]["related"]
    assert data[0]["title"] == doc["related"][0]["title"]


def test_a_single_lookup_asks_by_id_equality(gql, loaded, monkeypatch):
    from api.data.gateway import Gateway

    queries = []
    original = Gateway.find

    async def spy(self, collection, query, *args, **kwargs):
        queries.append(query)
        return await original(self, collection, query, *args, **kwargs)

    monkeypatch.setattr(Gateway, "find", spy)
    doc = with_related(loaded)
    gql(
        "query($id: ID) { article(id: $id) { title related { article { id } } } }",
        {"id": doc["_id"]},
    )
    assert queries[0] == {"_id": doc["_id"]}  # visibility is checked on the result
    assert set(queries[1]["_id"]["$in"]) == {article_id(r["webUrl"]) for r in doc["related"]}
