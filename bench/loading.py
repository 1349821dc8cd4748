"""The loader's speed against its two unavoidable stages, measured alone on the
same files: parsing with PyYAML's C loader, and raw unordered bulk inserts of
documents already parsed. And the unchanged re-load, and the loader's memory."""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from bench.report import Row
from core.config import Settings
from core.store import connect
from loaders.discover import discover
from loaders.frontmatter import decode, split
from loaders.parse import parse_article
from loaders.read import content_hash


def _newsgraph_load(corpus: Path, env: dict[str, str]) -> tuple[dict, float]:
    """``newsgraph load --json`` in its own process: its report and peak RSS (MB)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "newsgraph", "load", "--json", str(corpus)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None  # stdout=PIPE
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    report = json.loads(out)
    assert report["failed"] == 0 and not report["aborted"], report
    return report, usage.ru_maxrss / 1024


def _parse_only(paths: list[Path]) -> int:
    for path in paths:
        # Raw PyYAML refuses the C1 characters of some mojibake, which newsgraph
        # carries through for repair; the attempt is timed all the same.
        with contextlib.suppress(yaml.YAMLError):
            yaml.load(split(decode(path.read_bytes())).front_matter, Loader=yaml.CSafeLoader)
    return len(paths)


def parse_only_rate(corpus: Path) -> float:
    """Files/s parsed by PyYAML's C loader alone, with as many processes as the
    loader uses (one per CPU), each taking 500-file chunks as the loader does."""
    workers = os.cpu_count() or 1
    started = time.perf_counter()
    files = (found.path for found in discover([corpus]))
    chunks = iter(lambda: list(itertools.islice(files, 500)), [])
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        n = sum(pool.map(_parse_only, chunks))
    return n / (time.perf_counter() - started)


def insert_only_rate(corpus: Path, settings: Settings) -> float:
    """Raw unordered bulk inserts of parsed documents into a collection with the
    same indexes the loader maintains (their upkeep is part of any write)."""
    store = connect(settings)
    store.db.client.drop_database(settings.db_name)
    store.ensure_indexes()
    spent, n = 0.0, 0
    files = (found.path for found in discover([corpus]))
    while chunk := list(itertools.islice(files, 500)):
        docs = []
        for path in chunk:
            data = path.read_bytes()
            docs.append(parse_article(data, path=str(path), content_hash=content_hash(data)))
        started = time.perf_counter()
        store.articles.insert_many(docs, ordered=False)
        spent += time.perf_counter() - started
        n += len(docs)
    store.db.client.drop_database(settings.db_name)
    return n / spent


def _in_process_load(corpus: Path, settings: Settings) -> dict:
    """The embedded engine lives in this process, so its loads must too."""
    from loaders import load_paths

    return load_paths(connect(settings), [corpus], settings).to_dict()


def loading(
    corpus: Path, settings: Settings, size: int, engine: str
) -> tuple[list[Row], float | None]:
    """Load ``corpus`` into ``settings``' database (which the query scenarios then
    use); rows for load and reload, and the loader's peak RSS in MB."""
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    parse_rate = parse_only_rate(corpus)
    insert_rate = insert_only_rate(
        corpus, Settings(mongodb_uri=settings.mongodb_uri, db_name=settings.db_name + "_raw")
    )
    if settings.mongodb_uri:
        first, rss = _newsgraph_load(corpus, env)
        again, _ = _newsgraph_load(corpus, env)
    else:
        first, rss = _in_process_load(corpus, settings), None
        again = _in_process_load(corpus, settings)
    assert again["unchanged"] == first["inserted"], again
    rate = first["files"] / first["seconds"]
    bottleneck = min(parse_rate, insert_rate)
    rows = [
        Row(
            "load",
            size,
            engine,
            ratio=rate / bottleneck,
            extra={
                "articles_per_s": rate,
                "parse_only_per_s": parse_rate,
                "insert_only_per_s": insert_rate,
                "seconds": first["seconds"],
            },
        ),
        Row(
            "reload",
            size,
            engine,
            ratio=again["seconds"] / first["seconds"],
            extra={"seconds": again["seconds"]},
        ),
    ]
    return rows, rss


def embedded_load_growth(rows: list[Row], sizes: list[int], engine: str) -> list[Row]:
    """The embedded engine's load rate at the largest size over the smallest:
    a store that slows as it fills makes a user's first real folder take minutes
    (issue 12), so the rate should stay flat with size."""
    if engine != "embedded" or len(sizes) < 2:
        return []
    small, large = min(sizes), max(sizes)
    rate = {r.size: r.extra["articles_per_s"] for r in rows if r.scenario == "load"}
    if small not in rate or large not in rate:
        return []
    return [
        Row(
            "embedded_load_growth",
            large,
            engine,
            ratio=rate[large] / rate[small],
            extra={"from_size": small, "files_per_s": {small: rate[small], large: rate[large]}},
        )
    ]
