"""A real Uvicorn server on loopback, as users run it."""

import os
import subprocess
import sys
import time

import httpx2 as httpx
import pytest

from tests.api.test_related import MOBILE
from tests.articles import EXAMPLES
from tests.wire import free_port


@pytest.fixture
def live_url(engine, settings, request):
    port = free_port()
    env = {**os.environ, "MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    command = [
        sys.executable,
        "-m",
        "newsgraph",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if engine == "embedded":
        command += ["--load", str(EXAMPLES)]  # its own process, so it loads its own copy
    else:
        request.getfixturevalue("loaded")
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not become healthy in 20s")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def test_mobile_query_over_real_http(live_url):
    with httpx.Client(base_url=live_url, timeout=5) as client:
        first = client.post(
            "/graphql",
            json={"query": '{ articles(first: 1, filter: {topic: "Energy"}) { nodes { id } } }'},
        )
        story_id = first.json()["data"]["articles"]["nodes"][0]["id"]
        response = client.post("/graphql", json={"query": MOBILE, "variables": {"id": story_id}})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        story = response.json()["data"]["article"]
        assert story["related"] and story["provider"]["domain"]
        get = client.get("/graphql", params={"query": "{ topics { totalCount } }"})
        assert get.json() == {"data": {"topics": {"totalCount": 10}}}
        page = client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
