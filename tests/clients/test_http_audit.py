"""graphql-http's own GraphQL-over-HTTP audit, run from Node against a live server.

Every audit must pass: a check the API decides against is listed in
``ALLOWED`` by id, with its reason in the README's "GraphQL over HTTP".
"""

import json
import shutil
import subprocess
from pathlib import Path

from tests.required import missing

HERE = Path(__file__).parent

#: Audits of graphql-http 1.23.1's 61 that may warn, by id, with the reason.
ALLOWED: dict[str, str] = {}
AUDITS = 61


def run_audit(url: str) -> list[dict]:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "graphql-http").is_dir():
        missing(
            "NODE", "graphql-http is not installed: run scripts/install (needs Node.js and npm)"
        )
    done = subprocess.run(
        [node, str(HERE / "http_audit.js")],
        input=json.dumps({"url": f"{url}/graphql"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_graphql_http_audit_passes(live_server):
    url, _ = live_server
    results = run_audit(url)
    assert len(results) == AUDITS
    failed = [r for r in results if r["status"] != "ok" and r["id"] not in ALLOWED]
    assert failed == [], json.dumps(failed, indent=1)
    assert sum(r["status"] == "ok" for r in results) == AUDITS - len(ALLOWED)
