"""The schema file in the repo is the schema the code builds."""

from pathlib import Path

from click.testing import CliRunner

from api.operation.schema import sdl
from newsgraph.cli import cli

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "api" / "schema" / "schema.graphql"


def test_schema_file_matches_the_code():
    assert SCHEMA_FILE.read_text() == sdl(), (
        "api/schema/schema.graphql is stale: run "
        "`newsgraph schema > api/schema/schema.graphql` and review the diff "
        "(contract fields may be added, never renamed)"
    )


def test_schema_command_prints_the_sdl():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0 and result.output == sdl()


def test_contract_names_are_present():
    text = sdl()
    for name in (
        "type Article",
        "type RelatedStory",
        "type Provider",
        "type Topic",
        "type Image",
        "input ArticleFilter",
        "enum ArticleOrder",
        "scalar DateTime",
        "articles(filter: ArticleFilter",
        "article(id: ID",
        "provider(domain: String!)",
        "topic(name: String!)",
        "totalCount: Int!",
        "endCursor: String",
    ):
        assert name in text, name
    assert "secured" not in text
