"""Parsing in worker processes gives exactly what parsing inline gives."""

import dataclasses
import multiprocessing
import pickle
import select
from pathlib import Path

import pytest

from loaders import load_paths
from loaders.parallel import PARALLEL_MIN, Parsed, Parser, Rejection, parse_outcomes
from loaders.read import content_hash
from tests.articles import article_text, web_url, write_article
from tests.loaders.processes import pool_processes


def corpus(directory, n: int) -> None:
    for i in range(n):
        write_article(directory, f"a{i:04}.md", webUrl=web_url(f"a{i}"), title=f'"Story {i}"')
    bad = directory / "a0050-bad.md"
    bad.write_text(article_text(webUrl=web_url("bad"), quality="high"))


def items(directory: Path | str) -> list[tuple[bytes, str, str]]:
    out = []
    for path in sorted(Path(directory).iterdir()):
        data = path.read_bytes()
        out.append((data, str(path), content_hash(data)))
    return out


def test_worker_processes_return_the_same_outcomes_as_inline(tmp_path):
    corpus(tmp_path, PARALLEL_MIN + 20)
    batch = items(tmp_path)
    with Parser(workers=2) as parser:
        future = parser.submit(batch)
        assert parser._pool is not None  # a batch this size went to the workers
        in_workers = future.result(timeout=60)
    assert in_workers == parse_outcomes(batch)
    rejected = [o for o in in_workers if not isinstance(o, Parsed)]
    # the reason, line and field path survive the trip
    assert rejected == [Rejection(rejected[0].reason, 9, "quality")]
    assert "quality must be a whole number" in rejected[0].reason


def test_a_workers_answer_through_the_pools_pipe_is_written_whole_or_not_at_all(tmp_path):
    # A worker killed mid-message would leave half of it in the pool's pipe,
    # and the pool waiting for the rest forever: what goes through the pipe is
    # the name of the file holding the outcomes, small enough for one atomic
    # write (PIPE_BUF) however big the batch's documents are.
    for i in range(PARALLEL_MIN):
        body = f"Paragraph {i}. " * 2000  # ~30 kB a file: 3 MB of outcomes
        write_article(tmp_path, f"b{i:04}.md", webUrl=web_url(f"b{i}"), body=body)
    batch = items(tmp_path)
    with Parser(workers=2) as parser:
        parsing = parser.submit(batch)
        answer = parsing.future.result(timeout=60)
        assert isinstance(answer, str)  # a file's name, not the outcomes
        # The pool's whole message: its result item, pickled, with a 4-byte header.
        assert len(pickle.dumps(answer)) + 200 < select.PIPE_BUF
        outbox = Path(answer).parent
        assert parsing.result() == parse_outcomes(batch)
        assert list(outbox.iterdir()) == []  # read once, then removed
        parser.submit(batch)  # never read (a load stopped): removed with the pool
    assert not outbox.exists()


def test_small_batches_are_parsed_inline(tmp_path):
    corpus(tmp_path, 3)
    with Parser(workers=2) as parser:
        assert parser.submit(items(tmp_path)).done()
        assert parser._pool is None


@pytest.mark.parametrize("workers", [1, 2])
def test_a_parallel_load_stores_what_a_serial_one_does(store, settings, tmp_path, workers):
    corpus(tmp_path, 260)
    settings = dataclasses.replace(settings, load_workers=workers, batch_size=100)
    report = load_paths(store, [tmp_path], settings)
    assert (report.inserted, report.failed) == (260, 1)
    (failure,) = report.failures
    assert failure.path.endswith("a0050-bad.md") and failure.line == 9
    titles = sorted(d["title"] for d in store.articles.find({}, {"title": 1}))
    assert titles == sorted(f"Story {i}" for i in range(260))
    assert store.db.providers.find_one({"_id": "tramtimes.example"})["count"] == 260


def test_no_pool_process_outlives_a_load(store, settings, tmp_path):
    corpus(tmp_path, PARALLEL_MIN + 20)
    settings = dataclasses.replace(settings, load_workers=2)
    # multiprocessing's helpers another test left in this process (a resource
    # tracker) are not the load's, and the load leaves them be.
    before = pool_processes()
    during: list[list[str]] = []
    report = load_paths(
        store, [tmp_path], settings, on_file=lambda _: during or during.append(pool_processes())
    )
    assert report.inserted == PARALLEL_MIN + 20
    assert any("forkserver" in p for p in during[0])  # the pool was running
    assert pool_processes() == before and multiprocessing.active_children() == []
    # the next load starts them afresh, and stops them again
    for i in range(PARALLEL_MIN):
        write_article(tmp_path / "more", f"b{i}.md", webUrl=web_url(f"b{i}"))
    assert load_paths(store, [tmp_path], settings).inserted == PARALLEL_MIN
    assert pool_processes() == before


def test_a_worker_killed_costs_the_pool_not_the_batch(tmp_path):
    # A worker that dies (the OOM killer) breaks the pool: the batches are
    # parsed inline from then on, and closing the pool ends the workers left
    # (they ignore the SIGTERM the pool sends them) and its helpers.
    import os
    import signal

    corpus(tmp_path, PARALLEL_MIN + 20)
    batch = items(tmp_path)
    before = pool_processes()
    parser = Parser(workers=2)
    try:
        assert parser.submit(batch).result(timeout=60) == parse_outcomes(batch)
        workers = list(parser._pool._processes)  # type: ignore[union-attr]
        os.kill(workers[0], signal.SIGKILL)  # idle: it waits for the next batch
        assert parser.submit(batch).result(timeout=60) == parse_outcomes(batch)
        assert parser.submit(batch).result(timeout=60) == parse_outcomes(batch)
        assert parser.workers == 1  # inline now
    finally:
        parser.close()
    assert pool_processes() == before


#: The pool's forkserver dies with a worker asked of it and not answered (the
#: OOM killer chooses its moment): held stopped while asked, then killed.
FORKSERVER_DIES_ASKED = """
import json, multiprocessing.forkserver as forkserver, os, signal, sys
from loaders.parallel import Parser, parse_outcomes
from tests.loaders.processes import pool_processes, running
from tests.loaders.test_parallel import items

connect, read_signed = forkserver.connect_to_new_process, forkserver.read_signed

def asked(fds):
    os.kill(forkserver._forkserver._forkserver_pid, signal.SIGSTOP)
    return connect(fds)

def answer(fd):
    pid = forkserver._forkserver._forkserver_pid
    os.kill(pid, signal.SIGKILL)
    while running([pid]):
        pass
    return read_signed(fd)

forkserver.connect_to_new_process, forkserver.read_signed = asked, answer
batch = items(sys.argv[1])
with Parser(workers=2) as parser:
    same = parser.submit(batch).result(timeout=60) == parse_outcomes(batch)
    inline = parser.workers == 1
print(json.dumps({"same": same, "inline": inline, "left": pool_processes()}))
"""


def test_a_forkserver_dead_before_it_answers_costs_the_pool_not_the_batch(tmp_path):
    from tests.loaders.test_poolsignals import run

    corpus(tmp_path, PARALLEL_MIN + 20)
    assert run(FORKSERVER_DIES_ASKED, str(tmp_path)) == {"same": True, "inline": True, "left": []}
