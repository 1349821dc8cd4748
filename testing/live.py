"""A web server in its own process on a free loopback port: ``newsgraph serve``
for the live tests, Uvicorn apps for the benchmark's throughput run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence

import httpx2 as httpx

from testing.ports import free_port


@contextlib.contextmanager
def serving(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    health: str | None = None,
    timeout: float = 20.0,
) -> Iterator[tuple[str, int]]:
    """``python -m <argv> --port <free port>``, with ``env`` over this process's
    environment: yields its URL and pid once it answers (with 200 at the path
    ``health`` if given, with anything at ``/`` if not), and stops it afterwards.
    Raises ``RuntimeError`` if it exits or does not answer within ``timeout`` s."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", *argv, "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url, health):
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}: {stderr}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(argv)} did not answer within {timeout:g}s")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        stop(process)


def running_server(
    env: Mapping[str, str], *args: str
) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """``newsgraph serve *args`` (see :func:`serving`): healthy once /healthz
    answers 200."""
    return serving(["newsgraph", "serve", "--log-level", "warning", *args], env, health="/healthz")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process``, and kill it if it has not ended within 10 s (a
    saturated server may still be draining queued requests)."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _answers(url: str, health: str | None) -> bool:
    try:
        response = httpx.get(url + (health or "/"), timeout=1)
    except httpx.TransportError:
        return False
    return health is None or response.status_code == 200
