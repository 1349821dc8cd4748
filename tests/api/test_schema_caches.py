"""A repeated query is parsed and validated once, not on every request; a
query that fails either is not kept."""

import uuid

import pytest
import strawberry.schema.schema as strawberry_schema


@pytest.fixture
def calls(monkeypatch):
    """Strawberry's calls of graphql-core's parse and validate, by name."""
    made: list[str] = []
    for name in ("parse", "validate"):
        original = getattr(strawberry_schema, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            made.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(strawberry_schema, name, counting)
    return made


def test_a_repeated_query_is_parsed_and_validated_once(gql, calls):
    query = f"{{ q{uuid.uuid4().hex}: articles(first: 1) {{ totalCount }} }}"  # never seen
    for _ in range(3):
        gql(query)
    assert calls == ["parse", "validate"]


def test_an_invalid_query_is_parsed_and_validated_every_time(gql, calls):
    query = f"{{ q{uuid.uuid4().hex}: nope }}"
    for _ in range(3):
        assert "Cannot query field 'nope'" in gql.error(query)
    assert calls == ["parse", "validate"] * 3
