"""graphql-http's own GraphQL-over-HTTP audit, run from Node against a live server.

Every audit must pass: a check the API decides against is listed in
``ALLOWED`` by id, with its reason in the README's "GraphQL over HTTP".
"""

import json

from tests.clients.node import run_script

#: Audits of graphql-http 1.23.1's 61 that may warn, by id, with the reason.
ALLOWED: dict[str, str] = {}
AUDITS = 61


def run_audit(url: str) -> list[dict]:
    results: list[dict] = run_script(
        "http_audit.js", {"url": f"{url}/graphql"}, "graphql-http", timeout=120
    )
    return results


def test_graphql_http_audit_passes(live_server):
    url, _ = live_server
    results = run_audit(url)
    assert len(results) == AUDITS
    failed = [r for r in results if r["status"] != "ok" and r["id"] not in ALLOWED]
    assert failed == [], json.dumps(failed, indent=1)
    assert sum(r["status"] == "ok" for r in results) == AUDITS - len(ALLOWED)
