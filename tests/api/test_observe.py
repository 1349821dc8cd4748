"""Operations: Prometheus metrics at /metrics and one JSON log line per request."""

import dataclasses
import logging
import logging.config

import orjson
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.app import create_app
from api.telemetry.logs import log_config

QUERY = "query Front { articles(first: 2) { totalCount nodes { title } } }"


def samples(client: TestClient) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def requests(metrics: dict, route: str, method: str, status: str) -> float:
    key = (
        "newsgraph_http_requests_total",
        (("method", method), ("route", route), ("status", status)),
    )
    return metrics.get(key, 0.0)


def test_metrics_count_requests_latency_errors_and_store_round_trips(client, round_trips):
    before = samples(client)
    for _ in range(3):
        assert client.post("/graphql", json={"query": QUERY}).status_code == 200
    client.post("/graphql", json={"query": "{ articles(first: 1000) { totalCount } }"})
    client.post("/graphql", json={"query": "{ nope }"})
    client.get("/wp-admin/login.php")
    after = samples(client)

    assert (
        requests(after, "/graphql", "POST", "200") - requests(before, "/graphql", "POST", "200")
        == 5
    )
    assert requests(after, "other", "GET", "404") == 1  # unknown paths share one label
    latency = ("newsgraph_http_request_duration_seconds_count", (("route", "/graphql"),))
    assert after[latency] - before.get(latency, 0) == 5
    errors = {
        dict(labels)["code"]: value
        for (name, labels), value in after.items()
        if name == "newsgraph_graphql_errors_total"
    }
    assert errors == {"BAD_REQUEST": 1, "GRAPHQL_VALIDATION_FAILED": 1}
    trips = ("newsgraph_store_round_trips_total", ())
    assert after[trips] - before.get(trips, 0) == len(round_trips) > 0


def test_each_request_is_one_json_log_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="newsgraph.access"):
        client.post("/graphql", json={"query": QUERY, "operationName": "Front"})
        client.post("/graphql", json={"query": '{ article(id: "x") { nope } }'})
        client.get("/metrics")  # scrapes are not logged
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "newsgraph.access"]
    assert len(lines) == 2
    ok, bad = lines
    assert ok["method"] == "POST" and ok["path"] == "/graphql" and ok["status"] == 200
    assert ok["operation"] == "Front" and ok["errors"] is None
    assert ok["store_calls"] >= 1 and ok["ms"] > 0 and ok["bytes"] > 0
    assert bad["errors"] == ["GRAPHQL_VALIDATION_FAILED"] and bad["store_calls"] == 0


def test_metrics_and_access_log_can_be_switched_off(loaded, api_settings, caplog):
    settings = dataclasses.replace(api_settings, metrics=False, access_log=False)
    with TestClient(create_app(settings, loaded)) as client, caplog.at_level(logging.INFO):
        assert client.get("/metrics").status_code == 404
        client.post("/graphql", json={"query": QUERY})
    assert not [r for r in caplog.records if r.name == "newsgraph.access"]


def test_serve_logs_access_lines_as_bare_json_on_stdout(capsys):
    logging.config.dictConfig(log_config("info"))
    try:
        logging.getLogger("newsgraph.access").info('{"status": 200}')
        logging.getLogger("newsgraph.api").warning("store unavailable")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        for name in ("newsgraph", "newsgraph.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
    out, err = capsys.readouterr()
    assert out == '{"status": 200}\n'
    assert "WARNING newsgraph.api: store unavailable" in err


def test_an_app_that_fails_before_answering_answers_500_and_counts_it(
    loaded, api_settings, monkeypatch, caplog
):
    """The outermost layer answers 500 for an app that failed before its
    answer started (Starlette's own last resort, which it replaces), counts and
    logs it, and lets the error go on up for the server to log; once the answer
    has started, nothing more is sent."""
    import asyncio

    import pytest
    from starlette.responses import Response

    from api.http.view import GraphQLApp

    class StartedThenFailed(Response):
        async def __call__(self, scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("failed after the start")

    async def failing(self, request):
        if request.headers.get("x-fail") == "late":
            return StartedThenFailed()
        raise RuntimeError("failed before the start")

    monkeypatch.setattr(GraphQLApp, "quick_lane", failing)
    app = create_app(api_settings, loaded)

    def call(fail: str) -> list[dict]:
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"{}"}

        headers = [(b"content-type", b"application/json"), (b"x-fail", fail.encode())]
        scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": headers}
        with pytest.raises(RuntimeError, match="failed"):
            asyncio.run(app({**scope, "query_string": b"", "client": None}, receive, send))
        return sent

    with caplog.at_level(logging.INFO, logger="newsgraph.access"):
        early, late = call("early"), call("late")
    assert early[0]["status"] == 500
    assert (b"content-type", b"text/plain; charset=utf-8") in early[0]["headers"]
    assert [m.get("body") for m in early[1:]] == [b"Internal Server Error"]
    assert [m["status"] for m in late] == [200]
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "newsgraph.access"]
    assert [(line["status"], line["bytes"]) for line in lines] == [(500, 0), (200, 0)]
    with TestClient(app) as client:
        counted = samples(client)
    assert requests(counted, "/graphql", "POST", "500") == 1
    assert requests(counted, "/graphql", "POST", "200") == 1
