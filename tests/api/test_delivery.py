"""Delivery to browsers and mobile clients: gzip and CORS."""

import dataclasses

from starlette.testclient import TestClient

from api.app import create_app
from tests.api.fixtures import without_budget

LIST = {"query": "{ articles(first: 20) { nodes { title excerpt webUrl } } }"}


def test_large_responses_are_gzipped_for_clients_that_accept_it(client):
    zipped = client.post("/graphql", json=LIST, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(zipped.content) / 2  # decoded here
    plain = client.post("/graphql", json=LIST, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert without_budget(plain.json()) == without_budget(zipped.json())
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


QUERY = {"query": "{ articles(first: 3) { nodes { title } } }"}


def test_get_answers_carry_an_etag_and_a_repeat_gets_304(client):
    first = client.get("/graphql", params=QUERY)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=60"
    again = client.get("/graphql", params=QUERY, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = client.get(
        "/graphql",
        params={"query": "{ articles(first: 4) { totalCount } }"},
        headers={"If-None-Match": etag},
    )
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_changed_data_changes_the_etag(client, loaded):
    etag = client.get("/graphql", params=QUERY).headers["etag"]
    newest = loaded.articles.find_one({"published": True}, sort=[("publishedDateTime", -1)])
    loaded.articles.update_one({"_id": newest["_id"]}, {"$set": {"title": "Changed"}})
    fresh = client.get("/graphql", params=QUERY, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and "Changed" in fresh.text


def test_admin_and_error_answers_are_never_shared(client):
    from tests.api.fixtures import ADMIN_TOKEN

    admin = client.get("/graphql", params=QUERY, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.headers["cache-control"] == "private, no-store"
    repeat = client.get(
        "/graphql",
        params=QUERY,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "If-None-Match": admin.headers["etag"]},
    )
    assert repeat.status_code == 200
    bad = client.get("/graphql", params={"query": "{ articles(first: 500) { totalCount } }"})
    assert bad.headers["cache-control"] == "private, no-store"
    assert client.post("/graphql", json=QUERY).headers.get("etag") is None  # POST: not cached


def test_a_streamed_get_answer_passes_through_unbuffered():
    """Multipart parts (a deferred query's) go out as they come, with no ETag."""
    import asyncio

    from api.http.caching import CachePolicy, QueryCaching

    sent: list[dict] = []
    second_part_sent = asyncio.Event()

    async def app(scope, receive, send):
        headers = [(b"content-type", b'multipart/mixed; boundary="-"')]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"part 1", "more_body": True})
        # The first part must already be out before the app writes the next.
        assert [m.get("body") for m in sent if m["type"] == "http.response.body"] == [b"part 1"]
        await send({"type": "http.response.body", "body": b"part 2", "more_body": False})
        second_part_sent.set()

    async def capture(message):
        sent.append(message)

    async def nothing():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/graphql", "headers": []}
    asyncio.run(QueryCaching(app, CachePolicy())(scope, nothing, capture))
    assert second_part_sent.is_set()
    assert all(name != b"etag" for name, _ in sent[0]["headers"])


def test_cross_origin_answers_as_starlettes_cors_middleware_with_and_without_origin():
    """api/http/cors.py skips Starlette's machinery for a request with no
    Origin: what it sends must be Starlette's to the byte, whatever ``Vary``
    headers the answer already has (none, one, several, not first)."""
    import asyncio

    from starlette.middleware.cors import CORSMiddleware

    from api.http.cors import CrossOrigin

    answers = [
        [],
        [(b"content-type", b"application/json")],
        [(b"vary", b"Accept-Encoding"), (b"content-length", b"2")],
        [(b"content-length", b"2"), (b"vary", b"Authorization, Accept"), (b"x-a", b"1")],
        [(b"vary", b"Accept"), (b"etag", b'W/"1"'), (b"vary", b"Accept-Encoding"), (b"x", b"")],
    ]
    requests = [
        [],
        [(b"accept", b"*/*")],
        [(b"origin", b"https://app.example")],
        [(b"origin", b"https://evil.example"), (b"accept", b"*/*")],
    ]

    def run(layer: type, origins: list[str], headers: list, answer: list) -> list[dict]:
        sent: list[dict] = []

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": list(answer)})
            await send({"type": "http.response.body", "body": b"{}"})

        async def capture(message):
            sent.append({**message, "headers": list(message.get("headers", []))})

        async def nothing():
            return {"type": "http.request", "body": b""}

        middleware = layer(app, allow_origins=origins, allow_methods=["GET", "POST"], max_age=600)
        for method in ("GET", "POST", "OPTIONS"):
            scope = {"type": "http", "method": method, "path": "/graphql", "headers": headers}
            asyncio.run(middleware(scope, nothing, capture))
        return sent

    for origins in ([], ["https://app.example"], ["*"]):
        for headers in requests:
            for answer in answers:
                ours = run(CrossOrigin, origins, headers, answer)
                assert ours == run(CORSMiddleware, origins, headers, answer), (headers, answer)
    start = run(CrossOrigin, [], [], answers[-1])[0]
    assert start["headers"] == [
        (b"vary", b"Accept, Accept-Encoding, Origin"),
        (b"etag", b'W/"1"'),
        (b"x", b""),
    ]
