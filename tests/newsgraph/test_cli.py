"""The command line as a user runs it: exit statuses, reports, store errors."""

import json
import os
import re
import subprocess
import sys
import threading
import time

from click.testing import CliRunner

from newsgraph.cli import cli
from tests.articles import EXAMPLES, write_article
from tests.loaders.processes import pool_processes
from tests.waiting import eventually


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
    assert f"FAILED {bad}:9: quality must be a whole number" in text.output.replace("\n", "")


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
    import signal

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
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
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
        eventually(lambda: b"Uvicorn running" in b"".join(err), 60, "the server up")
        assert re.search(rb"inserted\s+121\s", b"".join(err))
        assert b"SKIPPED " + os.fsencode(tmp_path) + b"/pipe.md: is a named pipe" in b"".join(err)
        assert pool_processes(proc.pid) == []
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_load_waits_for_another_loaders_lease_says_who_and_gives_up_clearly(settings, tmp_path):
    from core.store import connect
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
