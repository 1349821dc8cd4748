"""``python -m bench run``: every scenario at each corpus size, with its limit."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.busy import healthz_busy
from bench.cpu import CLIENTS, cpu_scenario
from bench.fleet import fleet_scenario
from bench.gen import generate
from bench.load import MADE
from bench.loading import embedded_load_growth, loading
from bench.querying import execution_scenario, query_scenarios, run_async
from bench.report import Row, render, write_json
from bench.throughput import throughput
from core.config import Settings
from core.store import Store, connect
from loaders import load_paths
from loaders.pipeline import TRUST_NS
from testing.wire import WireServer, find_wire_server

QUERY_SCENARIOS = ("front_page", "mobile", "filtered", "search", "facets")


def corpus_for(size: int, workdir: Path, seed: int = 1) -> Path:
    """The generated corpus of ``size`` files, made once and reused."""
    folder = workdir / f"corpus-{size}-seed{seed}"
    done = folder / ".complete"
    if not done.exists():
        generate(size, folder, seed)
        # A loader trusts a file's times only once they are older than its
        # timestamp window (loaders.pipeline.TRUST_NS): wait that out, so the
        # reload row measures a steady folder, not files written a moment ago.
        time.sleep(TRUST_NS / 1e9 + 0.1)
        done.write_text("")
    return folder


@dataclass
class CpuOptions:
    """The ``cpu`` scenario's windows (see :func:`bench.cpu.cpu_scenario`)."""

    seconds: float = 3.0
    rounds: int = 3
    clients: int = CLIENTS
    #: Also the servers with tracing on, against their untraced twins.
    tracing: bool = False
    #: Also the servers head-sampled at this ratio, their requests roots.
    tracing_sampler: float | None = None
    #: The queries sent as GET requests (publicly cacheable answers).
    get: bool = False

    def scenario(self, store: Store, settings: Settings, size: int) -> list[Row]:
        """:func:`bench.cpu.cpu_scenario` with these options, each by name."""
        return cpu_scenario(
            store,
            settings,
            size,
            seconds=self.seconds,
            rounds=self.rounds,
            clients=self.clients,
            tracing=self.tracing,
            sampler=self.tracing_sampler,
            get=self.get,
        )


def _store_uri(engine: str) -> tuple[str, WireServer | None]:
    """``MONGODB_URI`` for the engine: empty for the embedded one; for the wire,
    the environment's, else a throwaway server's (returned, to be stopped)."""
    if engine != "wire":
        return "", None
    uri = os.environ.get("MONGODB_URI", "")
    if uri:
        return uri, None
    server, how = find_wire_server()
    if server is None:
        raise SystemExit(f"no wire server: {how}")
    return server.uri, server


