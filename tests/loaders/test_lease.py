"""The loader lease on its own: taken, waited for, timed out, taken over (when it
runs out, or at once when its holder is a process of this host that is gone)."""

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.indexes import LOADER
from loaders.lease import Holding, Lease, LeaseError, process_start, this_host


def lease(store, settings, owner, **changed) -> Lease:
    return Lease(store, dataclasses.replace(settings, **changed), owner=owner)


def test_acquire_renew_release_and_generation(store, settings):
    a = lease(store, settings, "a")
    assert a.acquire() == Holding(0, 0) and a.held
    assert a.acquire() == Holding(0, 0)  # the owner takes it again
    assert a.renew(bump=True).generation == 1
    a.release(facets=1)
    assert not a.held
    b = lease(store, settings, "b")
    assert b.acquire() == Holding(1, 1)  # free once released; what a wrote is seen


def test_held_by_another_waits_then_says_who(store, settings, caplog):
    a = lease(store, settings, "host:1/a")
    a.acquire()
    b = lease(store, settings, "host:2/b", loader_wait_s=1)
    started = time.monotonic()
    gave_up = r"gave up after 1 s .* held by host:1/a since "
    with (
        caplog.at_level(logging.WARNING, "newsgraph.loaders"),
        pytest.raises(LeaseError, match=gave_up),
    ):
        b.acquire()
    assert 1 <= time.monotonic() - started < 5
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waits) == 1 and "held by host:1/a since" in waits[0]
    assert not b.held


def test_released_lease_is_taken_by_a_waiting_loader(store, settings):
    a = lease(store, settings, "a")
    a.acquire()
    b = lease(store, settings, "b", loader_wait_s=10)
    threading.Timer(0.5, a.release).start()
    started = time.monotonic()
    b.acquire()
    assert b.held and time.monotonic() - started < 5


def test_an_expired_lease_is_taken_over_and_its_owner_told(store, settings):
    crashed = lease(store, settings, "crashed", loader_lease_s=1)
    crashed.acquire()
    crashed.renew(bump=True)  # wrote, then died before rebuilding the facets
    late = lease(store, settings, "late", loader_wait_s=10)
    started = time.monotonic()
    assert late.acquire() == Holding(1, 0)  # facets behind: the next loader repairs them
    assert time.monotonic() - started < 5
    with pytest.raises(LeaseError, match=r"ran out .* late .* took it over"):
        crashed.renew()
    assert not crashed.held


def run_bounded(target, seconds: float = 60) -> list:
    """``target()``'s result (or exception) from a thread, failing the test
    if it has not returned within ``seconds`` (a wait that ignores what it
    should end on would otherwise hang the suite)."""
    done: list = []

    def run() -> None:
        try:
            done.append(target())
        except Exception as exc:
            done.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    assert done, f"still waiting after {seconds} s"
    return done


def test_a_wait_for_the_lease_ends_when_stop_is_set(store, settings):
    lease(store, settings, "busy").acquire()
    stop = threading.Event()
    waiting = Lease(store, dataclasses.replace(settings, loader_wait_s=600), "w", stop=stop)
    threading.Timer(0.3, stop.set).start()
    (result,) = run_bounded(waiting.acquire)
    assert isinstance(result, LeaseError) and "stopped while waiting" in str(result)
    assert "held by busy" in str(result) and not waiting.held


@contextlib.contextmanager
def a_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host, stopped at the end."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def held_by(store, pid: int, start: int | None, host: str | None = None) -> None:
    """The lease as a loader in process ``pid`` holds it, for ten minutes."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    store.db[LOADER].insert_one(
        {
            "_id": "lease",
            "owner": f"host:{pid}/dead",
            "since": now,
            "expires": now + timedelta(minutes=10),
            "generation": 3,
            "facets": 2,
            "host": host or this_host(),
            "pid": pid,
            "start": start,
        }
    )


needs_proc = pytest.mark.skipif(
    this_host() is None, reason="this host cannot tell its processes apart (no /proc)"
)


@needs_proc
def test_a_killed_holder_s_lease_is_taken_over_at_once(store, settings, caplog):
    """A holder killed with SIGKILL, on this host: its lease (ten minutes
    left) is taken as soon as it is asked for, not when it runs out."""
    with a_process() as holder:
        held_by(store, holder.pid, process_start(holder.pid))
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    late = lease(store, settings, "late", loader_wait_s=600)
    with caplog.at_level(logging.WARNING, "newsgraph.loaders"):
        (result,) = run_bounded(late.acquire)
    assert result == Holding(3, 2) and late.held  # the dead holder's writes are seen
    (took,) = [r.getMessage() for r in caplog.records]
    assert took.startswith(f"took over the loader lease from host:{holder.pid}/dead since ")
    assert f"pid {holder.pid} on this host" in took


@needs_proc
def test_a_killed_holder_not_yet_reaped_is_gone_too(store, settings):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        held_by(store, holder.pid, process_start(holder.pid))
        os.kill(holder.pid, signal.SIGKILL)  # a zombie until waited for
        assert run_bounded(lease(store, settings, "late", loader_wait_s=600).acquire)
    finally:
        holder.wait(timeout=30)


@needs_proc
def test_a_live_holder_on_this_host_keeps_its_lease(store, settings):
    with a_process() as holder:
        held_by(store, holder.pid, process_start(holder.pid))
        with pytest.raises(LeaseError, match=f"held by host:{holder.pid}/dead"):
            lease(store, settings, "late", loader_wait_s=1).acquire()


@needs_proc
def test_a_pid_reused_by_another_process_does_not_keep_the_lease(store, settings):
    with a_process() as other:
        start = process_start(other.pid)
        assert start is not None
        held_by(store, other.pid, start - 1)  # the holder had that pid, and started earlier
        (result,) = run_bounded(lease(store, settings, "late", loader_wait_s=600).acquire)
        assert result == Holding(3, 2)


@needs_proc
def test_a_holder_on_another_host_is_waited_for(store, settings):
    with a_process() as holder:
        pid = holder.pid
    held_by(store, pid, 1, host="elsewhere boot 0 pid-ns 0")  # its pid means nothing here
    with pytest.raises(LeaseError, match="gave up after 1 s"):
        lease(store, settings, "late", loader_wait_s=1).acquire()


def test_a_lease_records_where_its_holder_runs(store, settings):
    a = lease(store, settings, "a")
    a.acquire()
    doc = store.db[LOADER].find_one({"_id": "lease"})
    assert (doc["host"], doc["pid"]) == (this_host(), os.getpid())
    assert doc["start"] == process_start(os.getpid())
