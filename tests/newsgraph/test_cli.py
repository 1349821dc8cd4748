"""The command line as a user runs it: exit statuses, reports, store errors."""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid

import httpx2 as httpx
import pytest
from click.testing import CliRunner

from core.config import Settings
from core.indexes import LOADER, PROVIDERS, TOPICS
from core.news import CHANGED_FIELD, MARKER_ID
from core.store import connect
from loaders import load_paths
from loaders.facets import RecountStopped, recount_facets
from loaders.lease import Lease
from newsgraph.cli import EXIT_STATUS, cli
from testing.live import interrupt, running_server
from testing.ports import free_port
from tests.articles import EXAMPLES, write_article
from tests.loaders.processes import pool_processes
from tests.waiting import eventually


@pytest.fixture(autouse=True)
def own_database(monkeypatch):
    """Each test's commands share a database of their own: the embedded engine
    lives as long as the test process, and a file in one test's folder naming
    an article another test's file holds would be that file's duplicate."""
    monkeypatch.setenv("NEWSGRAPH_DB", f"cli_{uuid.uuid4().hex[:12]}")


def run(*args, env=None):
    runner = CliRunner()
    return runner.invoke(cli, list(map(str, args)), env=env or {}, catch_exceptions=False)


def test_load_prints_a_summary_and_exits_0(settings):
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    result = run("load", EXAMPLES, env=env)
    assert result.exit_code == 0, result.output
    assert re.search(r"inserted\s+12\s", result.output)
    assert re.search(r"failed\s+0\s", result.output)
    again = run("load", "--json", EXAMPLES, env=env)
    report = json.loads(again.stdout)
    assert report["unchanged"] == 12 and report["inserted"] == 0 and report["failures"] == []


def test_load_with_a_bad_file_exits_1_and_names_it(settings, tmp_path):
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    write_article(tmp_path, "good.md")
    bad = write_article(tmp_path, "bad.md", webUrl='"https://x.example/b"', quality="high")
    result = run("load", "--json", tmp_path, env=env)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["inserted"] == 1 and report["failed"] == 1
    (failure,) = report["failures"]
    assert failure["path"] == str(bad) and failure["line"] == 9
    assert "quality must be a whole number" in failure["reason"]
    text = run("load", tmp_path, env=env)
    assert f"FAILED {bad}:9: quality must be a whole number, got 'high'" in text.output.splitlines()


def test_usage_errors_exit_2():
    assert run("load").exit_code == 2
    assert run("load", "/no/such/path").exit_code == 2
    assert run("load", ".", env={"NEWSGRAPH_BATCH_SIZE": "lots"}).exit_code == 2


def test_embedded_load_says_where_the_data_goes():
    result = run("load", EXAMPLES, env={"NEWSGRAPH_DB": "where_it_goes"})
    assert result.exit_code == 0
    said = result.stderr.replace("\n", "")
    assert "loading into embedded (" in said and "where_it_goes.sqlite3" in said


def test_unreachable_store_fails_fast_and_clearly():
    env = {"MONGODB_URI": "mongodb://127.0.0.1:9/", "NEWSGRAPH_STORE_TIMEOUT_MS": "500"}
    started = time.monotonic()
    result = run("load", EXAMPLES, env=env)
    assert time.monotonic() - started < 5
    assert result.exit_code == 3
    assert "cannot reach the store at mongodb://127.0.0.1:9/" in result.stderr


def test_credentials_never_appear_in_messages():
    env = {
        "MONGODB_URI": "mongodb://reader:hunter2@127.0.0.1:9/",
        "NEWSGRAPH_STORE_TIMEOUT_MS": "300",
    }
    result = run("load", EXAMPLES, env=env)
    assert "hunter2" not in result.stderr and "reader:***@" in result.stderr


