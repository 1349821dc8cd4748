"""Facts stated once stay stated once: what each field's resolver does is
declared on the field (api.schema.facts), what a client may filter on in
core.document, and the schema agrees with both."""

from __future__ import annotations

from graphql import GraphQLObjectType

from api.operation.schema import build_schema
from api.schema.facts import Kind, answered_by
from api.schema.filters import ArticleFilter
from api.schema.related import RelatedFilter
from core.document import ARTICLE, ARTICLE_FILTERS, PRIVATE_FIELDS, RELATED_FILTERS
from core.indexes import ARTICLES, DEFAULT_ORDER, INDEXES

SCHEMA = build_schema()
TYPES = {
    name: type_
    for name, type_ in SCHEMA._schema.type_map.items()
    if isinstance(type_, GraphQLObjectType) and not name.startswith("__")
}


def input_fields(input_type: type) -> set[str]:
    definition = input_type.__strawberry_definition__  # type: ignore[attr-defined]
    return {SCHEMA.config.name_converter.get_graphql_name(f) for f in definition.fields}


def test_every_field_with_a_resolver_says_how_it_is_answered() -> None:
    """A resolver the planner, the cost analysis and the projection know
    nothing of would be priced as free and never planned: each declares."""
    undeclared = []
    for name, type_ in TYPES.items():
        for field_name, field in type_.fields.items():
            own = field.extensions["strawberry-definition"]
            if own.base_resolver is not None and answered_by(field) is None:
                undeclared.append(f"{name}.{field_name}")
    assert undeclared == []


def test_the_filters_inputs_are_the_declared_filters() -> None:
    assert input_fields(ArticleFilter) == {f.argument for f in ARTICLE_FILTERS}
    # `stored` asks the store: the API's own, beside the declared ones.
    assert input_fields(RelatedFilter) == {f.argument for f in RELATED_FILTERS} | {"stored"}


def test_every_indexed_filter_has_its_index() -> None:
    names = {m.document["name"]: m.document["key"] for m in INDEXES[ARTICLES]}
    for f in ARTICLE_FILTERS:
        if f.index:
            assert list(names[f.index].items()) == [(f.path, 1), *DEFAULT_ORDER]


def test_every_stored_article_field_is_served_or_private() -> None:
    served = set(TYPES["Article"].fields)
    for name in ARTICLE.fields:
        assert (name in served) != (name in PRIVATE_FIELDS), name


def test_plain_fields_are_read_and_only_they() -> None:
    """A field without a resolver reads its document key; none declares a
    kind it does not have."""
    for type_ in TYPES.values():
        for field in type_.fields.values():
            own = field.extensions["strawberry-definition"]
            declared = answered_by(field)
            if own.base_resolver is None:
                assert declared is None or declared.kind in (None, Kind.READ)
