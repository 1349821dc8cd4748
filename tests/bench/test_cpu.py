"""The ``cpu`` scenario (bench/cpu.py) at a tiny size and duration: its rows are
there and sane (the traced servers' too, with the otel extra: every request
traced, and head-sampled at a ratio), and its answers were checked. No timing
is asserted."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from api.data import deadline
from api.data.gateway import Chain, Find
from api.data.slots import StoreSlots
from bench.cpu import SAMPLED, TRACED, cpu_scenario
from bench.gen import generate
from bench.loadgen import cpu_seconds
from bench.querying import Found, MemoryGateway, Uncaptured, call_key
from bench.report import CPU_SCENARIOS, SAMPLED_SCENARIOS, TRACED_SCENARIOS, render
from bench.stubbed import Capture, StubGateway
from core.config import Settings
from core.store import connect
from loaders import load_paths


def test_cpu_seconds_counts_this_process_working() -> None:
    before = cpu_seconds(os.getpid())
    started = time.process_time()
    while time.process_time() - started < 0.1:
        pass
    assert cpu_seconds(os.getpid()) > before


def test_the_stub_refuses_a_store_call_it_was_not_given() -> None:
    """So a stubbed server cannot answer from documents it made up."""
    settings = Settings(db_name=f"t_{uuid.uuid4().hex[:12]}")
    gateway = StubGateway(connect(settings), 1000, Capture({}, {}, {}))
    with pytest.raises(Uncaptured):
        asyncio.run(gateway.find("articles", {"published": True}))
    with pytest.raises(Uncaptured):
        asyncio.run(gateway.count("articles", {}))


def test_the_stub_answers_a_chain_from_its_capture_and_refuses_what_it_lacks() -> None:
    """A chained find (the mobile query's) is answered in the worker thread
    from the capture, as a lone find is, or fails as one would."""
    settings = Settings(db_name=f"t_{uuid.uuid4().hex[:12]}")
    first = Find("articles", {"_id": "a"}, {"title": 1})
    second = Find("articles", {"_id": "b"}, {"title": 1})
    docs = [[{"_id": f.query["_id"], "title": f.query["_id"].upper()}] for f in (first, second)]
    found = {
        call_key("find", *f): Found(*f, docs=d) for f, d in zip((first, second), docs, strict=True)
    }
    gateway = StubGateway(connect(settings), 1000, Capture(found, {}, {}))
    assert gateway.can_chain()
    chain = Chain(first, lambda answer: second if answer else None)
    asyncio.run(gateway.chain(chain))
    assert [chain.first_docs, chain.second_docs] == docs
    lacking = Chain(second, lambda answer: first._replace(query={"_id": "z"}))
    with pytest.raises(Uncaptured):
        asyncio.run(gateway.chain(lacking))


def test_the_capture_records_which_calls_the_loop_answered_and_the_stub_answers_them_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So the stubbed server hands each answer back where the real app did:
    an embedded store's small read on the event loop, the rest (a heavy
    operation's) through a worker thread."""
    settings = Settings(db_name=f"t_{uuid.uuid4().hex[:12]}")
    store = connect(settings)
    store.articles.insert_many([{"_id": "a", "title": "A"}, {"_id": "b", "title": "B"}])
    small, heavy = Find("articles", {"_id": "a"}, {"title": 1}), Find("articles", {"_id": "b"})
    jobs: list[Any] = []
    run = StoreSlots.run

    async def counted(slots: StoreSlots, call: Any, heavy: bool = False) -> Any:
        jobs.append(call)
        return await run(slots, call, heavy)

    async def asked(gateway: MemoryGateway) -> None:
        await gateway.find(*small)  # the first read of the loop opens its connection
        jobs.clear()
        await gateway.find(*small)
        with deadline.within(5) as budget:
            budget.heavy = True
            await gateway.find(*heavy)

    try:
        recorder = MemoryGateway(store, 1000)
        asyncio.run(asked(recorder))  # the store asked: once each, then from memory
        recorder.found.clear()
        monkeypatch.setattr(StoreSlots, "run", counted)
        asyncio.run(asked(recorder))
        assert recorder.on_loop == {call_key("find", *small)} and len(jobs) == 1
        capture = Capture(recorder.found, recorder.counted, {}, recorder.on_loop)
        stub = StubGateway(connect(settings), 1000, capture)
        asyncio.run(asked(stub))
        assert len(jobs) == 1 and stub.loop_reads.answered == 2  # the small read, twice
    finally:
        store.db.client.drop_database(settings.db_name)


#: With the otel extra installed (scripts/install), the run includes the traced servers.
TRACING = importlib.util.find_spec("opentelemetry") is not None


def test_cpu_rows_for_each_query_compiled_on_and_off_beside_the_bare_endpoint(
    tmp_path: Path,
) -> None:
    size = 60
    generate(size, tmp_path / "corpus")
    settings = Settings(db_name=f"t_{uuid.uuid4().hex[:12]}")
    store = connect(settings)
    try:
        assert load_paths(store, [tmp_path / "corpus"], settings).ok
        rows = cpu_scenario(
            store,
            settings,
            size,
            seconds=0.5,
            rounds=2,
            clients=2,
            tracing=TRACING,
            sampler=0.1 if TRACING else None,
        )
    finally:
        store.db.client.drop_database(settings.db_name)

    by = {(row.scenario, row.extra["query"]): row for row in rows}
    scenarios = CPU_SCENARIOS + (TRACED_SCENARIOS + SAMPLED_SCENARIOS if TRACING else ())
    assert set(by) == {(s, q) for s in scenarios for q in ("front_page", "mobile")}
    for row in rows:
        if row.scenario in TRACED_SCENARIOS + SAMPLED_SCENARIOS:  # against the untraced twin
            twin = by[((TRACED | SAMPLED)[row.scenario], row.extra["query"])]
            assert row.extra["untraced_cpu_ms_per_request"] == twin.extra["cpu_ms_per_request"]
            rounds = [
                t / u
                for t, u in zip(
                    row.extra["cpu_ms_rounds"], twin.extra["cpu_ms_rounds"], strict=True
                )
            ]
            assert row.extra["ratio_rounds"] == pytest.approx(rounds)
            assert row.ratio == pytest.approx(statistics.median(rounds))
            assert row.target == "<= 1.05" and row.extra["answers_checked"] is True
            spans, requests = row.extra["server_spans_exported"], row.extra["requests"]
            if row.scenario in TRACED_SCENARIOS:
                # Every timed answer's spans reached the collector, by OTLP.
                assert spans >= requests > 0 and row.extra["sampler_ratio"] == 1.0
                continue
            # Roots sampled at 0.1: some spans, far fewer than with every
            # request traced (about a tenth as many a request; a third is
            # far outside chance at these counts). Both per request the
            # server answered: its spans are of both queries, warm-up included,
            # not of this row's timed requests alone.
            full = by[(row.scenario.replace("_sampled", "_traced"), row.extra["query"])]
            every = full.extra["server_spans_exported"] / full.extra["server_requests"]
            share = spans / row.extra["server_requests"]
            assert spans > 0 and share < every / 3
            assert row.extra["sampler_ratio"] == 0.1
            continue
        assert (row.size, row.engine) == (size, "memory")
        assert row.extra["answers_checked"] is True
        assert row.extra["requests"] > 0
        assert row.extra["cpu_ms_per_request"] > 0
        assert row.extra["server_busy"] > 0
        assert row.extra["client_busy"] > 0 and len(row.extra["server_busy_rounds"]) == 2
        assert row.extra["server_waits_per_request"] >= 0
        bare_row = by[("cpu_bare", row.extra["query"])]
        bare = bare_row.extra["cpu_ms_per_request"]
        assert row.extra["bare_cpu_ms_per_request"] == bare
        # Beside the ratio of medians, each round's against the bare
        # endpoint's window of the same round, and their median.
        rounds = [
            c / b
            for c, b in zip(
                row.extra["cpu_ms_rounds"], bare_row.extra["cpu_ms_rounds"], strict=True
            )
        ]
        assert row.extra["ratio_rounds"] == pytest.approx(rounds)
        assert row.extra["ratio_rounds_median"] == pytest.approx(statistics.median(rounds))
        assert row.extra["ratio_spread"] == pytest.approx([min(rounds), max(rounds)])
        # The server that keeps answers gave nearly all from them (the first
        # of each query was made); the others made every one.
        kept = row.extra["answers_kept_share"]
        if row.scenario == "cpu_kept":
            assert kept > 0.9, kept
        elif row.scenario in ("cpu", "cpu_compiled"):
            assert kept == 0.0
        else:
            assert kept is None
        if row.scenario == "cpu_bare":
            assert row.ratio is None and rounds == [1.0, 1.0]
        else:
            assert row.ratio == pytest.approx(row.extra["cpu_ms_per_request"] / bare)

    console = Console(record=True, width=140)
    render(rows, console)
    text = console.export_text()
    assert "server CPU per request" in text and "newsgraph benchmark" not in text
    assert all(scenario in text for scenario in scenarios)