def test_console_script_is_installed_and_quiet_in_a_pipe(tmp_path):
    """The installed `newsgraph` command: no progress bar when not on a terminal."""
    env = {**os.environ, "MONGODB_URI": "", "NEWSGRAPH_MEMORY": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "newsgraph", "load", "--json", str(EXAMPLES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["inserted"] == 12
    assert "\r" not in done.stderr and "━" not in done.stderr


def test_load_watch_reports_each_change_as_a_json_line_and_stops_on_ctrl_c(settings, tmp_path):

    write_article(tmp_path, "a.md")
    env = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
    }
    command = [sys.executable, "-m", "newsgraph", "load", "--watch", "--json", str(tmp_path)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["inserted"] == 1 and first["deleted"] == 0
        time.sleep(0.5)  # the watch starts after the first load
        (tmp_path / "a.md").unlink()
        change = json.loads(proc.stdout.readline())
        assert change["deleted"] == 1 and change["failures"] == []
    finally:
        _, err = interrupt(proc)
    assert proc.returncode == 0, err
    assert b"stopped watching" in err


def test_odd_files_are_listed_and_exit_1_never_a_traceback(settings, tmp_path):
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    write_article(tmp_path, "caf\udce9.md")  # the name is b"caf\xe9.md", not UTF-8
    os.mkfifo(tmp_path / "pipe.md")
    result = run("load", tmp_path, env=env)
    assert result.exit_code == 1, result.output
    assert re.search(r"inserted\s+1\s", result.output)
    assert re.search(r"skipped\s+1\s", result.output)
    assert f"SKIPPED {tmp_path}/pipe.md: is a named pipe (FIFO)" in result.output
    report = json.loads(run("load", "--json", tmp_path, env=env).stdout)
    assert (report["skipped"], report["failed"]) == (1, 0)


def test_serve_load_survives_odd_files_and_keeps_no_parse_pool_while_serving(tmp_path):
    for i in range(120):  # over PARALLEL_MIN: parsed in a pool of worker processes
        write_article(tmp_path, f"a{i:03}.md", webUrl=f'"https://x.example/{i}"')
    write_article(tmp_path, "caf\udce9.md", webUrl='"https://x.example/odd"')  # not UTF-8
    os.mkfifo(tmp_path / "pipe.md")
    env = {**os.environ, "MONGODB_URI": "", "NEWSGRAPH_LOAD_WORKERS": "2"}
    command = [sys.executable, "-m", "newsgraph", "serve", "--port", "0", "--load", str(tmp_path)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        eventually(lambda: b"Application startup complete" in b"".join(err), 60, "the server up")
        assert re.search(rb"inserted\s+121\s", b"".join(err))
        assert b"SKIPPED " + os.fsencode(tmp_path) + b"/pipe.md: is a named pipe" in b"".join(err)
        assert pool_processes(proc.pid) == []
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_load_waits_for_another_loaders_lease_says_who_and_gives_up_clearly(settings, tmp_path):
    from loaders.lease import Lease

    write_article(tmp_path, "a.md")
    store = connect(settings)
    holder = Lease(store, settings, owner="elsewhere:42/abc")
    holder.acquire()
    env = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
        "NEWSGRAPH_LOADER_WAIT_S": "1",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "newsgraph", "load", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.release()
        store.close()
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("waiting for the loader lease held by elsewhere:42/abc since") == 1
    assert "gave up after 1 s" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# -- serve: the port first -----------------------------------------------------


def listening_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_serve_with_its_port_taken_fails_at_once_before_loading_with_exit_4(tmp_path):
    for i in range(50):
        write_article(tmp_path, f"a{i:02}.md", webUrl=f'"https://x.example/{i}"')
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "newsgraph", "serve", "--port", str(port), "--load", tmp_path],
            env={**os.environ, "MONGODB_URI": ""},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 4, done.stderr
    assert done.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use (is a server already "
        "running there?); choose another --port\n"
    )  # nothing loaded, nothing else said


def test_serve_on_port_0_says_the_port_it_took_and_serves_there(tmp_path):
    write_article(tmp_path / "articles", "a.md")
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "feed.yaml").write_text("a: 1\n")
    command = [
        *(sys.executable, "-m", "newsgraph", "serve", "--port", "0", "--log-level", "warning"),
        *("--load", tmp_path / "articles", "--load", tmp_path / "feeds"),
    ]
    env = {**os.environ, "MONGODB_URI": ""}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lines = []
        while not (line := proc.stderr.readline().decode()).startswith("GraphQL at"):
            assert line, f"the server ended: {''.join(lines)}"
            lines.append(line)
        port = int(re.fullmatch(r"GraphQL at http://127\.0\.0\.1:(\d+)/graphql .*\n", line)[1])
        assert port != 0
        # The empty folder was named, and the server serves what the other held.
        assert any(f"no article files in {tmp_path / 'feeds'}" in line for line in lines)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": "{ articles { totalCount } }"}
        )
        assert answer.json()["data"] == {"articles": {"totalCount": 1}}
    finally:
        interrupt(proc)
    assert proc.returncode == 0  # Ctrl-C is a normal stop


