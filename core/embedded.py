"""Where the embedded engine (``core.engine``) keeps its data, and the one
client per folder a process opens.

With no ``MONGODB_URI``, a database is one SQLite file, ``<db>.sqlite3``, in
the data folder: ``NEWSGRAPH_DATA_DIR``, else ``$XDG_DATA_HOME/newsgraph``,
else ``~/.local/share/newsgraph`` (one place per user, so ``newsgraph load``
and a later ``newsgraph serve`` find the same data from any folder). With
``NEWSGRAPH_MEMORY`` the files live in a private temporary folder removed when
the process exits: a throwaway run, as the in-memory engine used to be.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading

from core.config import Settings
from core.engine import Client

_clients: dict[tuple[str, bool], Client] = {}
_memory_folder: str | None = None
_lock = threading.Lock()


def data_dir(settings: Settings) -> str:
    """The folder the settings name for the embedded engine's files."""
    if settings.memory:
        return _throwaway()
    if settings.data_dir:
        return os.path.abspath(os.path.expanduser(settings.data_dir))
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "newsgraph")


def client(settings: Settings) -> Client:
    """This process's client for the settings' folder."""
    folder = data_dir(settings)
    with _lock:
        key = (folder, settings.strict_indexes)
        if key not in _clients:
            _clients[key] = Client(
                folder, strict=settings.strict_indexes, durable=not settings.memory
            )
        return _clients[key]


def _throwaway() -> str:
    global _memory_folder
    with _lock:
        if _memory_folder is None:
            _memory_folder = tempfile.mkdtemp(prefix="newsgraph-memory-")
            atexit.register(shutil.rmtree, _memory_folder, ignore_errors=True)
        return _memory_folder
