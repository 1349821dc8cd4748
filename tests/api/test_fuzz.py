"""Schemathesis generates queries from the schema: none may cause a 5xx or an
unhandled exception (which the API would report as "internal error")."""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from api.app import create_app

EXAMPLES = int(os.environ.get("NEWSGRAPH_FUZZ_EXAMPLES", "100"))

schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.datetimes().map(lambda d: d.isoformat() + "Z"),
        st.text(max_size=30),
    ).map(nodes.String),
)


def test_generated_queries_never_break_the_server(loaded, api_settings):
    schema = schemathesis.graphql.from_asgi("/graphql", create_app(api_settings, loaded))
    operations = [result.ok() for result in schema.get_all_operations()]
    # article, articles, node, nodes, provider, providers, topic, topics
    assert len(operations) == 8
    seen = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call()
            assert response.status_code < 500, response.text
            body = response.json()
            messages = [e.get("message") for e in body.get("errors") or []]
            assert "internal error" not in messages, (case.body, body)
            seen.append(bool(body.get("data")))

        check()
    assert len(seen) >= len(operations) * min(EXAMPLES, 10)
    assert any(seen)  # some generated queries got data, not only errors
