"""/healthz says the process lives; /readyz says whether it can answer
queries now. A busy store is neither: overload is not an outage."""

from __future__ import annotations

import dataclasses
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from core.config import Settings
from core.store import Store, connect
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
        }
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
