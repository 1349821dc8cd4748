"""Which of a process's descendants belong to a parse pool (read from /proc)."""

from __future__ import annotations

import os


def pool_processes(pid: int | None = None) -> list[str]:
    """The command lines of ``pid``'s descendants (default: this process's)
    that multiprocessing runs: the forkserver, its workers, the resource tracker."""
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
    found, todo = [], list(children.get(pid or os.getpid(), []))
    while todo:
        child = todo.pop()
        if "multiprocessing" in cmdlines.get(child, ""):
            found.append(cmdlines[child])
        todo.extend(children.get(child, []))
    return found
