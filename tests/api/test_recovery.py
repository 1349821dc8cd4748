"""The store goes away and comes back: clear errors meanwhile, then recovery
with no restart, over the wire against a server these tests stop and start."""

import asyncio
import dataclasses
import signal
import time

import httpx2 as httpx
import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.store import connect
from loaders import load_paths
from testing.wire import find_wire_server
from tests.api.fixtures import GQL
from tests.api.slow import serving
from tests.api.wsclient import Raw
from tests.articles import EXAMPLES
from tests.waiting import eventually

pytestmark = pytest.mark.wire


def wait_until_healthy(client, seconds: float = 15) -> None:
    """The API finds the store again by itself, with no restart."""
    wait_for_readiness(client, 200, seconds)


def wait_for_readiness(client, status: int, seconds: float = 10) -> None:
    """/readyz follows the driver's monitor, which looks every heartbeatFrequencyMS."""
    eventually(lambda: client.get("/readyz").status_code == status, seconds, f"/readyz {status}")


def quick_settings(server, db_name: str, **overrides) -> Settings:
    """Settings that give up on a stopped store within seconds, and whose
    driver checks on it twice a second (its minimum), so /readyz follows quickly."""
    return Settings(
        mongodb_uri=server.uri + "?heartbeatFrequencyMS=500",
        db_name=db_name,
        store_timeout_ms=1000,
        store_op_timeout_ms=3000,
        **overrides,
    )


@pytest.fixture
def private_server(wire_server):
    if not wire_server.controllable:
        pytest.skip("the wire server comes from MONGODB_URI; these tests need one they start")
    server, how = find_wire_server()
    assert server is not None, how
    yield server
    server.stop()


def test_api_reports_the_outage_and_recovers_by_itself(private_server):
    settings = quick_settings(private_server, "recovery")
    store = connect(settings)
    load_paths(store, [EXAMPLES], settings)
    with TestClient(create_app(settings, store)) as client:
        gql = GQL(client)
        assert gql("{ articles { totalCount } }")["articles"]["totalCount"] == 11

        private_server.stop()
        started = time.monotonic()
        body = gql.raw("{ articles { totalCount } }")
        assert body["errors"][0]["extensions"]["code"] == "STORE_UNAVAILABLE"
        assert time.monotonic() - started < 5
        wait_for_readiness(client, 503)
        assert client.get("/healthz").status_code == 200  # alive: a restart would not help

        private_server.start()
        wait_until_healthy(client)
        assert gql("{ articles { totalCount } }")["articles"]["totalCount"] == 11


def test_a_load_interrupted_by_the_store_converges_when_run_again(private_server, tmp_path):
    from tests.articles import web_url, write_article

    for i in range(30):
        write_article(tmp_path, f"{i:02d}.md", webUrl=web_url(f"n{i}"))
    settings = Settings(
        mongodb_uri=private_server.uri, db_name="interrupted", store_timeout_ms=1000, batch_size=5
    )
    store = connect(settings)

    def on_file(path):  # the store dies after the 13th file, mid-batch
        if path.stem == "12":
            private_server.stop()

    report = load_paths(store, [tmp_path], settings, on_file=on_file)
    assert report.aborted and "run the load again" in report.aborted
    assert report.inserted < 30
    private_server.start()
    again = load_paths(connect(settings), [tmp_path], settings)
    assert again.ok and again.inserted + again.unchanged == 30
    docs = list(connect(settings).articles.find({}, {"webUrl": 1, "title": 1, "_source": 1}))
    assert len(docs) == 30 and len({d["webUrl"] for d in docs}) == 30
    assert all(d["title"] == "Tram Line Extension Opens Early" for d in docs)


def test_api_starts_with_the_store_down_and_serves_once_it_is_up(private_server):
    settings = quick_settings(private_server, "late")
    load_paths(connect(settings), [EXAMPLES], settings)
    private_server.stop()
    with TestClient(create_app(settings, connect(settings))) as client:  # starts regardless
        assert client.get("/readyz").status_code == 503
        body = GQL(client).raw("{ articles { totalCount } }")
        assert body["errors"][0]["extensions"]["code"] == "STORE_UNAVAILABLE"
        private_server.start()
        wait_until_healthy(client)
        assert GQL(client)("{ articles { totalCount } }")["articles"]["totalCount"] == 11


