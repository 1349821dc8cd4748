"""Running the Node scripts here: JSON in on stdin, JSON out on stdout."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.required import missing

HERE = Path(__file__).parent


def run_script(script: str, payload: dict, package: str, timeout: float = 60) -> Any:
    """What ``script`` prints for ``payload``; skipped (or failed where CI
    requires Node) if Node or the npm ``package`` it needs is not installed."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / package).is_dir():
        missing("NODE", f"{package} is not installed: run scripts/install (needs Node.js and npm)")
    done = subprocess.run(
        [node, str(HERE / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
