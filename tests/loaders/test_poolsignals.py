"""Ctrl-C and SIGTERM while the parse pool starts: one sent to the loader is
the loader's, never lost; one sent to the pool's forkserver as it starts (a
process group's) is never acted on. Each case runs in a fresh interpreter, as
a loader would: its own signal handlers, its own forkserver, started by it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

#: Sends a loader's process a signal from inside the window where its pool's
#: forkserver starts (the real signal, to the whole process: the kernel gives
#: it to whichever thread does not hold it back), with another thread alive
#: as pymongo's monitors and the progress bar are: was it handled?
TO_THE_LOADER = """
import json, multiprocessing.forkserver, multiprocessing.resource_tracker, os, signal, sys
import threading
from loaders.parallel import Parser

signum, tracker_first = int(sys.argv[1]), sys.argv[2] == "1"
handled = []
signal.signal(signum, lambda got, frame: handled.append(got))
threading.Thread(target=threading.Event().wait, daemon=True).start()
if tracker_first:  # another pool's, kept: the forkserver starts alone
    multiprocessing.resource_tracker.ensure_running()
real = multiprocessing.forkserver.ensure_running

def ensure_running():
    os.kill(os.getpid(), signum)
    real()

multiprocessing.forkserver.ensure_running = ensure_running
with Parser(workers=2) as parser:
    parser._start()
print(json.dumps({"handled": handled}))
"""

#: Sends the forkserver Ctrl-C and SIGTERM the moment it is started, as a
#: process group's signal would reach it, then has the pool parse a batch.
TO_THE_FORKSERVER = """
import json, multiprocessing.util, os, signal
from loaders.parallel import PARALLEL_MIN, Parser
from loaders.read import content_hash
from tests.articles import article_text, web_url

def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}

def has(mask, signum):
    return bool(int(mask, 16) & (1 << (signum - 1)))

seen = {}
real = multiprocessing.util.spawnv_passfds

def spawnv_passfds(path, args, passfds):
    pid = real(path, args, passfds)
    if any("multiprocessing.forkserver" in os.fsdecode(arg) for arg in args):
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(pid, signum)
        # Held back, so pending: sent before the forkserver ignored them (it
        # first imports the loader's modules, ~150 ms; these lines take µs).
        pending = status(pid)["ShdPnd"]
        seen.update(pid=pid, pending=[has(pending, s) for s in (signal.SIGINT, signal.SIGTERM)])
    return pid

multiprocessing.util.spawnv_passfds = spawnv_passfds
items = []
for i in range(PARALLEL_MIN):
    data = article_text(webUrl=web_url(f"a{i}")).encode()
    items.append((data, f"a{i}.md", content_hash(data)))
with Parser(workers=2) as parser:
    answer = parser.submit(items).future.result(timeout=60)
    mask = status(seen["pid"])["SigIgn"]
    seen.update(
        by_worker=isinstance(answer, str) and parser.workers == 2,
        alive=os.waitpid(seen["pid"], os.WNOHANG) == (0, 0),
        ignored=[has(mask, s) for s in (signal.SIGINT, signal.SIGTERM)],
    )
print(json.dumps(seen))
"""


def python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by a fresh interpreter, the project importable."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    argv = [sys.executable, "-c", script, *args]
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def run(script: str, *args: str) -> dict[str, object]:
    """What ``script`` printed, as JSON, run by :func:`python`."""
    done = python(script, *args)
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("tracker_first", [False, True])
def test_a_signal_sent_to_the_loader_as_its_pool_starts_is_handled(signum, tracker_first):
    # Once the loader ignored SIGTERM meanwhile: another thread took it and
    # dropped it, or (no resource tracker yet) starting the tracker let it
    # through while still ignored. The loader then ran to its end.
    assert run(TO_THE_LOADER, str(int(signum)), str(int(tracker_first))) == {"handled": [signum]}


def test_the_forkserver_never_acts_on_a_signal_sent_as_it_starts():
    # A process group's Ctrl-C or SIGTERM reaches the forkserver too, maybe
    # before its own code runs: killed, it would cost the pool.
    seen = run(TO_THE_FORKSERVER)
    assert seen["pending"] == [True, True]  # sent while it started, held back
    assert seen["alive"] and seen["by_worker"]  # survived, and served the pool
    assert seen["ignored"] == [True, True]  # and ignores them from then on


def test_the_module_does_nothing_imported_outside_a_forkserver():
    # Every product module is imported by some checks (test_constraints).
    script = (
        "import loaders.poolsignals, signal; "
        "print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "
        "signal.pthread_sigmask(signal.SIG_BLOCK, []))"
    )
    done = python(script)
    assert done.stdout.split() == ["True", "set()"], done.stderr
