"""The one declaration of what is private names fields the document has."""

from __future__ import annotations

from core.document import ARTICLE, PRIVATE_FIELDS


def test_private_fields_are_fields_of_the_article_shape() -> None:
    assert PRIVATE_FIELDS
    assert ARTICLE.fields.keys() >= PRIVATE_FIELDS
