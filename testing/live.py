"""A web server in its own process on a free loopback port: ``newsgraph serve``
for the live tests, Uvicorn apps for the benchmark's throughput run."""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx2 as httpx

from testing.ports import free_port


@contextlib.contextmanager
def serving(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    health: str | None = None,
    timeout: float = 20.0,
    open_files: int | None = None,
) -> Iterator[tuple[str, int]]:
    """``python -m <argv> --port <free port>``, with ``env`` over this process's
    environment: yields its URL and pid once it answers (with 200 at the path
    ``health`` if given, with anything at ``/`` if not), and stops it afterwards.
    Raises ``RuntimeError`` if it exits or does not answer within ``timeout`` s.
    ``open_files`` lowers its limit of open files (soft and hard), so that a
    test can run it out of them with a few hundred connections.

    Its stderr (its log) goes to a temporary file, not a pipe: nobody reads a
    pipe while it serves, and a server that logs enough (a warning per failed
    store call in an outage) would block writing to a full one. A failure to
    start quotes the log's tail; a failure in the ``with`` block prints it
    (pytest shows it with the failure) and keeps the file; else it is deleted."""
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="newsgraph-serve-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *argv, "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=None if open_files is None else functools.partial(_limit, open_files),
        )
    log_path = Path(log.name)
    url = f"http://127.0.0.1:{port}"
    answering = False
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url, health):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{' '.join(argv)} exited with {process.returncode}: {tail(log_path)}"
                )
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(
                    f"{' '.join(argv)} did not answer within {timeout:g}s: {tail(log_path)}"
                )
            time.sleep(0.1)
        answering = True
        yield url, process.pid
    except BaseException:
        stop(process)
        if answering:  # a failure while it served: its log may say why
            print(f"--- the end of {' '.join(argv)}'s log ({log_path}) ---", file=sys.stderr)
            print(tail(log_path), file=sys.stderr)
        raise
    else:
        stop(process)
        log_path.unlink(missing_ok=True)


def tail(path: Path, limit: int = 20_000) -> str:
    """The last ``limit`` characters of a log file (all of it if shorter)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return text[-limit:]


def running_server(
    env: Mapping[str, str], *args: str, open_files: int | None = None
) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """``newsgraph serve *args`` (see :func:`serving`): healthy once /healthz
    answers 200."""
    return serving(
        ["newsgraph", "serve", "--log-level", "warning", *args],
        env,
        health="/healthz",
        open_files=open_files,
    )


def _limit(open_files: int) -> None:
    """In the child, before it runs: at most ``open_files`` open files."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process``, and kill it if it has not ended within 10 s (a
    saturated server may still be draining queued requests)."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def interrupt(process: subprocess.Popen[bytes], timeout: float = 15) -> tuple[bytes, bytes]:
    """Ctrl-C ``process`` and wait for it to end: its output. One that does
    not end within ``timeout`` seconds is killed (so that no failed test
    leaves it running) and the wait's error raised."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def _answers(url: str, health: str | None) -> bool:
    try:
        response = httpx.get(url + (health or "/"), timeout=1)
    except httpx.TransportError:
        return False
    return health is None or response.status_code == 200
