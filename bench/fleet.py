"""What running as a fleet costs and gains, measured on loopback: the
``fleet`` scenario of ``python -m bench run`` (once a run, on the smallest
size's database), and alone:

    python -m bench fleet [--engine wire|embedded] [--corpus DIR] [--requests 400]
    python -m bench.fleet [--corpus DIR] [--requests 400]     (the same, wire)

Alone, it uses ``MONGODB_URI`` if set, else a throwaway FerretDB as the tests
find it (or the embedded engine's files), loads ``--corpus`` (default:
examples/articles), and reports, as rows of the benchmark's table:

- ``fleet_rss_worker``: ``serve --workers 2``, the larger worker's RSS (MiB)
  after a warm-up of ``--requests`` mixed queries on new connections (so both
  workers serve some), held to the single server's bound (``rss_server``);
- ``fleet_apq_shared`` and ``fleet_apq_per_worker``: automatic persisted
  queries over those two workers, as an Apollo client sends them (the hash; on
  PersistedQueryNotFound the query with its hash), with the registrations
  shared in the store and per worker (NEWSGRAPH_PERSISTED_QUERIES_SHARED):
  the ratio is the hash-only hits over the most possible (every request but
  each document's first), so 1.0 when a document registered on one worker is
  found on the other;
- ``fleet_budgets_store``: the median of a request with each client's budget in
  the store (NEWSGRAPH_BUDGETS=store) over the same with budgets per worker,
  one server each, the same cheap query sent ``--requests`` times (GET) on one
  connection;
- ``fleet_take_store``: one draw from a bucket in the store through the
  gateway (its thread hop and round trip included), over one in memory;
- ``fleet_take_new`` and ``fleet_take_flood``: a new client's first draw
  (its bucket inserted), below NEWSGRAPH_BUDGETS_STORED_MAX and past it (on
  the overflow bucket: what each request of a flood of new identities costs),
  over a known client's draw in the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

from bench.queries import FACETS, FRONT_PAGE, SEARCH
from bench.report import Row, render
from testing.live import running_server
from testing.wire import find_wire_server

ROOT = Path(__file__).resolve().parents[1]
CHEAP = "{ topics(first: 3) { nodes { name } } }"
#: Distinct documents an app might persist: a few shapes, each with some page sizes.
PERSISTED = [
    f"query Q{n} {{ articles(first: {n}) {{ nodes {{ id title }} }} }}" for n in range(1, 21)
]


@contextmanager
def store() -> Iterator[str]:
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield uri
        return
    server, how = find_wire_server()
    if server is None:
        sys.exit(f"no wire server: {how}")
    try:
        yield server.uri
    finally:
        server.stop()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def workers_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid=,args="], capture_output=True)
    return [
        int(line.split()[0])
        for line in out.stdout.decode().splitlines()
        if "multiprocessing.spawn" in line
    ]


def apollo(url: str, query: str) -> bool:
    """One persisted query as Apollo sends it, on a new connection: True if
    the hash alone was enough (a hit)."""
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    with httpx.Client(timeout=10) as client:
        answer = client.get(f"{url}/graphql", params={"extensions": json.dumps(extensions)})
        errors = answer.json().get("errors") or []
        if not any(e.get("message") == "PersistedQueryNotFound" for e in errors):
            return True
        client.post(f"{url}/graphql", json={"query": query, "extensions": extensions})
        return False


def median_ms(url: str, count: int) -> float:
    times = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            started = time.perf_counter()
            # A GET: a POST's body in a packet of its own meets delayed ACKs
            # on loopback (40 ms), which would hide what is measured.
            answer = client.get(f"{url}/graphql", params={"query": CHEAP})
            times.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
    return statistics.median(times) * 1000


async def take_costs(env: dict[str, str], count: int) -> dict[str, float]:
    """The median time of one draw from a bucket, in microseconds: in this
    worker's memory, and in the store through the gateway (its thread hop
    and round trip included), as the Admit step draws."""
    from api.data.gateway import Gateway
    from api.operation.throttle import MemoryBuckets, StoreBuckets, policies
    from api.schema.context import Identity
    from core.config import Settings
    from core.indexes import BUDGETS
    from core.store import connect

    settings = Settings.from_env({**os.environ, **env})
    tiers = policies(settings)
    gateway = Gateway(connect(settings), settings.store_op_timeout_ms)
    memory, shared = MemoryBuckets(tiers), StoreBuckets(tiers)
    client = Identity("addr:192.0.2.1")
    # One bucket in the store already (this client's): past the bound from the next.
    full = StoreBuckets(tiers, stored_max=1)
    times: dict[str, list[float]] = {
        "MemoryBuckets": [],
        "StoreBuckets": [],
        "new": [],
        "flood": [],
    }
    for n in range(count):
        started = time.perf_counter()
        memory.take(client, 10, time.monotonic())
        times["MemoryBuckets"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await shared.take(gateway, client, 10)
        times["StoreBuckets"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await shared.take(gateway, Identity(f"addr:2001:db8:0:{n:x}::/64"), 10)
        times["new"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await full.take(gateway, Identity(f"addr:2001:db8:1:{n:x}::/64"), 10)
        times["flood"].append(time.perf_counter() - started)
    gateway.store.db[BUDGETS].delete_many({})  # none of these is a client's
    gateway.store.close()
    return {kind: statistics.median(t) * 1e6 for kind, t in times.items()}


def fleet_scenario(env: dict[str, str], size: int, engine: str, requests: int) -> list[Row]:
    """The rows above, for servers over the store ``env`` names (``MONGODB_URI``,
    ``NEWSGRAPH_DB`` holding the articles; the embedded engine's files when
    ``MONGODB_URI`` is empty). Registrations go to databases of their own,
    dropped afterwards."""
    from core.config import Settings
    from core.store import connect

    rows: list[Row] = []
    # A budget no warm-up spends: this measures memory, not refusals.
    roomy = {**env, "NEWSGRAPH_ANONYMOUS_BURST": "100000000"}
    with running_server(roomy, "--workers", "2") as (url, pid):
        mix = [FRONT_PAGE, FACETS, SEARCH]
        for n in range(requests):
            with httpx.Client(timeout=10) as client:
                query = mix[n % len(mix)]
                variables = {"q": "the"} if query is SEARCH else None
                client.post(f"{url}/graphql", json={"query": query, "variables": variables})
        workers = {worker: rss_kib(worker) / 1024 for worker in workers_of(pid)}
        supervisor = rss_kib(pid) / 1024
    rows.append(
        Row(
            "fleet_rss_worker",
            size,
            engine,
            ratio=max(workers.values(), default=0.0),
            extra={"rss_mb": list(workers.values()), "supervisor_rss_mb": supervisor},
        )
    )
    possible = max(1, requests - min(requests, len(PERSISTED)))
    for shared, scenario in (("true", "fleet_apq_shared"), ("false", "fleet_apq_per_worker")):
        apq = {**roomy, "NEWSGRAPH_PERSISTED_QUERIES_SHARED": shared}
        apq["NEWSGRAPH_DB"] = f"fleet_{uuid.uuid4().hex[:8]}"  # no registrations yet
        try:
            with running_server(apq, "--workers", "2") as (url, _):
                hits = sum(apollo(url, PERSISTED[n % len(PERSISTED)]) for n in range(requests))
        finally:
            store = connect(Settings.from_env({**os.environ, **apq}))
            store.db.client.drop_database(apq["NEWSGRAPH_DB"])
            store.close()
        rows.append(
            Row(
                scenario,
                size,
                engine,
                ratio=hits / possible,
                extra={"hits": hits, "requests": requests, "documents": len(PERSISTED)},
            )
        )
    medians = {}
    for budgets in ("worker", "store"):
        with running_server({**roomy, "NEWSGRAPH_BUDGETS": budgets}) as (url, _):
            median_ms(url, min(50, requests))  # warm: documents, plans, connections
            medians[budgets] = median_ms(url, requests)
    rows.append(
        Row(
            "fleet_budgets_store",
            size,
            engine,
            p50_ms=medians["store"],
            limit_p50_ms=medians["worker"],
            extra={"query": "cheap GET, one connection"},
        )
    )
    takes = asyncio.run(take_costs(env, requests))
    rows.append(
        Row(
            "fleet_take_store",
            size,
            engine,
            p50_ms=takes["StoreBuckets"] / 1000,
            limit_p50_ms=takes["MemoryBuckets"] / 1000,
            extra={"store_us": takes["StoreBuckets"], "memory_us": takes["MemoryBuckets"]},
        )
    )
    for kind in ("new", "flood"):
        rows.append(
            Row(
                f"fleet_take_{kind}",
                size,
                engine,
                p50_ms=takes[kind] / 1000,
                limit_p50_ms=takes["StoreBuckets"] / 1000,
            )
        )
    return rows


@contextmanager
def loaded(engine: str, corpus: Path) -> Iterator[dict[str, str]]:
    """The environment of servers over a fresh database holding ``corpus``:
    on the wire server (:func:`store`), or in the embedded engine's files in a
    folder of their own."""
    import tempfile

    with contextlib.ExitStack() as stack:
        env = {"NEWSGRAPH_DB": f"fleet_{uuid.uuid4().hex[:8]}"}
        if engine == "wire":
            env["MONGODB_URI"] = stack.enter_context(store())
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-"))
            env |= {"MONGODB_URI": "", "NEWSGRAPH_DATA_DIR": folder}
        subprocess.run(
            [sys.executable, "-m", "newsgraph", "load", str(corpus)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        try:
            yield env
        finally:
            if engine == "wire":
                from core.config import Settings
                from core.store import connect

                client = connect(Settings.from_env({**os.environ, **env}))
                client.db.client.drop_database(env["NEWSGRAPH_DB"])
                client.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=["wire", "embedded"], default="wire")
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "articles")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--json", type=Path, dest="json_path")


def run_fleet(args: argparse.Namespace) -> list[Row]:
    """``python -m bench fleet``: the scenario alone, on ``--corpus``."""
    from bench.report import write_json

    rows: list[Row] = []
    try:
        with loaded(args.engine, args.corpus) as env:
            size = sum(1 for _ in args.corpus.rglob("*.md"))
            rows = fleet_scenario(env, size, args.engine, args.requests)
    finally:
        render(rows)
        if args.json_path:
            write_json(rows, args.json_path)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    add_arguments(parser)
    run_fleet(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
