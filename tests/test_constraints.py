"""What gets installed is pinned: constraints.txt names an exact version of every
dependency, each within pyproject's bounds, and every install path uses it.
And what gets installed is what is needed: `pip install .` (the image) gets the
product whole, every package and subpackage, with every library it imports and
none of the test tools, which the `test` extra (scripts/install) adds. A
library of an optional extra of the product's (``otel``) is imported only when
asked for: the product imports and serves without it."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.test_layers import imported

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIND = PROJECT["tool"]["setuptools"]["packages"]["find"]
#: The product's top-level packages.
PACKAGES = [pattern for pattern in FIND["include"] if "." not in pattern and "*" not in pattern]
#: Extras that are options of the product (not tools): what they bring may be
#: imported, but only when the option is asked for.
OPTIONAL = ("otel",)


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a constraints file, by canonical name."""
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            found[canonicalize_name(name)] = version
    return found


def declared() -> list[Requirement]:
    project = PROJECT["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def test_every_dependency_is_pinned_within_its_bounds() -> None:
    pinned = pins((ROOT / "constraints.txt").read_text())
    for req in declared():
        version = pinned.get(canonicalize_name(req.name))
        assert version, f"{req.name} is in pyproject.toml but not in constraints.txt"
        assert req.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {req.name}=={version}, outside pyproject's {req.specifier}"
        )


def test_the_pin_check_reads_a_file_as_meant() -> None:
    assert pins("# note\nfoo==1.2  # why\nBar_Baz==3\n") == {"foo": "1.2", "bar-baz": "3"}


def test_every_install_path_uses_the_constraints() -> None:
    install = (ROOT / "scripts" / "install").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt", install)
    assert re.search(r"pip install .*-c constraints\.txt", dockerfile)
    assert re.search(r"^COPY .*constraints\.txt", dockerfile, re.M)


def test_the_image_installs_the_product_and_scripts_install_adds_the_tools() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (target,) = re.findall(r"pip install .*-c constraints\.txt (\S+)", dockerfile)
    assert target == "."  # the product, without the test extra
    install = (ROOT / "scripts" / "install").read_text()
    # everything (the tools, and the options whose tests they run), or --product
    assert '".[test,otel]"' in install and '"."' in install


def test_the_image_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert PACKAGES == ["core", "api", "loaders", "newsgraph"]
    for package in PACKAGES:
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.M), package


def test_every_subpackage_is_installed() -> None:
    # setuptools installs the packages whose dotted names match an include
    # pattern; a folder without an __init__.py is not one (namespaces off).
    assert FIND.get("namespaces") is False
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            if "node_modules" in init.parts:
                continue
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert any(fnmatch.fnmatchcase(name, p) for p in FIND["include"]), name


def product_imports() -> dict[str, str]:
    """The third-party top-level modules the product's code imports, each
    with a file that imports it."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            for top in imported(path) - set(sys.stdlib_module_names) - set(PACKAGES):
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution that installing ``requirements`` installs, by
    canonical name, read from the installed packages' metadata."""
    seen: set[str] = set()
    todo = [(r, set(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for text in importlib.metadata.requires(req.name) or []:
            dep = Requirement(text)
            if dep.marker is None or any(
                dep.marker.evaluate({"extra": extra}) for extra in ["", *extras]
            ):
                todo.append((dep, set(dep.extras)))
    return {key.partition("[")[0] for key in seen}


def optional_libraries() -> set[str]:
    """The distributions the product's optional extras name."""
    extras = PROJECT["project"]["optional-dependencies"]
    return {canonicalize_name(Requirement(r).name) for name in OPTIONAL for r in extras[name]}


def test_the_product_declares_every_library_it_imports() -> None:
    product = {canonicalize_name(Requirement(r).name) for r in PROJECT["project"]["dependencies"]}
    optional = optional_libraries()
    providers = importlib.metadata.packages_distributions()
    for module, where in product_imports().items():
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists & (product | optional), (
            f"{where} imports {module} ({dists or 'not installed'}), "
            "which is not among pyproject's dependencies or its optional extras"
        )


def optional_modules() -> set[str]:
    """The top-level modules only the optional extras provide."""
    optional = optional_libraries()
    return {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if {canonicalize_name(d) for d in dists} & optional
        and not {canonicalize_name(d) for d in dists} - closure([Requirement(o) for o in optional])
    }


#: Run in a fresh interpreter: the optional extras' modules hidden, as if not
#: installed; every product module imported, and the app made and asked a query
#: with tracing asked for by the environment.
WITHOUT_EXTRAS = """
import importlib, logging, pkgutil, sys
hidden = set(sys.argv[1].split(","))

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
logging.basicConfig(level=logging.WARNING)
for package in sys.argv[2].split(","):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not info.name.endswith(".__main__"):  # runs a command when imported
            importlib.import_module(info.name)
from starlette.testclient import TestClient
from api.app import create_app
with TestClient(create_app()) as client:
    response = client.post("/graphql", json={"query": "{ articles(first: 1) { totalCount } }"})
assert response.status_code == 200 and "errors" not in response.json(), response.text
assert not hidden & {m.partition(".")[0] for m in sys.modules}
print("served")
"""


def test_the_product_imports_and_serves_without_its_optional_extras() -> None:
    hidden = optional_modules()
    if not hidden:
        pytest.skip("the optional extras are not installed: nothing to hide")
    assert "opentelemetry" in hidden
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MONGODB_", "NEWSGRAPH_"))
    }
    env["OTEL_TRACES_EXPORTER"] = "console"  # asked for, and not there
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, ",".join(sorted(hidden)), ",".join(PACKAGES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "served"
    assert "tracing is off: No module named 'opentelemetry" in run.stderr


def test_the_product_installs_none_of_the_test_tools() -> None:
    product = closure([Requirement(r) for r in PROJECT["project"]["dependencies"]])
    tools = {
        canonicalize_name(Requirement(r).name)
        for r in PROJECT["project"]["optional-dependencies"]["test"]
    }
    assert not tools & product, f"pip install . would install {tools & product}"
    for tool in ("pytest", "mypy", "ruff", "playwright", "schemathesis", "hypothesis"):
        assert tool not in product, tool
    # The closure is read right: it holds what the product's packages need.
    assert {"strawberry-graphql", "graphql-core", "pymongo", "dnspython", "h11"} <= product
