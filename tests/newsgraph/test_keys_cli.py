"""``newsgraph keys``: create, list and revoke API keys, on both engines (the
embedded engine is this process's, so the command and the test share it)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from core import keys
from core.config import Settings
from core.store import Store
from newsgraph.cli import EXIT_FAILED, EXIT_OK, EXIT_STORE, EXIT_USAGE, cli


def run(*args: str, env: dict[str, str]) -> object:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def environment(settings: Settings) -> dict[str, str]:
    return {"MONGODB_URI": settings.mongodb_uri, "NEWSGRAPH_DB": settings.db_name}


def test_a_key_is_printed_once_listed_by_id_and_revoked(store: Store, settings: Settings):
    env = environment(settings)
    created = run("keys", "create", "web app", env=env)
    assert created.exit_code == EXIT_OK, created.output
    token = created.stdout.strip()
    assert token.startswith(keys.PREFIX) and "\n" not in token  # alone on stdout
    found = keys.find(store.keys, token)
    assert found is not None and found.name == "web app"
    assert f"created key {found.id}" in created.stderr

    as_json = json.loads(run("keys", "create", "ios", "--json", env=env).stdout)
    assert as_json["key"].startswith(keys.PREFIX) and as_json["name"] == "ios"

    listed = run("keys", "list", env=env)
    assert listed.exit_code == EXIT_OK
    assert found.id in listed.stdout and as_json["id"] in listed.stdout
    assert token not in listed.stdout and as_json["key"] not in listed.stdout  # never shown again

    revoked = run("keys", "revoke", found.id, env=env)
    assert revoked.exit_code == EXIT_OK, revoked.output
    assert keys.find(store.keys, token) is None
    again = run("keys", "revoke", found.id, env=env)
    assert again.exit_code == EXIT_FAILED and "no live key" in again.stderr
    rows = {row["id"]: row for row in json.loads(run("keys", "list", "--json", env=env).stdout)}
    assert rows[found.id]["revoked"] is not None and rows[as_json["id"]]["revoked"] is None


def test_keys_usage_and_an_unreachable_store():
    assert run("keys", "create", "", env={}).exit_code == EXIT_USAGE
    assert run("keys", "revoke", env={}).exit_code == EXIT_USAGE
    unreachable = {
        "MONGODB_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200",
        "NEWSGRAPH_STORE_TIMEOUT_MS": "200",
    }
    result = run("keys", "list", env=unreachable)
    assert result.exit_code == EXIT_STORE and "cannot reach the store" in result.stderr