@contextlib.contextmanager
def a_restart_held_at_the_lease(tmp_path):
    """A store on the embedded engine that holds one of the two files under
    ``articles``, and the loader lease held by another loader (released on
    the way out if the test has not): (articles, env, the lease)."""
    articles = tmp_path / "articles"
    write_article(articles, "a.md", webUrl='"https://x.example/a"')
    env = {
        "MONGODB_URI": "",
        "NEWSGRAPH_DATA_DIR": str(tmp_path / "data"),
        "NEWSGRAPH_LOADER_WAIT_S": "300",
    }
    assert run("load", articles, env=env).exit_code == 0
    write_article(articles, "b.md", webUrl='"https://x.example/b"')
    settings = Settings.from_env({**os.environ, **env})
    store = connect(settings)
    holder = Lease(store, settings, owner="elsewhere:42/abc")
    holder.acquire()
    try:
        yield articles, env, holder
    finally:
        if holder.held:
            holder.release()
        store.close()


@pytest.mark.parametrize("args", [(), ("--workers", "2"), ("--watch",)])
def test_a_restart_serves_at_once_and_loads_the_changes_beside(tmp_path, args):
    # The load beside serving waits for the loader lease this test holds, so
    # the server answers while that load has not ended, whatever the timing;
    # once the lease is let go, the load's change is served. With --workers
    # the supervisor loads; with --watch, the watcher's first load is that load.
    count = {"query": "{ articles { totalCount } }"}
    with (
        a_restart_held_at_the_lease(tmp_path) as (articles, env, holder),
        running_server(env, "--load", articles, *args) as (url, _pid),
    ):
        assert httpx.post(f"{url}/graphql", json=count).json()["data"] == {
            "articles": {"totalCount": 1}
        }
        holder.release()
        eventually(
            lambda: (
                httpx.post(f"{url}/graphql", json=count).json()["data"]
                == {"articles": {"totalCount": 2}}
            ),
            60,
            "the load beside serving to be served",
        )


def test_readyz_says_how_the_load_beside_serving_goes(tmp_path, settings):
    # Held at the loader lease (as above), the load beside serving is running
    # while the server is ready: /readyz stays 200 and its body says so, then
    # what the load did once it ends, failures counted.
    articles = tmp_path / "articles"
    write_article(articles, "a.md", webUrl='"https://x.example/a"')
    env = {
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
        "NEWSGRAPH_DATA_DIR": str(tmp_path / "data"),
        "NEWSGRAPH_LOADER_WAIT_S": "300",
    }
    assert run("load", articles, env=env).exit_code == 0
    write_article(articles, "b.md", webUrl='"https://x.example/b"')
    (articles / "c.md").write_text("---\ntitle: [unclosed\n---\n")
    settings = Settings.from_env({**os.environ, **env})
    store = connect(settings)
    holder = Lease(store, settings, owner="elsewhere:42/abc")
    holder.acquire()
    try:
        with running_server(env, "--load", str(articles)) as (url, pid):
            seen = []

            def ready(running: bool) -> bool:
                answer = httpx.get(f"{url}/readyz")
                assert answer.status_code == 200
                seen.append(answer.json()["load"])
                return seen[-1]["running"] is running

            eventually(lambda: ready(True), 30, "the load beside serving to start", poll=0.2)
            load = seen[-1]
            assert load["pid"] == pid and load["last"] is None
            assert load["phase"] == "waiting for the loader lease"
            assert (load["files_done"], load["files_total"]) == (0, 3)
            assert load["started_at"].endswith("Z")
            holder.release()

            eventually(lambda: ready(False), 60, "the load beside serving to end", poll=0.2)
            load = seen[-1]
            assert set(load) == {"pid", "running", "last"}
            last = load["last"]
            assert (last["inserted"], last["unchanged"], last["failed"]) == (1, 1, 1)
            assert last["files"] == 3 and last["aborted"] is None
            assert last["started_at"] <= last["finished_at"]
    finally:
        if holder.held:
            holder.release()
        if store.embedded:
            store.db.client.drop_database(settings.db_name)
        store.close()


