"""The signals the parse pool's processes leave to the loader, and the pool's
forkserver's first act.

Ctrl-C (SIGINT) and SIGTERM reach a whole process group (a terminal, systemd),
but only the loader acts on them: it stops its pool itself, in order
(``loaders.parallel``). So the pool's forkserver, and the workers it forks,
ignore them; and they must ignore them from their first instruction, or a
signal sent to the group while the forkserver starts kills it.

The loader starts the forkserver with these signals held back (blocked) in
the starting thread: the forkserver inherits that mask through fork and exec,
so what reaches it meanwhile waits, pending. This module is the first module
the forkserver imports (its first preload module, imported before its own
``main`` touches a signal): it ignores them there, which discards any pending
one, then lets them through. CPython's resource tracker protects itself the
same way (bpo-33613). The loader's own handling is never changed, so a signal
sent to the loader meanwhile is handled by the loader, whichever of its
threads the kernel gives it to.

Without the hold, this module alone would leave a window: the forkserver
imports the ``loaders`` package before this module's code runs, and took
148-178 ms (median 168, 10 starts, 2 shared cores) from its start to ignoring
SIGTERM. One window is left, out of our hands: a forkserver that dies while a
pool runs is started again by multiprocessing itself, without the hold, and
ignores these signals only from that point on.

Imported anywhere else (``loaders`` is imported whole by some checks), it does
nothing.
"""

from __future__ import annotations

import signal
import sys

#: Ctrl-C and SIGTERM: the loader's to act on, not its pool's.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

#: What multiprocessing's forkserver runs: ``python -c 'from
#: multiprocessing.forkserver import main; main(...)'`` (newer CPythons put
#: ``import sys; `` first). Were that to change, the forkserver would keep the
#: signals held back, so never act on them either (see the tests).
_FORKSERVER = "from multiprocessing.forkserver import main;"


def ignore_stop_signals() -> None:
    """This process ignores :data:`STOP_SIGNALS` from now on (those pending
    are discarded), and this thread no longer holds them back."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def in_forkserver() -> bool:
    """Is this process multiprocessing's forkserver?"""
    return any(_FORKSERVER in arg for arg in sys.orig_argv)


if in_forkserver():
    ignore_stop_signals()
