"""Loaders in company: concurrent loads, a watcher beside a one-shot load, and a
load killed mid-run all leave provider and topic counts exactly as the articles
say (issue 12: each rebuild used to replace every row from its own snapshot)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.gen import generate
from core.indexes import PROVIDERS_FACET, TOPICS_FACET
from core.store import Store
from loaders import load_paths
from loaders.facets import facets_of
from loaders.lease import this_host
from tests.articles import web_url, write_article
from tests.loaders.test_watch import watching
from tests.waiting import eventually

RUN_S = 120  # bound on any one load subprocess


def expected_counts(store: Store) -> dict[str, dict[str, tuple[int, int]]]:
    """(count, countAll) per provider and topic, counted from the articles."""
    counts: dict[str, Counter[tuple[str, str]]] = {"providers": Counter(), "topics": Counter()}
    for doc in store.articles.find({}):
        published, domain, _, topics = facets_of(doc)
        keys = [("providers", domain)] if domain else []
        keys += [("topics", t) for t in topics]
        for facet, key in keys:
            counts[facet][(key, "countAll")] += 1
            if published:
                counts[facet][(key, "count")] += 1
    return {
        facet: {key: (c[(key, "count")], c[(key, "countAll")]) for key, _ in c}
        for facet, c in counts.items()
    }


def stored_counts(store: Store) -> dict[str, dict[str, tuple[int, int]]]:
    return {
        facet.collection: {
            row["_id"]: (row[facet.count], row[facet.count_all])
            for row in store.db[facet.collection].find({})
        }
        for facet in (PROVIDERS_FACET, TOPICS_FACET)
    }


def assert_counts_exact(store: Store, articles: int) -> None:
    assert store.articles.count_documents({}) == articles
    expected = expected_counts(store)
    assert expected["providers"] and expected["topics"]
    assert stored_counts(store) == expected


def load_command(settings, *paths: Path, **env: str) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
        "NEWSGRAPH_LOAD_WORKERS": "1",
        **env,
    }
    command = [sys.executable, "-m", "newsgraph", "load", "--json", *map(str, paths)]
    return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_a_load_mid_run(settings, store: Store, corpus: Path, **env: str) -> None:
    """Start a load of ``corpus`` (400 files) and kill it with SIGKILL once it
    wrote some batches (a tenth of them), long before it is done."""
    proc = load_command(settings, corpus, NEWSGRAPH_BATCH_SIZE="20", **env)
    try:
        eventually(lambda: store.articles.count_documents({}) >= 40, RUN_S, "some batches")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=RUN_S)
    assert store.articles.count_documents({}) < 400, "killed too late to test anything"


def test_two_loads_started_together_on_a_fresh_database_keep_every_count(settings, store, tmp_path):
    generate(150, tmp_path / "a", seed=1)
    generate(150, tmp_path / "b", seed=2)
    procs = [load_command(settings, tmp_path / d, NEWSGRAPH_BATCH_SIZE="40") for d in "ab"]
    for proc in procs:
        _, err = proc.communicate(timeout=RUN_S)
        assert proc.returncode == 0, err.decode()
    assert_counts_exact(store, 300)


def test_a_watcher_and_a_one_shot_load_keep_each_others_rows(store, settings, tmp_path):
    watched, other = tmp_path / "watched", tmp_path / "other"
    generate(30, watched, seed=3)
    generate(30, other, seed=4)
    with watching(store, settings, watched) as watcher:
        report = load_paths(store, [other], settings)
        assert report.inserted == 30 and report.aborted is None
        assert_counts_exact(store, 60)
        # One edit under the watcher: its rebuild must keep the other folder's rows.
        write_article(
            watched,
            "edit.md",
            webUrl=web_url("edit"),
            provider="\n  name: Edit Desk\n  domain: editdesk.example",
        )
        watcher.until(lambda: store.providers.find_one({"_id": "editdesk.example"}), "the edit")
        assert watcher.reports[-1].aborted is None
    assert_counts_exact(store, 61)


def test_a_one_shot_load_waits_for_a_watchers_lease(store, settings, tmp_path):
    """A loader that finds the lease held waits for it rather than writing."""
    from loaders.lease import Lease

    generate(10, tmp_path, seed=5)
    holder = Lease(store, settings, owner="busy:1/x")
    holder.acquire()
    short = dataclasses.replace(settings, loader_wait_s=1)
    report = load_paths(store, [tmp_path], short)
    assert report.aborted and "held by busy:1/x" in report.aborted
    assert store.articles.count_documents({}) == 0  # nothing written without the lease
    holder.release()
    assert load_paths(store, [tmp_path], settings).inserted == 10
    assert_counts_exact(store, 10)


def test_a_load_killed_mid_run_is_repaired_by_the_next(settings, store, tmp_path):
    generate(400, tmp_path, seed=6)
    lease = {"NEWSGRAPH_LOADER_LEASE_S": "2"}  # the dead loader's lease runs out soon
    kill_a_load_mid_run(settings, store, tmp_path, **lease)
    again = load_command(settings, tmp_path, **lease)
    _, err = again.communicate(timeout=RUN_S)
    assert again.returncode == 0, err.decode()
    assert_counts_exact(store, 400)


def test_a_killed_loaders_lease_is_taken_at_once_on_its_host(settings, store, tmp_path):
    """The dead loader's lease would last up to a minute (NEWSGRAPH_LOADER_LEASE_S
    is 60 s); the next load, on the same host, waits at most 20 s, so it can only
    finish by seeing the holder's process gone and taking the lease at once."""
    if this_host() is None:
        pytest.skip("this host cannot tell its processes apart (no /proc)")
    generate(400, tmp_path, seed=8)
    kill_a_load_mid_run(settings, store, tmp_path)
    again = load_command(settings, tmp_path, NEWSGRAPH_LOADER_WAIT_S="20")
    _, err = again.communicate(timeout=RUN_S)
    assert again.returncode == 0, err.decode()
    assert "took over the loader lease" in err.decode()
    assert_counts_exact(store, 400)