def test_readyz_tells_of_the_supervisor_s_load_on_the_workers_and_the_health_port(tmp_path):
    # With --workers the load beside serving runs in the supervisor, which
    # answers no requests: the workers and the probe process tell of it, as
    # the process that loads would (held at the lease, as above).
    health_port = free_port()
    with a_restart_held_at_the_lease(tmp_path) as (articles, env, holder):
        args = ("--load", str(articles), "--workers", "2", "--health-port", str(health_port))
        with running_server(env, *args) as (url, pid):
            probes = f"http://127.0.0.1:{health_port}"
            seen: list[list[dict]] = []

            def loads(running: bool) -> bool:
                parts = [httpx.get(f"{where}/readyz").json()["load"] for where in (url, probes)]
                seen.append(parts)
                return all(part["running"] is running for part in parts)

            eventually(lambda: loads(True), 30, "the load beside serving to start", poll=0.2)
            for part in seen[-1]:
                assert part["pid"] == pid  # the supervisor's, which loads
                assert part["phase"] == "waiting for the loader lease"
                assert (part["files_done"], part["files_total"]) == (0, 2)
            holder.release()
            eventually(lambda: loads(False), 60, "the load beside serving to end", poll=0.2)
            for part in seen[-1]:
                assert part["pid"] == pid
                assert (part["last"]["inserted"], part["last"]["unchanged"]) == (1, 1)


def test_readyz_has_no_load_part_without_a_load_beside(tmp_path):
    env = {"MONGODB_URI": "", "NEWSGRAPH_DATA_DIR": str(tmp_path / "data")}
    with running_server(env) as (url, _pid):
        assert "load" not in httpx.get(f"{url}/readyz").json()


def test_serve_exits_1_not_3_when_the_app_fails_to_start(monkeypatch):
    # 3 means the store could not be reached; Uvicorn's own code for an app
    # that fails to start is 3 too, which serve must not pass on.
    def broken(self):
        raise RuntimeError("index definitions do not match")

    monkeypatch.setattr("core.store.Store.ensure_indexes", broken)
    result = run("serve", "--port", "0", "--log-level", "error", env={"MONGODB_URI": ""})
    assert result.exit_code == 1, result.output
    assert "index definitions do not match" in result.stderr
    assert "Application startup failed" in result.stderr


@pytest.mark.parametrize("command", sorted(EXIT_STATUS))
def test_help_lists_the_exit_statuses_and_the_store_setting(command):
    text = " ".join(run(command, "--help").output.split())
    assert "MONGODB_URI" in text
    for code, meaning in EXIT_STATUS[command].items():
        assert f" {code} {meaning}" in text, (code, meaning)


# -- load: what is found -------------------------------------------------------


