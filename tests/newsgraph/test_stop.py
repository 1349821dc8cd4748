"""Stopping a load with a signal: Ctrl-C (SIGINT) and SIGTERM (what a container
runtime, systemd or a CI script sends) stop it in order, mid-parse; SIGKILL
cannot, and the parse pool ends by itself. Each leaves no process behind, and
the lease and the store as the next load can finish from."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.indexes import LOADER
from loaders.lease import Lease
from tests.articles import web_url, write_article
from tests.loaders.processes import descendants, running
from tests.loaders.test_concurrent import RUN_S, assert_counts_exact, load_command
from tests.waiting import eventually

#: Files of the corpus: batches of 100 (each parsed in the pool, PARALLEL_MIN),
#: more than the load gets through before the signal. The signal goes once the
#: pool's forkserver is seen (here it usually lands before the first batch is
#: written), but a loaded CI once loaded all of 800, and once all of 2,400,
#: before it came: the corpus is what gives the poll its margin, and costs
#: about a second a test more for each 2,400 files.
FILES = 6000
#: Bound on a stopped process's exit (it stops after the batch it is on).
STOP_S = 30


def corpus(directory: Path) -> Path:
    for i in range(FILES):
        write_article(directory, f"a{i:04}.md", webUrl=web_url(f"a{i}"), title=f'"Story {i}"')
    return directory


def started(
    argv: list[str], env: dict[str, str], out: Path, group: bool = False
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``python -m newsgraph *argv``, its stdout and stderr to files under
    ``out``, not pipes: an old loader's leftover processes held those open, so
    a wait for their end would wait for the leftovers too. With ``group``, in
    a process group of its own (its pid is the group's)."""
    out.mkdir(parents=True, exist_ok=True)
    stdout, stderr = out / "stdout", out / "stderr"
    with stdout.open("wb") as o, stderr.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsgraph", *argv],
            env={**os.environ, **env},
            stdout=o,
            stderr=e,
            start_new_session=group,
        )
    return proc, stdout, stderr


def stopped(proc: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> int:
    """Send ``proc`` ``signum``: its exit status, within :data:`STOP_S`."""
    proc.send_signal(signum)
    return proc.wait(timeout=STOP_S)


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """``proc`` killed on the way out if it still runs (a test that failed)."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stopped_mid_parse(
    proc: subprocess.Popen[bytes], signum: int, group: bool = False
) -> tuple[dict[int, str], int]:
    """Once ``proc``'s parse pool runs, send it ``signum`` (with ``group``, to
    its whole process group, as systemd does): the pool's processes (see
    :func:`pool_of`) and ``proc``'s exit status, within :data:`STOP_S` (killed
    if it fails to stop or the pool to start)."""
    with reaped(proc):
        pool = pool_of(proc)
        if not group:
            return pool, stopped(proc, signum)
        os.killpg(proc.pid, signum)
        return pool, proc.wait(timeout=STOP_S)


def pool_of(proc: subprocess.Popen[bytes]) -> dict[int, str]:
    """Once ``proc``'s parse pool runs (its forkserver started): its descendants."""
    found: dict[int, str] = {}

    def pool_up() -> bool:
        found.clear()
        found.update(descendants(proc.pid))
        return any("forkserver" in cmdline for cmdline in found.values())

    eventually(pool_up, RUN_S, "the parse pool to start", alive=lambda: proc.poll() is None)
    return found


def assert_none_left(pids: dict[int, str]) -> None:
    """None of ``pids`` runs (within a bound); those that do are killed, so
    that a failure leaves nothing behind either."""
    try:
        eventually(lambda: not running(pids), 10, f"the end of {pids}")
    finally:
        for pid in running(pids):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_the_helpers_see_a_process_tree_and_its_end():
    # Not vacuous: a running child is seen, and seen gone once it ends.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in descendants() and running([child.pid]) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert running([child.pid]) == []


@pytest.mark.parametrize(
    ("signum", "group"), [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)]
)
def test_a_load_stopped_by_a_signal_mid_parse_stops_in_order(
    settings, store, tmp_path, signum, group
):
    # To the loader alone (a container runtime, kill PID), or to its whole
    # process group (systemd's default, Ctrl-C at a terminal): then its parse
    # workers and forkserver get it too, and must leave the stop to the loader.
    articles = corpus(tmp_path / "articles")
    env = {
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
        "NEWSGRAPH_LOAD_WORKERS": "2",
        "NEWSGRAPH_BATCH_SIZE": "100",
    }
    proc, out, err = started(["load", "--json", str(articles)], env, tmp_path / "out", group)
    pool, status = stopped_mid_parse(proc, signum, group)
    # Ended by the signal, as its default would have (130 or 143 in a shell),
    # once it had stopped in order and said what it did.
    assert status == -signum, err.read_text()
    report = json.loads(out.read_bytes())
    name = signal.Signals(signum).name
    assert report["aborted"].startswith(f"by {name}"), report
    assert "before the end: files written so far stay written" in report["aborted"]
    assert report["inserted"] < FILES  # stopped mid-run, not after it
    assert "Traceback" not in err.read_text()
    assert "parsing worker died" not in err.read_text()  # the pool stopped whole
    # Its parse pool went before it did (nothing is left to be reaped by init).
    assert_none_left(pool)
    # The lease was let go, and what was written is what the report says.
    lease = store.db[LOADER].find_one({"_id": "lease"})
    assert lease is not None and lease["owner"] is None
    assert store.articles.count_documents({}) == report["inserted"]
    again = load_command(settings, articles)
    done, why = again.communicate(timeout=RUN_S)
    assert again.returncode == 0, why.decode()
    assert json.loads(done)["inserted"] == FILES - report["inserted"]
    assert_counts_exact(store, FILES)


