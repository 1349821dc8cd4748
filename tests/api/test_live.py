"""A real Uvicorn server on loopback, as users run it."""

import httpx2 as httpx

from tests.api.test_related import MOBILE


def test_mobile_query_over_real_http(live_server):
    url, _ = live_server
    with httpx.Client(base_url=url, timeout=5) as client:
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
        assert get.json()["data"] == {"topics": {"totalCount": 10}} and "errors" not in get.json()
        page = client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