def test_a_watch_keeps_changes_seen_during_an_outage_and_applies_them_after(
    private_server, tmp_path
):
    import threading

    from loaders.watch import watch_paths
    from tests.articles import web_url, write_article

    settings = quick_settings(private_server, "watch_outage")
    write_article(tmp_path, "a.md", webUrl=web_url("a"))
    reports = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_paths,
        args=(connect(settings), [tmp_path], settings),
        kwargs={"on_report": reports.append, "stop": stop, "debounce_ms": 100, "retry_s": 1},
        daemon=True,
    )
    watcher.start()
    try:
        eventually(lambda: reports, 15, "the first load", alive=watcher.is_alive)
        time.sleep(0.3)
        private_server.stop()
        write_article(tmp_path, "b.md", webUrl=web_url("b"))
        # The batch failed, and said so.
        eventually(lambda: any(r.aborted for r in reports), 20, "the outage report")
        private_server.start()
        store = connect(settings)
        # Retried without a new change.
        eventually(lambda: store.articles.count_documents({}) == 2, 30, "the retry", poll=0.2)
        assert watcher.is_alive()
    finally:
        stop.set()
        watcher.join(timeout=15)


def test_a_hung_store_gives_every_way_in_a_clear_error_and_recovers(private_server):
    """The store's process stopped (SIGSTOP: its connections stay open and
    nothing answers, unlike a store that is down) is the outage most likely
    to hang a request. Every way in gets its error within the request's
    deadline, and all recover once it runs again. A guard: it passed when
    written (POST 5.0 s TIMEOUT, then every way in 3.1-3.5 s)."""
    query = "{ articles(first: 3) { totalCount nodes { title } } }"
    deferred = "{ articles(first: 3) { nodes { id ... @defer { title } } } }"
    subscription = "subscription { articlePublished { id title } }"
    settings = dataclasses.replace(
        quick_settings(private_server, "hung"), request_timeout_ms=5000, subscription_poll_ms=200
    )
    store = connect(settings)
    load_paths(store, [EXAMPLES], settings)
    # Generous: the deadline, and a machine busy with other tests.
    bound_s = settings.request_timeout_ms / 1000 + 5
    with serving(create_app(settings, store)) as url:

        def ways_in() -> dict[str, tuple[int, str]]:
            answers = {
                "POST": httpx.post(f"{url}/graphql", json={"query": query}, timeout=30),
                "GET": httpx.get(f"{url}/graphql", params={"query": query}, timeout=30),
                "@defer": httpx.post(
                    f"{url}/graphql",
                    json={"query": deferred},
                    headers={"accept": "multipart/mixed"},
                    timeout=30,
                ),
            }
            return {way: (r.status_code, r.text) for way, r in answers.items()}

        async def subscribed_answers() -> list[str]:
            ws = await Raw.connect(url)
            await ws.init()
            await ws.subscribe("1", subscription)
            over_ws = await ws.receive(bound_s)
            await ws.close()
            first = []
            async with httpx.AsyncClient(timeout=bound_s) as client:
                headers = {"accept": "text/event-stream"}
                body = {"query": subscription}
                async with client.stream("POST", f"{url}/graphql", json=body, headers=headers) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data:"):
                            first.append(line)
                            break
            return [orjson.dumps(over_ws["payload"]).decode(), *first]

        assert all(status == 200 and "errors" not in text for status, text in ways_in().values())
        private_server.process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(2):  # the first finds the connections open; the next, the store Unknown
                started = time.monotonic()
                answers = ways_in()
                elapsed = time.monotonic() - started
                assert elapsed < 3 * bound_s, f"{elapsed:.1f} s"
                for way, (status, text) in answers.items():
                    assert status == 200 and ("STORE_UNAVAILABLE" in text or "TIMEOUT" in text), (
                        way,
                        text[:300],
                    )
            started = time.monotonic()
            assert httpx.get(f"{url}/readyz", timeout=bound_s).status_code == 503
            streamed = asyncio.run(asyncio.wait_for(subscribed_answers(), 3 * bound_s))
            assert all("STORE_UNAVAILABLE" in payload for payload in streamed), streamed
            assert len(streamed) == 2 and time.monotonic() - started < 3 * bound_s
        finally:
            private_server.process.send_signal(signal.SIGCONT)
        eventually(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, 15, "ready")
        assert all(status == 200 and "errors" not in text for status, text in ways_in().values())
