"""The README can't drift from the code: its commands, options, settings and
example queries are checked here."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from core.config import ENV_NAMES, Settings
from newsgraph.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_first_two_commands_set_up_and_run_then_test():
    setup, test = blocks("sh")[:2]
    assert setup.strip() == "scripts/install && newsgraph serve --load examples/articles"
    assert test.strip() == "scripts/test"
    for script in ("scripts/install", "scripts/test"):
        assert os.access(ROOT / script, os.X_OK), script
    assert (ROOT / "examples" / "articles").is_dir()
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_every_command_and_option_is_documented():
    ctx = click.Context(cli)
    for name, command in cli.commands.items():
        assert f"newsgraph {name}" in README, name
        assert command.help, f"{name} has no help text"
        for param in command.get_params(ctx):
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in README, f"newsgraph {name} {opt}"


def help_exit_statuses(command: str) -> dict[int, str]:
    """The exit statuses ``newsgraph COMMAND --help`` lists, as it shows them
    (a meaning wrapped over several lines joined)."""
    text = CliRunner().invoke(cli, [command, "--help"]).output
    listed = re.split(r"\n\s*Exit status:\n", text)[-1] if "Exit status:" in text else ""
    statuses: dict[int, str] = {}
    code = None
    for line in listed.splitlines():
        if match := re.fullmatch(r"\s+(\d+)\s\s(.*)", line):
            code = int(match[1])
            statuses[code] = match[2]
        elif line.strip() and code is not None:
            statuses[code] += " " + line.strip()
        else:
            break
    return statuses


def test_exit_statuses_in_the_readme_are_those_each_command_s_help_lists():
    rows = re.findall(r"^\| `newsgraph (\w+)` \| `(\d+)` \| (.*?) \|$", README, flags=re.M)
    documented: dict[str, dict[int, str]] = {}
    for command, code, meaning in rows:
        documented.setdefault(command, {})[int(code)] = meaning.replace("`", "")
    helped = {name: help_exit_statuses(name) for name in cli.commands}
    assert documented == {name: codes for name, codes in helped.items() if codes}
    for name, section in (("load", "Loading"), ("serve", "Serving")):
        # What each command's own section says, by code.
        text = README[README.index(f"\n## {section}\n") :]
        prose = re.search(
            r"Exit status \(see\s+\[Exit codes\]\(#exit-codes\)\):(.*?)\.\n", text, re.S
        )
        assert prose, name
        assert set(map(int, re.findall(r"`(\d)`", prose[1]))) == set(documented[name]), name


def test_the_commands_that_use_the_store_say_how_it_is_chosen():
    for name in ("load", "serve", "facets"):
        text = CliRunner().invoke(cli, [name, "--help"]).output
        assert "MONGODB_URI" in text and "embedded" in text, name


def test_every_setting_is_in_the_configuration_table():
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|", README, flags=re.M))
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        name = ENV_NAMES[field.name]
        assert name in rows, name
        default = getattr(defaults, field.name)
        if default not in ("", None):
            shown = str(default).lower() if isinstance(default, bool) else str(default)
            assert f"`{shown}`" in rows[name], (name, rows[name], default)


@pytest.mark.parametrize("query", blocks("graphql"), ids=lambda q: re.findall(r"\w+", q)[0])
def test_every_example_query_runs_and_finds_something(gql, query):
    data = gql(query)

    def lists(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from lists(v)
        elif isinstance(value, list):
            yield value
            for v in value:
                yield from lists(v)

    assert all(v is not None for v in data.values()), data
    assert any(len(found) > 0 for found in lists(data)), data
