"""What gets installed is pinned: constraints.txt names an exact version of every
dependency, each within pyproject's bounds, and every install path uses it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


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


def test_the_image_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in (
        p.rstrip("*") for p in PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ):
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.M), package
