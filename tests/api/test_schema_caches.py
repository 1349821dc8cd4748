"""A repeated query is parsed and validated once, not on every request."""

import uuid

import strawberry.schema.schema as strawberry_schema


def test_a_repeated_query_is_validated_once(gql, monkeypatch):
    calls = []
    original = strawberry_schema.validate

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    query = f"{{ q{uuid.uuid4().hex}: articles(first: 1) {{ totalCount }} }}"  # never seen
    for _ in range(3):
        gql(query)
    assert len(calls) == 1
