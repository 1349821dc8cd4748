"""The document shape's derived fields: ids and search words."""

from __future__ import annotations

import pytest

from core.document import article_id, fold, search_words


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Mars Rover LANDS", "mars rover lands"),  # ASCII: the quick path
        ("Café CRÈME", "cafe creme"),
        ("Straße", "strasse"),  # casefold, not lower
        ("Ｆｕｌｌ width", "full width"),  # NFKD compatibility forms
        ("", ""),
    ],
)
def test_fold_ignores_case_accents_and_width(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_search_words_are_distinct_folded_words_in_order() -> None:
    assert search_words("Café opens; the CAFE, cafés and 2 more") == [
        "cafe", "opens", "the", "cafes", "and", "2", "more",
    ]  # fmt: skip


def test_article_id_is_stable_across_url_spellings() -> None:
    assert article_id("https://Example.com/a") == article_id("https://example.com/a")
    assert len(article_id("https://example.com/a")) == 24