def test_counts_written_before_a_crash_are_rebuilt_even_if_nothing_changed(
    settings, store, tmp_path
):
    """A loader that wrote every article and died before rebuilding the counts
    leaves them stale; the next load changes nothing yet rebuilds them."""
    generate(20, tmp_path, seed=7)
    assert load_paths(store, [tmp_path], settings).inserted == 20
    store.providers.delete_many({})  # what a crash before the rebuild looks like...
    store.db["_loader"].update_one({"_id": "lease"}, {"$inc": {"generation": 1}})  # ...said
    report = load_paths(store, [tmp_path], settings)
    assert report.unchanged == 20
    assert_counts_exact(store, 20)


#: Loads killed by the test below (seeded: the same moments each run).
KILLS = 6


def test_a_load_killed_at_random_moments_leaves_whole_batches(settings, store, tmp_path):
    """SIGKILL at random moments of loads (while parsing, writing a batch,
    rebuilding counts, appending the manifest): after each, the store opens,
    passes SQLite's integrity check, holds whole batches only (each batch is one
    transaction) and answers an indexed query; the next complete load makes
    every count exact."""
    if not store.embedded:
        pytest.skip("checks the embedded engine's files; a server's durability is its own")
    import random
    import sqlite3
    import time

    total = 600
    generate(total, tmp_path, seed=8)
    store.ping()  # the file exists even if the first kill comes before the loader opens it
    rng = random.Random(21)
    env = {"NEWSGRAPH_BATCH_SIZE": "25", "NEWSGRAPH_LOADER_LEASE_S": "1"}
    seen = []
    for kill in range(KILLS):
        proc = load_command(settings, tmp_path, **env)
        if kill == 0:
            # The first kill waits for the first batch rather than a clock: a fast
            # machine loads the whole corpus within any fixed delay.
            started = time.monotonic()
            while store.articles.count_documents({}) == 0 and proc.poll() is None:
                assert time.monotonic() - started < RUN_S, "the load wrote nothing"
                time.sleep(0.005)
        else:
            time.sleep(rng.uniform(0.2, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=RUN_S)
        with sqlite3.connect(store.db.path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = store.articles.count_documents({})
        assert stored % 25 == 0, f"{stored} articles: a batch was half written"
        newest = store.articles.find({"published": True}).sort(
            [("publishedDateTime", -1), ("_id", -1)]
        )
        assert len(list(newest.limit(5))) == min(
            5, store.articles.count_documents({"published": True})
        )
        seen.append(stored)
    assert seen[0] < total, f"the first kill came after the whole load: {seen}"
    again = load_command(settings, tmp_path, **env)
    _, err = again.communicate(timeout=RUN_S)
    assert again.returncode == 0, err.decode()
    assert_counts_exact(store, total)


def test_a_server_serves_what_loads_in_other_processes_write(settings, store, tmp_path):
    """``newsgraph load`` then ``newsgraph serve``, and ``newsgraph load
    --watch`` beside a running server: the server answers from the same store
    (on the embedded engine, the same files; SQLite's WAL lets the loader write
    while the server reads)."""
    import httpx2 as httpx

    from testing.live import running_server, stop

    first, watched = tmp_path / "first", tmp_path / "watched"
    generate(20, first, seed=9)
    generate(5, watched, seed=10)
    done = load_command(settings, first)
    _, err = done.communicate(timeout=RUN_S)
    assert done.returncode == 0, err.decode()

    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    query = {"query": "{ articles(first: 1) { totalCount } providers { totalCount } }"}
    with running_server(env) as (url, _):

        def total() -> int:
            data = httpx.post(f"{url}/graphql", json=query, timeout=10).json()["data"]
            return int(data["articles"]["totalCount"])

        def caught_up(articles: int) -> bool:
            """The server counts every published article of ``articles`` stored."""
            published = store.articles.count_documents({"published": True})
            return store.articles.count_documents({}) == articles and total() == published

        assert caught_up(20)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "newsgraph", "load", "--watch", str(watched)],
            env={**os.environ, **env, "NEWSGRAPH_LOAD_WORKERS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            alive = lambda: watcher.poll() is None  # noqa: E731
            eventually(lambda: caught_up(25), RUN_S, "the watcher's first load", alive)
            write_article(watched, "late.md", webUrl=web_url("late"))
            eventually(lambda: caught_up(26), RUN_S, "the watcher's new article", alive)
        finally:
            stop(watcher)
    assert_counts_exact(store, 26)
