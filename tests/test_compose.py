"""docker-compose.yml wires mongo, the one-shot loader and the API as documented."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_their_order():
    services = COMPOSE["services"]
    assert set(services) == {"mongo", "loader", "api"}
    assert services["mongo"]["image"].startswith("mongo:")
    assert "mongosh" in str(services["mongo"]["healthcheck"]["test"])
    assert any(v.endswith(":/data/db") for v in services["mongo"]["volumes"])
    assert services["loader"]["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert "newsgraph load /articles" in " ".join(services["loader"]["command"])
    api = services["api"]
    assert api["depends_on"]["loader"]["condition"] == "service_completed_successfully"
    assert api["environment"]["MONGODB_URI"] == services["loader"]["environment"]["MONGODB_URI"]
    assert api["ports"] == ["127.0.0.1:8000:8000"]


def test_the_image_runs_the_api_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER newsgraph" in dockerfile and "HEALTHCHECK" in dockerfile
    assert '"newsgraph", "serve"' in dockerfile


def test_docker_compose_accepts_the_file():
    docker = shutil.which("docker")
    if (
        not docker
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0
    ):
        pytest.skip("the docker compose plugin is not installed here")
    done = subprocess.run(
        [docker, "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_image_serves_graphiql_from_the_npm_packages_it_installs():
    from api.http.explorer import ASSETS

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "NEWSGRAPH_GRAPHIQL_ASSETS=/app/graphiql" in dockerfile
    assert "COPY api/http/graphiql/package.json api/http/graphiql/package-lock.json" in dockerfile
    for relative in ASSETS.values():
        assert f"/graphiql/node_modules/{relative}" in dockerfile
        assert f"/app/graphiql/{Path(relative).parent}/" in dockerfile
