"""Delivery to browsers and mobile clients: gzip and CORS."""

import dataclasses

from starlette.testclient import TestClient

from api.app import create_app

LIST = {"query": "{ articles(first: 20) { nodes { title excerpt webUrl } } }"}


def test_large_responses_are_gzipped_for_clients_that_accept_it(client):
    zipped = client.post("/graphql", json=LIST, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(zipped.content) / 2  # decoded here
    plain = client.post("/graphql", json=LIST, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == zipped.json()
    small = client.post(
        "/graphql",
        json={"query": "{ articles { totalCount } }"},
        headers={"Accept-Encoding": "gzip"},
    )
    assert "content-encoding" not in small.headers


def test_cors_allows_only_the_configured_origins(loaded, api_settings):
    settings = dataclasses.replace(
        api_settings, cors_origins="https://app.example, https://m.example"
    )
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization",
    }
    with TestClient(create_app(settings, loaded)) as client:
        ok = client.options("/graphql", headers={"Origin": "https://m.example", **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://m.example"
        answer = client.post("/graphql", json=LIST, headers={"Origin": "https://app.example"})
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        other = client.post("/graphql", json=LIST, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cross_origin_access_by_default(client):
    answer = client.post("/graphql", json=LIST, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in answer.headers
