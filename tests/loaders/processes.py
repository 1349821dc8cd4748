"""Which of a process's descendants belong to a parse pool (read from /proc)."""

from __future__ import annotations

import os
from collections.abc import Iterable


def descendants(pid: int | None = None) -> dict[int, str]:
    """``pid``'s descendants (default: this process's), each with its command line."""
    children: dict[int, list[int]] = {}
    cmdlines: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdlines[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        children.setdefault(parent, []).append(int(entry))
    found, todo = {}, list(children.get(pid or os.getpid(), []))
    while todo:
        child = todo.pop()
        found[child] = cmdlines.get(child, "")
        todo.extend(children.get(child, []))
    return found


def pool_processes(pid: int | None = None) -> list[str]:
    """The command lines of ``pid``'s descendants (default: this process's)
    that multiprocessing runs: the forkserver, its workers, the resource tracker."""
    return [cmdline for cmdline in descendants(pid).values() if "multiprocessing" in cmdline]


def running(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` still running (an exited process not yet reaped, a
    zombie, is not: it runs nothing and holds nothing)."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            alive.append(pid)
    return alive