def run(
    sizes: list[int],
    engine: str,
    workdir: Path,
    reps: int = 30,
    clients: int = 32,
    seconds: float = 10.0,
    json_path: Path | None = None,
    cpu: CpuOptions | None = None,
    fleet_requests: int = 400,
) -> list[Row]:
    cpu = cpu or CpuOptions()
    uri, server = _store_uri(engine)
    rows: list[Row] = []
    loader_rss: dict[int, float] = {}
    try:
        for size in sizes:
            settings = Settings(
                mongodb_uri=uri,
                db_name=f"bench_{size}",
                store_op_timeout_ms=600_000,
                answer_cache_bytes=0,  # every answer made (bench.load.MADE)
            )
            store = connect(settings)
            store.db.client.drop_database(settings.db_name)
            corpus = corpus_for(size, workdir)
            load_rows, rss = loading(corpus, settings, size, engine)
            rows += load_rows
            if rss is not None:
                loader_rss[size] = rss
            rows += run_async(query_scenarios(store, settings, size, engine, reps))
            rows += run_async(execution_scenario(store, settings, size, engine, reps))
            if size == min(sizes):
                # Once a run: with the store stubbed the server does the same
                # work at every size (a page of 20; a story and its 0-6 related
                # stories), and on every engine.
                rows += cpu.scenario(store, settings, size)
            # Servers in processes of their own: the embedded engine's files
            # are shared with them as a server's database is.
            env = {"MONGODB_URI": uri, "NEWSGRAPH_DB": settings.db_name, **MADE}
            slow = _too_slow_for_throughput(rows, size, clients, seconds)
            if slow:
                rows.append(Row("throughput", size, engine, extra={"skipped": slow}))
            else:
                rows += throughput(env, size, engine, clients, seconds)
                # Last: its loader adds articles to this size's database.
                rows += healthz_busy(env, size, engine, workdir, min(clients, 16), seconds)
            if size == min(sizes) and fleet_requests:
                # Once a run: two workers over this size's articles.
                rows += fleet_scenario(env, size, engine, fleet_requests)
            if len(sizes) > 1:
                render([r for r in rows if r.size == size])
        rows += growth(rows, sizes, engine)
        rows += embedded_load_growth(rows, sizes, engine)
        if len(loader_rss) > 1:
            # The target is growth over a tenfold corpus (10k -> 100k): compare
            # the largest size with the smallest within a factor of ten of it.
            large = max(loader_rss)
            small = min(s for s in loader_rss if s * 10 >= large)
            rows.append(
                Row(
                    "rss_loader_growth",
                    large,
                    engine,
                    ratio=loader_rss[large] / loader_rss[small],
                    extra={"from_size": small, "rss_mb": loader_rss},
                )
            )
    finally:
        if server is not None:
            server.stop()
        # Even when a scenario fails: an hour's measurements are not thrown away.
        render(rows)
        if json_path:
            write_json(rows, json_path)
    return rows


def run_cpu(
    size: int, engine: str, workdir: Path, cpu: CpuOptions, json_path: Path | None = None
) -> list[Row]:
    """``python -m bench cpu``: the ``cpu`` scenario alone, on a corpus of
    ``size`` loaded into the engine (embedded by default: nothing to install,
    and the store is stubbed while timing anyway)."""
    uri, server = _store_uri(engine)
    rows: list[Row] = []
    try:
        settings = Settings(mongodb_uri=uri, db_name=f"bench_cpu_{size}")
        store = connect(settings)
        store.db.client.drop_database(settings.db_name)
        report = load_paths(store, [corpus_for(size, workdir)], settings)
        assert report.ok, report.failures[:3]
        rows = cpu.scenario(store, settings, size)
    finally:
        if server is not None:
            server.stop()
        render(rows)
        if json_path:
            write_json(rows, json_path)
    return rows


def _too_slow_for_throughput(rows: list[Row], size: int, clients: int, seconds: float) -> str:
    """Why a throughput run would measure nothing: when the store takes so long
    over one front page (FerretDB v1 scans the collection for every sorted
    query) that the clients could not each get one answer within the window."""
    limit = next(
        (r.limit_p50_ms for r in rows if r.scenario == "front_page" and r.size == size), None
    )
    if limit and clients * limit / 1000 > seconds:
        return (
            f"not run: one front page takes the store {limit / 1000:.1f}s alone, so "
            f"{clients} clients could not each get an answer in {seconds:g}s"
        )
    return ""


def growth(rows: list[Row], sizes: list[int], engine: str) -> list[Row]:
    """How much more a query costs at the largest size than at the smallest, for
    the API against its limit: the API should add no cost that grows with data."""
    if len(sizes) < 2:
        return []
    small, large = min(sizes), max(sizes)
    by = {(r.scenario, r.size): r for r in rows if r.scenario in QUERY_SCENARIOS}
    out = []
    for scenario in QUERY_SCENARIOS:
        a, b = by.get((scenario, small)), by.get((scenario, large))
        if not (a and b and a.p50_ms and a.limit_p50_ms and b.limit_p50_ms):
            continue
        api_growth = b.p50_ms / a.p50_ms
        limit_growth = b.limit_p50_ms / a.limit_p50_ms
        out.append(
            Row(
                "growth",
                large,
                engine,
                ratio=api_growth / limit_growth,
                extra={
                    "query": scenario,
                    "from_size": small,
                    "api_growth": api_growth,
                    "limit_growth": limit_growth,
                },
            )
        )
    return out