def test_a_folder_without_article_files_is_named_with_what_is_read_and_exits_1(tmp_path):
    empty, feeds, articles = tmp_path / "empty", tmp_path / "feeds", tmp_path / "articles"
    empty.mkdir()
    (feeds / "2025").mkdir(parents=True)
    for name in ("2025/b.yaml", "2025/a.yaml", ".notes.md"):
        (feeds / name).write_text("title: x\n")
    write_article(articles, "a.md")
    result = run("load", empty, feeds, articles)
    assert result.exit_code == 1
    assert re.search(r"inserted\s+1\s", result.stdout)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: no article files in {empty}: in a directory, only files ending .markdown, "
        ".md or .txt are read (hidden ones are not); it holds no files",
        f"warning: no article files in {feeds}: in a directory, only files ending .markdown, "
        ".md or .txt are read (hidden ones are not); it holds 3 files that are not read, "
        "e.g. 2025/a.yaml",
    ]
    report = json.loads(run("load", "--json", empty, feeds, articles).stdout)
    assert report["empty"] == [str(empty), str(feeds)] and report["unchanged"] == 1
    # A file named on the command line is read whatever its name.
    assert run("load", "--json", feeds / "2025" / "a.yaml").exit_code == 1  # it fails to parse
    assert "warning" not in run("load", feeds / "2025" / "a.yaml").stderr


def test_a_folder_with_articles_loads_without_a_warning_and_exits_0(tmp_path):
    write_article(tmp_path, "a.md")
    result = run("load", "--json", tmp_path)
    assert result.exit_code == 0 and json.loads(result.stdout)["empty"] == []
    assert "warning" not in result.stderr


