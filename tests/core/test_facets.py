"""The facet declarations: what the loader writes is what the API reads and indexes."""

from __future__ import annotations

import pytest

from core.indexes import FACETS, INDEXES, PROVIDERS, TOPICS, Facet


def test_each_facet_collection_is_declared_once() -> None:
    assert [facet.collection for facet in FACETS] == [PROVIDERS, TOPICS]


@pytest.mark.parametrize("facet", FACETS, ids=lambda f: f.collection)
def test_both_counts_of_a_facet_are_indexed_for_listing(facet: Facet) -> None:
    leading = {next(iter(model.document["key"])) for model in INDEXES[facet.collection]}
    assert {facet.count_field(admin=False), facet.count_field(admin=True)} <= leading


@pytest.mark.parametrize("facet", FACETS, ids=lambda f: f.collection)
def test_anyone_sees_published_counts_and_the_admin_all(facet: Facet) -> None:
    anyone, admin = facet.count_field(admin=False), facet.count_field(admin=True)
    assert facet.counted_in(published=True) == (anyone, admin)
    assert facet.counted_in(published=False) == (admin,)


@pytest.mark.parametrize("facet", FACETS, ids=lambda f: f.collection)
def test_a_search_always_matches_the_row_key(facet: Facet) -> None:
    for admin in (False, True):
        assert facet.searchable(admin)[0] == "_id"


@pytest.mark.parametrize("facet", FACETS, ids=lambda f: f.collection)
def test_anyone_is_served_and_searches_only_the_name_from_published_articles(
    facet: Facet,
) -> None:
    assert facet.name_field(admin=False) == facet.name
    assert facet.name_field(admin=True) == facet.name_all
    if facet.name_all:
        assert facet.name_all not in facet.searchable(admin=False)
        assert facet.name_all in facet.searchable(admin=True)
