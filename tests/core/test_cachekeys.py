"""The cache keys' format and bound (``core.cachekeys``): what the API tags
answers with and the loader's purges name."""

from __future__ import annotations

import random
import string

from core.cachekeys import (
    ALL,
    ARTICLE,
    MAX_KEY,
    PROVIDER,
    TOPIC,
    article_purge,
    bounded,
    list_key,
    object_key,
    row_purge,
    type_of,
    unnamed_key,
)


def test_keys_are_printable_ascii_without_separators_whatever_the_id():
    rng = random.Random(7)
    alphabet = string.printable + "éü—中文\u200b,; \t"
    for _ in range(500):
        ident = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400)))
        key = object_key(TOPIC, ident)
        assert key.isascii() and key.isprintable(), key
        assert " " not in key and "," not in key, key
        assert len(key) <= MAX_KEY
        assert type_of(key) == TOPIC


def test_readable_ids_stay_readable_and_long_ones_are_hashed():
    assert object_key(ARTICLE, "0123456789abcdef01234567") == "Article:0123456789abcdef01234567"
    assert object_key(TOPIC, "Public Health") == "Topic:Public%20Health"
    assert object_key(PROVIDER, "news.example") == "Provider:news.example"
    long_a, long_b = "x" * 300, "x" * 299 + "y"
    assert object_key(TOPIC, long_a).startswith("Topic:#")
    assert object_key(TOPIC, long_a) != object_key(TOPIC, long_b)
    assert object_key(TOPIC, long_a) == object_key(TOPIC, long_a)  # the API's and the loader's
    # A hashed key is never another id's plain one: '#' is always encoded.
    assert object_key(TOPIC, "#" + "0" * 24) == "Topic:%23" + "0" * 24


def test_type_list_unnamed_and_object_keys_never_collide():
    assert list_key(TOPIC) == "Topic" and unnamed_key(TOPIC) == "Topic:*"
    assert object_key(TOPIC, "*") != unnamed_key(TOPIC)  # '*' is encoded in an id
    assert object_key(TOPIC, "") != list_key(TOPIC)


def test_bounded_lists_every_key_when_they_fit():
    objects = [(ARTICLE, "a1"), (ARTICLE, "a2"), (TOPIC, "AI"), (ARTICLE, "a1")]
    assert bounded(objects, [ARTICLE], 2000) == [
        ALL,
        "Article",
        "Article:a1",
        "Article:a2",
        "Topic:AI",
    ]


def test_bounded_holds_its_bound_and_still_reaches_every_object():
    """However many objects, the keys fit the bound, and every object is
    reached: by its own key or its type's unnamed key."""
    rng = random.Random(3)
    for _ in range(200):
        bound = rng.choice([100, 300, 2000, 16_000])
        objects = [
            (rng.choice([ARTICLE, PROVIDER, TOPIC]), "".join(rng.choices("abcdef0123", k=24)))
            for _ in range(rng.randint(0, 2000))
        ]
        keys = bounded(objects, rng.sample([ARTICLE, PROVIDER, TOPIC], rng.randint(0, 3)), bound)
        assert len(" ".join(keys)) <= bound
        assert keys[0] == ALL
        listed = set(keys)
        for type_name, ident in objects:
            assert object_key(type_name, ident) in listed or unnamed_key(type_name) in listed


def test_the_type_that_takes_the_most_room_gives_way_first():
    articles = [(ARTICLE, f"{i:024x}") for i in range(10)]
    topics = [(TOPIC, f"topic number {i}") for i in range(60)]
    keys = bounded(articles + topics, [], 600)
    assert unnamed_key(TOPIC) in keys and unnamed_key(ARTICLE) not in keys
    assert all(object_key(*a) in keys for a in articles)


def test_what_an_article_write_purges():
    key = object_key(ARTICLE, "a1")
    assert article_purge("a1", before=False, after=False, relisted=True) == []
    edited = article_purge("a1", before=True, after=True, relisted=False)
    assert set(edited) == {key, unnamed_key(ARTICLE)}
    moved = article_purge("a1", before=True, after=True, relisted=True)
    assert set(moved) == {key, unnamed_key(ARTICLE), list_key(ARTICLE)}
    for before, after in ((False, True), (True, False)):  # appears, or goes
        changed = article_purge("a1", before=before, after=after, relisted=False)
        assert list_key(ARTICLE) in changed
    assert set(row_purge(TOPIC, "AI")) == {"Topic:AI", "Topic:*", "Topic"}
