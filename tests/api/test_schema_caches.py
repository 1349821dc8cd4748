"""A repeated query is parsed and validated once, not on every request; a
query that fails either is not kept."""

import uuid

import pytest
import strawberry.schema.schema as strawberry_schema

import api.operation.documents as documents


@pytest.fixture
def calls(monkeypatch):
    """The pipeline's calls of graphql-core's parse (api.operation.documents)
    and validate (through strawberry's validate_document), by name."""
    made: list[str] = []
    for module, name in ((documents, "parse"), (strawberry_schema, "validate")):
        original = getattr(module, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            made.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
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
