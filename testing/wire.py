"""A MongoDB-compatible server for the wire tests and the benchmark, found or
started here.

In order: ``MONGODB_URI`` if set; else a throwaway ``mongod`` if one is on PATH;
else a throwaway ``ferretdb`` (v1, SQLite backend) if one is on PATH or named by
``NEWSGRAPH_FERRETDB``. A started server listens on 127.0.0.1 on a free port,
keeps its data in a temporary directory, and can be stopped and started again
on the same port and data (the fault tests do that).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymongo

from testing.ports import free_port


@dataclass
class WireServer:
    uri: str
    name: str
    command: list[str] = field(default_factory=list)
    data_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def controllable(self) -> bool:
        """Whether it was started here (and so may be stopped and restarted)."""
        return bool(self.command)

    def start(self, timeout: float = 20.0) -> None:
        assert self.data_dir is not None
        with open(self.data_dir / "server.log", "ab") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; "
                    f"see {self.data_dir}/server.log"
                )
            if self.answers():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def answers(self) -> bool:
        client: pymongo.MongoClient = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500)
        try:
            client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()


def find_wire_server() -> tuple[WireServer | None, str]:
    """The server to use and how it was chosen, or ``None`` and why not."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        return WireServer(uri=uri, name="MONGODB_URI"), f"MONGODB_URI ({uri.split('@')[-1]})"
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="newsgraph-wire-"))
    mongod = shutil.which("mongod")
    if mongod:
        cmd = [
            mongod,
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--dbpath",
            str(data),
            "--quiet",
        ]
        return _started(WireServer(f"mongodb://127.0.0.1:{port}/", "mongod", cmd, data))
    ferretdb = os.environ.get("NEWSGRAPH_FERRETDB") or shutil.which("ferretdb")
    if ferretdb:
        cmd = [
            ferretdb,
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{port}",
            "--telemetry=disable",
            f"--state-dir={data}",
            "--debug-addr=-",
            "--log-level=error",
        ]
        return _started(WireServer(f"mongodb://127.0.0.1:{port}/", "ferretdb", cmd, data))
    shutil.rmtree(data, ignore_errors=True)
    return None, (
        "no MongoDB-compatible server: set MONGODB_URI, or put mongod or ferretdb "
        "on PATH (scripts/ferretdb builds one)"
    )


def _started(server: WireServer) -> tuple[WireServer | None, str]:
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        return None, f"could not start {server.name}: {exc}"
    return server, f"{server.name} on {server.uri} (started by the tests)"
