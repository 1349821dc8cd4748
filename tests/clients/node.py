"""Running Node here: the scripts (JSON in on stdin, JSON out on stdout) and
the README's snippets."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.required import missing

HERE = Path(__file__).parent


def node_with(package: str) -> str:
    """The ``node`` executable; skipped (or failed where CI requires Node) if
    Node or the npm ``package`` is not installed."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / package).is_dir():
        missing("NODE", f"{package} is not installed: run scripts/install (needs Node.js and npm)")
    return node


def run_script(script: str, payload: dict, package: str, timeout: float = 60) -> Any:
    """What ``script`` prints for ``payload``."""
    done = subprocess.run(
        [node_with(package), str(HERE / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_module(
    source: str, package: str, env: dict[str, str], timeout: float = 60
) -> tuple[str, list[list[Any]]]:
    """Run ``source`` as an ES module from this folder, as the README writes it
    (readme_preload.mjs resolves its imports as a bundler would): what it
    prints, and [method, url, status, content-type, body] of each HTTP request
    it made."""
    node = node_with(package)
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if tuple(int(n) for n in version.lstrip("v").split(".")[:2]) < (20, 6):
        # module.register, which readme_preload.mjs calls, came in 20.6.
        missing("NODE", f"Node.js {version} is too old for the README's snippets: 20.6 or later")
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "requests.json"
        done = subprocess.run(
            [node, "--import", "./readme_preload.mjs", "--input-type=module", "-"],
            input=source,
            cwd=HERE,
            env={**os.environ, **env, "README_FETCH_LOG": str(log)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        requests: list[list[Any]] = json.loads(log.read_text())
    return done.stdout, requests
