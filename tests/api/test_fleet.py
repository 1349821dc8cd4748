"""Several processes serving one store: ``serve --workers N``, and what the
fleet shares through the store (persisted queries, each client's budget).

Each test starts real ``newsgraph serve`` processes on loopback ports sharing
one store: a database on the wire server (FerretDB in CI), or the embedded
engine's files in one folder."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pymongo
import pytest

from testing.live import running_server
from testing.ports import free_port
from testing.wire import WireServer
from tests.api.test_connections import closed_within, hold
from tests.waiting import eventually

WORKER = re.compile(r'newsgraph_worker\{pid="(\d+)"\}')


@pytest.fixture(params=["embedded", pytest.param("wire", marks=pytest.mark.wire)])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of servers sharing a fresh database, on either engine."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "embedded":
        yield {"MONGODB_URI": "", "NEWSGRAPH_DATA_DIR": str(tmp_path), "NEWSGRAPH_DB": name}
        return
    wire_server: WireServer = request.getfixturevalue("wire_server")
    yield {"MONGODB_URI": wire_server.uri, "NEWSGRAPH_DB": name}
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        wire_server.uri, serverSelectionTimeoutMS=2000
    )
    client.drop_database(name)
    client.close()


def worker_of(url: str) -> str:
    """Which worker answers a new connection (its pid, from /metrics)."""
    with httpx.Client(timeout=5) as client:  # a connection of its own
        found = WORKER.search(client.get(f"{url}/metrics").text)
    assert found, "/metrics names no worker"
    return found.group(1)


def workers_answering(url: str, want: int, tries: int = 200) -> set[str]:
    """The workers seen answering new connections, until ``want`` have (or
    ``tries`` connections were made: the kernel picks which worker accepts)."""
    seen: set[str] = set()
    for _ in range(tries):
        seen.add(worker_of(url))
        if len(seen) >= want:
            break
    return seen


def test_two_workers_both_answer_and_one_that_dies_is_replaced(shared_db):
    probes = free_port()
    env = {**shared_db, "NEWSGRAPH_HEADER_TIMEOUT_S": "1"}
    with running_server(env, "--workers", "2", "--health-port", str(probes)) as (url, pid):
        first = workers_answering(url, 2)
        assert len(first) == 2, f"only {first} answered 200 new connections"
        assert str(pid) not in first  # the supervisor serves nothing itself
        # The probes answer for the fleet, from the process of their own.
        health = httpx.get(f"http://127.0.0.1:{probes}/readyz", timeout=5).json()
        assert health["status"] == "ready"
        query = {"query": "{ articles(first: 1) { totalCount } }"}
        answer = httpx.post(f"{url}/graphql", json=query, timeout=10).json()
        assert answer["data"] == {"articles": {"totalCount": 0}}
        # Each worker's connection guard holds: headers that never end are cut off
        # (whichever workers accept these).
        held = hold(url, 4, b"GET /graphql HTTP/1.1\r\nHost: x\r\n")
        try:
            assert closed_within(held, 3.5) == 4  # 1 s, not the 5 s idle timeout
        finally:
            for sock in held:
                sock.close()
        gone = min(first)
        os.kill(int(gone), signal.SIGKILL)

        def replaced() -> bool:
            now = workers_answering(url, 2, tries=50)
            return len(now) == 2 and gone not in now

        eventually(replaced, 20, "the supervisor to start a worker in place of the killed one")


def test_workers_refuse_a_throwaway_store():
    from click.testing import CliRunner

    from newsgraph.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--memory", "--port", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output


QUERY = "query Latest { articles(first: 2) { nodes { title } } }"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()
BY_HASH = {"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": DIGEST}})}


def test_a_hash_registered_through_one_server_is_found_by_another(shared_db):
    with running_server(shared_db) as (one, _), running_server(shared_db) as (two, _):
        missing = httpx.get(f"{two}/graphql", params=BY_HASH, timeout=10).json()
        assert missing["errors"][0]["message"] == "PersistedQueryNotFound"
        register = {"query": QUERY, "extensions": json.loads(BY_HASH["extensions"])}
        assert "errors" not in httpx.post(f"{one}/graphql", json=register, timeout=10).json()
        found = httpx.get(f"{two}/graphql", params=BY_HASH, timeout=10).json()
        assert "errors" not in found and found["data"]["articles"] == {"nodes": []}


def test_not_shared_between_servers_when_switched_off(shared_db):
    apart = {**shared_db, "NEWSGRAPH_PERSISTED_QUERIES_SHARED": "false"}
    with running_server(apart) as (one, _), running_server(apart) as (two, _):
        register = {"query": QUERY, "extensions": json.loads(BY_HASH["extensions"])}
        assert "errors" not in httpx.post(f"{one}/graphql", json=register, timeout=10).json()
        missing = httpx.get(f"{two}/graphql", params=BY_HASH, timeout=10).json()
        assert missing["errors"][0]["message"] == "PersistedQueryNotFound"


def test_a_clients_budget_spent_through_one_server_is_spent_for_the_other(shared_db):
    tight = {
        **shared_db,
        "NEWSGRAPH_BUDGETS": "store",
        "NEWSGRAPH_ANONYMOUS_BURST": "400",
        "NEWSGRAPH_ANONYMOUS_POINTS_PER_S": "1",
    }
    front = {"query": "{ articles(first: 5) { totalCount nodes { id title } } }"}
    with running_server(tight) as (one, _), running_server(tight) as (two, _):
        for _ in range(100):
            if httpx.post(f"{one}/graphql", json=front, timeout=10).status_code == 429:
                break
        else:
            pytest.fail("100 front pages did not spend a budget of 400 points")
        refused = httpx.post(f"{two}/graphql", json=front, timeout=10)
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
