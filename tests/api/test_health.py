"""/healthz says the process lives; /readyz says whether it can answer
queries now. A busy store is neither: overload is not an outage."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
import yaml
from starlette.testclient import TestClient

from api.app import create_app
from api.http import health
from api.operation.schema import Schema
from core.config import Settings
from core.store import Store, connect
from testing.live import running_server
from testing.ports import free_port
from tests.api import test_recovery
from tests.api.slow import SLOW, SlowStore, codes, post, serving
from tests.api.test_recovery import quick_settings
from tests.waiting import eventually

#: The same fixture: a wire server of its own, that a test may stop and start.
private_server = test_recovery.private_server

ROOT = Path(__file__).resolve().parents[2]


def timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=5)
    return response, time.monotonic() - started


def test_health_answers_at_once_while_every_store_slot_is_busy(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    SlowStore(monkeypatch, seconds=30)
    settings = dataclasses.replace(api_settings, request_timeout_ms=2000, store_concurrency=2)
    with serving(create_app(settings, loaded)) as url, ThreadPoolExecutor(2) as pool:
        stalled = [pool.submit(post, url, SLOW) for _ in range(2)]
        busy = 0 if loaded.embedded else 2  # the embedded engine answers inline, in no thread
        eventually(
            lambda: httpx.get(f"{url}/readyz").json()["store_calls_in_flight"] == busy,
            3,
            "the slow requests to take the slots",
        )
        live, live_s = timed_get(f"{url}/healthz")
        ready, ready_s = timed_get(f"{url}/readyz")
        # At once: the old ping queued behind the busy store calls and gave up
        # after 1.5 s with 503 "store down" (the slow calls here last 2 s).
        assert live.status_code == 200 and live_s < 1
        assert ready.status_code == 200 and ready_s < 1
        assert ready.json() == {
            "status": "ready",
            "store": "up",
            "store_calls_in_flight": busy,
            "store_call_slots": 2,
            "event_loop_lag_ms": ready.json()["event_loop_lag_ms"],
        }
        assert isinstance(ready.json()["event_loop_lag_ms"], int)
        assert all(codes(f.result(5)[0]) == ["TIMEOUT"] for f in stalled)


@pytest.mark.wire
def test_readyz_follows_the_store_down_and_up_while_healthz_stays_200(private_server):
    settings = quick_settings(private_server, "readiness")
    with TestClient(create_app(settings, connect(settings))) as client:
        eventually(lambda: client.get("/readyz").status_code == 200, 5, "ready")
        private_server.stop()
        eventually(lambda: client.get("/readyz").status_code == 503, 5, "not ready")
        assert client.get("/readyz").json()["store"] == "down"
        assert client.get("/healthz").json() == {"status": "ok"}
        private_server.start()
        eventually(lambda: client.get("/readyz").status_code == 200, 10, "ready again")
        assert client.get("/healthz").status_code == 200


def test_liveness_never_asks_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.data.gateway import Gateway

    def no_store(*args: object, **kwargs: object) -> None:
        raise AssertionError("/healthz asked the store")

    monkeypatch.setattr(Gateway, "run", no_store)
    monkeypatch.setattr(Gateway, "ready", no_store)
    dead = Settings(mongodb_uri="mongodb://127.0.0.1:9/", store_timeout_ms=200)
    with TestClient(create_app(dead, connect(dead))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}


def test_the_image_healthcheck_probes_liveness_not_readiness() -> None:
    """Docker restarts an unhealthy container (Swarm) or holds back its
    dependants (Compose): a store outage must do neither to the API."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    (check,) = re.findall(r"HEALTHCHECK.*?CMD (.*)", dockerfile, flags=re.S)
    assert "/healthz" in check and "/readyz" not in check
    assert "/readyz" not in (ROOT / "docker-compose.yml").read_text()


