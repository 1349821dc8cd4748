"""What gets installed is pinned: constraints.txt names an exact version of every
dependency, each within pyproject's bounds, and every install path uses it.
And what gets installed is what is needed: `pip install .` (the image) gets the
product whole, every package and subpackage, with every library it imports and
none of the test tools, which the `test` extra (scripts/install) adds."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.test_layers import imported

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIND = PROJECT["tool"]["setuptools"]["packages"]["find"]
#: The product's top-level packages.
PACKAGES = [pattern for pattern in FIND["include"] if "." not in pattern and "*" not in pattern]


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
    assert '".[test]"' in install and '"."' in install  # everything, or --product


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


def test_the_product_declares_every_library_it_imports() -> None:
    product = {canonicalize_name(Requirement(r).name) for r in PROJECT["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    for module, where in product_imports().items():
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists & product, (
            f"{where} imports {module} ({dists or 'not installed'}), "
            "which is not among pyproject's dependencies"
        )


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