def test_messages_to_a_pipe_stay_one_line_each(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    deep.mkdir(parents=True)
    bad = write_article(deep, "bad.md", quality="high")
    (deep / "more").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "newsgraph", "load", deep, deep / "more"],
        env={**os.environ, "MONGODB_URI": "", "COLUMNS": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert len(str(bad)) > 200
    lines = (done.stdout + done.stderr).splitlines()
    assert f"FAILED {bad}:9: quality must be a whole number, got 'high'" in lines
    assert any(
        line.startswith(f"warning: no article files in {deep / 'more'}: ")
        and line.endswith("it holds no files")
        for line in lines
    ), lines
    # The note names where the embedded engine's data lives: a long path, on one line.
    assert any(
        line.startswith("MONGODB_URI is not set: loading into embedded (") and line.endswith(")")
        for line in lines
    ), lines


def test_the_progress_bar_has_the_files_counted_ahead_as_its_total_and_the_time_left(tmp_path):
    for i in range(300):
        write_article(tmp_path, f"a{i:03}.md", webUrl=f'"https://x.example/{i}"')
    # A terminal, as rich tells one (stderr is a pipe here).
    env = {**os.environ, "MONGODB_URI": "", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "newsgraph", "load", tmp_path],
        env={**env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    frames = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", f) for f in re.split(r"[\r\n]", done.stderr)]
    bars = [f for f in frames if re.search(r"\d+/\d+ files", f)]
    assert bars, done.stderr
    # The total from the first frame on, and a time-left column (unknown
    # until there is a rate to go by, then h:mm:ss).
    assert re.search(r"\b0/300 files\s.*-:--:--", bars[0]), bars[0]
    assert re.search(r"\b300/300 files\s.*\d+:\d\d:\d\d", bars[-1]), bars[-1]


# -- facets ----------------------------------------------------------------------


def facet_rows(store):
    return {c: sorted(store.db[c].find(), key=lambda r: r["_id"]) for c in (PROVIDERS, TOPICS)}


def changes(store):
    """The news marker's count of changes (``core.news``)."""
    return store.db[LOADER].find_one({"_id": MARKER_ID})[CHANGED_FIELD]


def test_facets_lists_counts_that_differ_from_the_articles_and_rebuild_replaces_them(
    settings, store
):
    env = {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}
    assert load_paths(store, [EXAMPLES], settings).ok
    right = facet_rows(store)
    assert run("facets", env=env).exit_code == 0
    provider, topic = right[PROVIDERS][0], right[TOPICS][0]
    store.db[PROVIDERS].update_one({"_id": provider["_id"]}, {"$inc": {"count": 5}})
    store.db[TOPICS].delete_one({"_id": topic["_id"]})
    store.db[TOPICS].insert_one({"_id": "Ghost\ntopic", "count": 2, "countAll": 2})

    counted = changes(store)
    checked = run("facets", env=env)
    assert checked.exit_code == 1
    lines = checked.stdout.splitlines()
    assert lines[0] == (
        f"Counted 12 articles in {store.where}: "
        f"{len(right[PROVIDERS])} providers, {len(right[TOPICS])} topics"
    )
    topic_lines = {
        "Ghost\ntopic": "topics 'Ghost\\ntopic': stored (count 2, countAll 2) but no article "
        "counts it",
        topic["_id"]: f"topics {topic['_id']!r}: missing; counted count {topic['count']}, "
        f"countAll {topic['countAll']}",
    }
    assert lines[1:] == [
        f"providers {provider['_id']!r}: count {provider['count'] + 5} -> {provider['count']}",
        *(topic_lines[key] for key in sorted(topic_lines)),  # by collection, then key
        "3 rows differ; `newsgraph facets --rebuild` replaces them.",
    ]
    assert facet_rows(store) != right and changes(store) == counted  # a check writes nothing

    rebuilt = run("facets", "--rebuild", "--json", env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    report = json.loads(rebuilt.stdout)
    assert report["rebuilt"] is True and report["articles"] == 12
    assert {(c["collection"], c["key"]) for c in report["changes"]} == {
        (PROVIDERS, provider["_id"]),
        (TOPICS, topic["_id"]),
        (TOPICS, "Ghost\ntopic"),
    }
    ghost = next(c for c in report["changes"] if c["key"] == "Ghost\ntopic")
    assert ghost["counted"] is None and ghost["stored"] == {"count": 2, "countAll": 2}
    assert facet_rows(store) == right
    assert changes(store) != counted  # the rows are served: API workers are told
    again = run("facets", "--rebuild", env=env)
    assert again.exit_code == 0 and again.stdout.splitlines()[-1] == "The counts are right."


def test_facets_waits_for_the_loader_lease_and_gives_up_clearly(settings, store):
    env = {
        "MONGODB_URI": settings.mongodb_uri,
        "NEWSGRAPH_DB": settings.db_name,
        "NEWSGRAPH_LOADER_WAIT_S": "1",
    }
    assert load_paths(store, [EXAMPLES], settings).ok
    before = store.db[LOADER].find_one({"_id": "lease"})
    holder = Lease(store, settings, owner="elsewhere:42/abc")
    holder.acquire()
    try:
        result = run("facets", "--rebuild", env=env)
    finally:
        holder.release()
    assert result.exit_code == 3
    assert "gave up after 1 s waiting for the loader lease held by elsewhere:42/abc" in (
        result.stderr
    )
    # Once free, the recount takes the lease and leaves its record of the
    # counts' generation as it was.
    assert run("facets", "--rebuild", env=env).exit_code == 0
    after = store.db[LOADER].find_one({"_id": "lease"})
    assert (after["generation"], after["facets"]) == (before["generation"], before["facets"])


def test_a_recount_stopped_mid_scan_lets_the_lease_go_and_replaces_nothing(settings, store):
    # Ctrl-C or SIGTERM to `newsgraph facets` sets the stop event (see
    # test_stop for the signal itself): set here before the scan, which sees it
    # at its first article, after the lease was taken.
    assert load_paths(store, [EXAMPLES], settings).ok
    provider = facet_rows(store)[PROVIDERS][0]
    store.db[PROVIDERS].update_one({"_id": provider["_id"]}, {"$inc": {"count": 5}})
    wrong = facet_rows(store)
    stop = threading.Event()
    stop.set()
    with pytest.raises(RecountStopped):
        recount_facets(store, settings, rebuild=True, stop=stop)
    lease = store.db[LOADER].find_one({"_id": "lease"})
    assert lease is not None and lease["owner"] is None
    assert facet_rows(store) == wrong  # nothing replaced
    # Not vacuous: unstopped, the same recount replaces the wrong row.
    assert recount_facets(store, settings, rebuild=True).rebuilt
    assert facet_rows(store) != wrong