def test_the_image_healthcheck_asks_the_probe_port_the_api_serves() -> None:
    """On the probes' own port, which a busy API still answers (see below);
    the API in the image and in Compose serves probes there."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    (port,) = re.findall(r"HEALTHCHECK.*?127\.0\.0\.1:(\d+)/healthz", dockerfile, flags=re.S)
    (command,) = re.findall(r"^CMD (.*)$", dockerfile, flags=re.M)
    assert f'"--health-port", "{port}"' in command
    api = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    assert api["command"][api["command"].index("--health-port") + 1] == port
    assert not any(p.endswith(f":{port}") for p in api["ports"])  # for the orchestrator only


def test_liveness_and_readiness_by_the_state_of_the_event_loop_and_the_store() -> None:
    now = 100 * 10**9
    ago = lambda s: now - int((s + health.PERIOD_S) * 1e9)  # noqa: E731
    state = health.Snapshot(beat_ns=ago(0), store_up=True, in_flight=3, slots=16)
    assert health.liveness(state, now) == (200, {"status": "ok"})
    assert health.readiness(state, now) == (
        200,
        {
            "status": "ready",
            "store": "up",
            "store_calls_in_flight": 3,
            "store_call_slots": 16,
            "event_loop_lag_ms": 0,
        },
    )
    down = dataclasses.replace(state, store_up=False)
    assert health.liveness(down, now)[0] == 200  # an outage is no reason to restart
    assert health.readiness(down, now)[1]["status"] == "unavailable"
    busy = dataclasses.replace(state, beat_ns=ago(health.OVERLOADED_S + 0.5))
    assert health.liveness(busy, now)[0] == 200  # nor is an attack
    assert health.readiness(busy, now)[0] == 503
    assert health.readiness(busy, now)[1]["status"] == "overloaded"
    assert health.readiness(busy, now)[1]["event_loop_lag_ms"] == 1500
    stuck = dataclasses.replace(state, beat_ns=ago(health.STALLED_S + 1))
    assert health.liveness(stuck, now) == (503, {"status": "stalled", "event_loop_lag_ms": 31000})
    starting = dataclasses.replace(state, beat_ns=0)
    assert health.liveness(starting, now) == (200, {"status": "starting"})
    assert health.readiness(starting, now)[1]["status"] == "starting"


def test_the_probe_server_answers_the_two_probes_only() -> None:
    record = health.Record()
    record.write(health.Snapshot(time.monotonic_ns(), True, 0, 16))
    with socket.socket() as sock:
        probes = health.ProbeServer(sock, record, watched=-1)
        ok = probes.answer(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b'{"status":"ok"}')
        assert b'"status":"ready"' in probes.answer(b"GET /readyz?x=1 HTTP/1.1\r\n\r\n")
        head = probes.answer(b"HEAD /healthz HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        assert probes.answer(b"GET /graphql HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
        assert probes.answer(b"POST /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")


def probe(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)


def test_the_probe_port_answers_while_the_event_loop_is_held(
    loaded: Store, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One operation holds the event loop (as a heavy query's CPU does): the
    # API's own /healthz waits behind it; the probe process does not.
    held_s = health.OVERLOADED_S + 2

    async def hold(*args: object, **kwargs: object) -> None:
        time.sleep(held_s)  # on the event loop, which nothing else then runs
        raise AssertionError("held")

    monkeypatch.setattr(Schema, "execute", hold)  # what both of the view's lanes call
    app = create_app(api_settings, loaded)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        probes = health.ProbeProcess(listening)
    try:
        app.state.health.record = probes.record
        with serving(app) as url, ThreadPoolExecutor(1) as pool:
            assert probe(probes.port, "/readyz").json()["status"] == "ready"
            held = pool.submit(post, url, "{ __typename }")
            eventually(
                lambda: probe(probes.port, "/readyz").json()["status"] == "overloaded",
                held_s,
                "readiness to say the server is overloaded",
            )
            assert not held.done()  # the loop is still held, and yet:
            assert probe(probes.port, "/healthz").json() == {"status": "ok"}
            with pytest.raises(httpx.TimeoutException):
                httpx.get(f"{url}/healthz", timeout=0.2)  # the API's own waits its turn
            held.result(10)
            eventually(lambda: probe(probes.port, "/readyz").status_code == 200, 2, "ready")
    finally:
        probes.stop()
    assert probes.process.returncode == 0


def test_serve_health_port_answers_and_ends_with_the_server(tmp_path: Path) -> None:
    port = free_port()
    env = {"MONGODB_URI": ""}
    with running_server(env, "--health-port", str(port)) as (url, pid):
        assert probe(port, "/healthz").json() == {"status": "ok"}
        ready = probe(port, "/readyz").json()
        assert ready["status"] == "ready" and ready == httpx.get(f"{url}/readyz").json() | {
            "event_loop_lag_ms": ready["event_loop_lag_ms"]
        }
        os.kill(pid, signal.SIGKILL)  # however the server ends, its probes end with it

        def refused() -> bool:
            try:
                probe(port, "/healthz")
            except httpx.TransportError:
                return True
            return False

        eventually(refused, 5, "the probe process to end with the server")


def test_the_load_part_is_there_only_for_a_load_and_never_fails_readiness() -> None:
    assert health.load_part({"status": "ready"}, None) == {"status": "ready"}
    assert health.load_part({}, lambda: {"pid": 7, "running": True}) == {
        "load": {"pid": 7, "running": True}
    }

    def broken() -> dict[str, object]:
        raise RuntimeError("a bug")

    body = health.load_part({"status": "ready"}, broken)
    assert body == {"status": "ready", "load": {"pid": os.getpid(), "error": "cannot tell"}}


def test_the_load_board_hands_the_load_part_to_another_process():
    import multiprocessing

    board = health.LoadBoard.create()
    try:
        assert board.read() is None  # nothing to tell of yet: no part
        body: dict[str, object] = {"status": "ready"}
        assert health.load_part(body, board.read) == {"status": "ready"}
        board.write({"pid": 42, "running": True, "phase": "loading", "files_done": 1000})
        board.write({"pid": 42, "running": False, "last": None})  # shorter than before
        assert board.read() == {"pid": 42, "running": False, "last": None}
        # Pickled to a spawned process (as to a worker of serve --workers), it
        # is mapped there: that process reads what this one wrote.
        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(1) as pool:
            assert pool.apply(health.LoadBoard.read, (board,)) == board.read()
        board.write({"pid": 42, "last": {"aborted": "x" * health.LoadBoard.SIZE}})
        assert board.read() == {"pid": 42, "error": "cannot tell"}  # never a torn part
    finally:
        board.close()
