"""What running as a fleet costs and gains, measured on loopback:

    python -m bench.fleet [--corpus DIR] [--requests 400]

Starts a throwaway wire server (``MONGODB_URI`` if set, else FerretDB as the
tests find it), loads ``--corpus`` (default: examples/articles), and reports:

- ``serve --workers 2``: each worker's RSS after a warm-up of ``--requests``
  mixed queries on new connections (so both workers serve some);
- automatic persisted queries over those two workers, as an Apollo client
  sends them (the hash; on PersistedQueryNotFound the query with its hash),
  with the registrations per worker (NEWSGRAPH_PERSISTED_QUERIES_SHARED=false)
  and shared in the store: the hit rate of hash-only requests;
- the cost of a request with each client's budget per worker and in the store
  (NEWSGRAPH_BUDGETS), one server each, the same cheap query sent
  ``--requests`` times (GET) on one connection: the median, and its ratio to the
  per-worker one measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def take_costs(uri: str, db: str, count: int) -> dict[str, float]:
    """The median time of one draw from a bucket, in microseconds: in this
    worker's memory, and in the store through the gateway (its thread hop
    and round trip included), as the Admit step draws."""
    from api.data.gateway import Gateway
    from api.operation.throttle import MemoryBuckets, StoreBuckets, policies
    from api.schema.context import Identity
    from core.config import Settings
    from core.store import connect

    settings = Settings(mongodb_uri=uri, db_name=db)
    tiers = policies(settings)
    gateway = Gateway(connect(settings), settings.store_op_timeout_ms)
    memory, shared = MemoryBuckets(tiers), StoreBuckets(tiers)
    client = Identity("addr:192.0.2.1")
    times: dict[str, list[float]] = {"MemoryBuckets": [], "StoreBuckets": []}
    for _ in range(count):
        started = time.perf_counter()
        memory.take(client, 10, time.monotonic())
        times["MemoryBuckets"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await shared.take(gateway, client, 10)
        times["StoreBuckets"].append(time.perf_counter() - started)
    gateway.store.close()
    return {kind: statistics.median(t) * 1e6 for kind, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "articles")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args(argv)
    with store() as uri:
        env = {"MONGODB_URI": uri, "NEWSGRAPH_DB": f"fleet_{uuid.uuid4().hex[:8]}"}
        subprocess.run(
            [sys.executable, "-m", "newsgraph", "load", str(args.corpus)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        # A budget no warm-up spends: this measures memory, not refusals.
        roomy = {**env, "NEWSGRAPH_ANONYMOUS_BURST": "100000000"}
        with running_server(roomy, "--workers", "2") as (url, pid):
            mix = [FRONT_PAGE, FACETS, SEARCH]
            for n in range(args.requests):
                with httpx.Client(timeout=10) as client:
                    query = mix[n % len(mix)]
                    variables = {"q": "the"} if query is SEARCH else None
                    client.post(f"{url}/graphql", json={"query": query, "variables": variables})
            workers = workers_of(pid)
            print(f"serve --workers 2, after {args.requests} requests:")
            print(f"  supervisor {pid}: RSS {rss_kib(pid) / 1024:.0f} MiB")
            for worker in workers:
                print(f"  worker {worker}: RSS {rss_kib(worker) / 1024:.0f} MiB")
        for shared in ("false", "true"):
            apq = {**roomy, "NEWSGRAPH_PERSISTED_QUERIES_SHARED": shared}
            apq["NEWSGRAPH_DB"] = f"fleet_{uuid.uuid4().hex[:8]}"  # no registrations yet
            with running_server(apq, "--workers", "2") as (url, _):
                hits = sum(apollo(url, PERSISTED[n % len(PERSISTED)]) for n in range(args.requests))
            print(
                f"APQ over 2 workers, shared={shared}: {hits}/{args.requests} hash-only hits "
                f"({hits / args.requests:.1%}); {args.requests - hits} misses for "
                f"{len(PERSISTED)} documents"
            )
        medians = {}
        for budgets in ("worker", "store"):
            with running_server({**roomy, "NEWSGRAPH_BUDGETS": budgets}) as (url, _):
                median_ms(url, 50)  # warm: documents, plans, connections
                medians[budgets] = median_ms(url, args.requests)
        floor = medians["worker"]
        for budgets, ms in medians.items():
            print(f"budgets={budgets}: median {ms:.2f} ms a request ({ms / floor:.2f}x)")
        takes = asyncio.run(take_costs(uri, env["NEWSGRAPH_DB"], args.requests))
        floor = takes["MemoryBuckets"]
        for kind, us in takes.items():
            print(f"{kind}.take: median {us:.1f} us ({us / floor:.0f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
