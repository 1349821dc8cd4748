"""The queries clients send, as the benchmark and the load test replay them.

Arguments are drawn from the corpus actually served (a real article id, topic,
provider), so every query does real work whatever corpus is loaded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FRONT_PAGE = """{ articles(first: 20) { nodes { id title excerpt publishedDateTime
  provider { name domain } topics { name } images { url width height } } } }"""

MOBILE = """query($id: ID!) { article(id: $id) { title excerpt publishedDateTime webUrl
  provider { name domain } images { url width height isCached }
  related { title excerpt publishedDateTime webUrl provider { name domain }
    images { url width height } article { id title related { title } } } } }"""

FILTERED = """query($topic: String!, $domain: String!, $after: String) {
  articles(filter: {topic: $topic, providerDomain: $domain, minQuality: 30,
    publishedAfter: "2020-01-01T00:00:00Z", publishedBefore: "2030-01-01T00:00:00Z"},
    first: 5, after: $after) {
    pageInfo { hasNextPage endCursor } nodes { id title quality publishedDateTime } } }"""

SEARCH = """query($q: String!) { articles(filter: {search: $q}, first: 20) {
  nodes { id title excerpt } } }"""

FACETS = """{ providers(first: 20) { nodes { name domain articleCount } }
  topics(first: 60) { nodes { name articleCount } } }"""

SAMPLE = """{ articles(first: 100, orderBy: HEAT_DESC) { nodes { id title
  topics { name } provider { domain } related { title } } } }"""


@dataclass
class Corpus:
    """Arguments to draw from, read from the API itself."""

    ids: list[str]
    topics: list[str]
    pairs: list[tuple[str, str]]  # (topic, provider domain) that occur together
    words: list[str]

    @classmethod
    def from_sample(cls, data: dict) -> Corpus:
        nodes = data["articles"]["nodes"]
        with_related = [n["id"] for n in nodes if n["related"]] or [n["id"] for n in nodes]
        pairs = [
            (n["topics"][0]["name"], n["provider"]["domain"])
            for n in nodes
            if n["topics"] and n["provider"]
        ]
        words = [w for n in nodes for w in n["title"].split() if len(w) > 4]
        return cls(with_related, sorted({t for t, _ in pairs}), pairs, words or ["news"])


def mixed(rng: random.Random, corpus: Corpus) -> tuple[str, str, dict]:
    """One request of the mix: (scenario, query, variables)."""
    roll = rng.random()
    if roll < 0.3:
        return "front_page", FRONT_PAGE, {}
    if roll < 0.6:
        return "mobile", MOBILE, {"id": rng.choice(corpus.ids)}
    if roll < 0.8:
        topic, domain = rng.choice(corpus.pairs)
        return "filtered", FILTERED, {"topic": topic, "domain": domain}
    if roll < 0.95:
        return "search", SEARCH, {"q": " ".join(rng.sample(corpus.words, 2))}
    return "facets", FACETS, {}