def test_a_killed_loaders_parse_pool_ends_by_itself(tmp_path):
    # SIGKILL leaves the loader no say: the workers (the forkserver's
    # children, not the loader's) see it gone and end, and the forkserver and
    # resource tracker with them.
    corpus(tmp_path / "articles")
    env = {
        "MONGODB_URI": "",
        "NEWSGRAPH_DATA_DIR": str(tmp_path / "data"),
        "NEWSGRAPH_LOAD_WORKERS": "2",
        "NEWSGRAPH_BATCH_SIZE": "100",
    }
    proc, _, _ = started(["load", str(tmp_path / "articles")], env, tmp_path / "out")
    try:
        pool = pool_of(proc)

        def workers_up() -> bool:  # the forkserver, the resource tracker, 2 workers
            pool.update(descendants(proc.pid))
            return len(pool) >= 4

        eventually(workers_up, RUN_S, "the parse workers", alive=lambda: proc.poll() is None)
    finally:
        proc.kill()
        proc.wait()
    assert_none_left(pool)


@pytest.mark.parametrize("args", [(), ("--workers", "2")])
def test_serve_stopped_by_sigterm_stops_its_load_beside_in_order(tmp_path, args):
    # A restart (the store holds articles): the load runs beside serving, in
    # the server's process (the supervisor's with --workers); SIGTERM mid-parse
    # stops the server gracefully and the load after its batch.
    articles = corpus(tmp_path / "articles")
    first = tmp_path / "first"
    write_article(first, "a.md", webUrl=web_url("first"))
    env = {
        "MONGODB_URI": "",
        "NEWSGRAPH_DATA_DIR": str(tmp_path / "data"),
        "NEWSGRAPH_LOAD_WORKERS": "2",
        "NEWSGRAPH_BATCH_SIZE": "100",
    }
    done = subprocess.run(
        [sys.executable, "-m", "newsgraph", "load", str(first)],
        env={**os.environ, **env},
        capture_output=True,
        timeout=RUN_S,
    )
    assert done.returncode == 0, done.stderr
    argv = ["serve", "--port", "0", "--load", str(articles), *args]
    proc, _, err = started(argv, env, tmp_path / "out")
    pool, status = stopped_mid_parse(proc, signal.SIGTERM)
    log = err.read_text()
    # Stopped gracefully, then ended by SIGTERM, as the README says servers do.
    assert status == -signal.SIGTERM, log
    assert "STOPPED with the server, before the end" in log
    assert "Traceback" not in log and "note:" not in log  # the load ended in time
    assert_none_left(pool)  # the pool's processes, and with --workers the workers


def test_serve_stopped_by_sigterm_while_its_first_load_runs_does_not_serve(tmp_path):
    # Into an empty store the load runs before serving: SIGTERM stops it
    # there, and the server never starts.
    articles = corpus(tmp_path / "articles")
    env = {
        "MONGODB_URI": "",
        "NEWSGRAPH_DATA_DIR": str(tmp_path / "data"),
        "NEWSGRAPH_LOAD_WORKERS": "2",
        "NEWSGRAPH_BATCH_SIZE": "100",
    }
    argv = ["serve", "--port", "0", "--load", str(articles)]
    proc, _, err = started(argv, env, tmp_path / "out")
    pool, status = stopped_mid_parse(proc, signal.SIGTERM)
    log = err.read_text()
    assert status == -signal.SIGTERM, log
    assert "STOPPED by SIGTERM, before the end" in log
    assert "GraphQL at" not in log  # it did not go on to serve
    assert_none_left(pool)


def test_a_watch_stopped_by_sigterm_says_so_and_ends_by_it(settings, tmp_path):
    # load --watch runs until stopped: Ctrl-C is its normal end (status 0, see
    # test_cli); SIGTERM stops it the same way, then ends it by that signal.
    write_article(tmp_path / "articles", "a.md")
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    argv = ["load", "--watch", "--json", str(tmp_path / "articles")]
    proc, out, err = started(argv, env, tmp_path / "out")
    with reaped(proc):
        eventually(lambda: out.read_bytes().endswith(b"\n"), RUN_S, "the first load's report")
        time.sleep(0.5)  # the watch starts after the first load
        status = stopped(proc)
    assert status == -signal.SIGTERM, err.read_text()
    assert json.loads(out.read_bytes())["inserted"] == 1
    assert "stopped watching" in err.read_text()


def test_facets_stopped_by_sigterm_while_waiting_for_the_lease_ends_by_it(
    settings, store, tmp_path
):
    # SIGTERM's default would end the recount at once: holding the lease, the
    # next load would wait out its expiry. Stopped, it ends by the signal all
    # the same, having let go what it held (here a wait: the lease is ours).
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    holder = Lease(store, settings, owner="elsewhere:42/abc")
    holder.acquire()
    try:
        proc, _out, err = started(["facets", "--rebuild"], env, tmp_path / "out")
        with reaped(proc):
            eventually(
                lambda: b"waiting for the loader lease" in err.read_bytes(),
                RUN_S,
                "the recount waiting for the lease",
                alive=lambda: proc.poll() is None,
            )
            status = stopped(proc)
        lease = store.db[LOADER].find_one({"_id": "lease"})
        assert lease is not None and lease["owner"] == "elsewhere:42/abc"  # still ours
    finally:
        holder.release()
    log = err.read_text()
    assert status == -signal.SIGTERM, log
    assert "stopped by SIGTERM, before the end: no row was replaced." in log
    assert "Traceback" not in log
