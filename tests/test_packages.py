"""Each package's docstring stays true: it names each of its modules and
subpackages, so the tree can be read from the docstrings without drifting."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("core", "api", "loaders", "newsgraph")
PACKAGES = sorted(p.parent for top in PRODUCT for p in (ROOT / top).rglob("__init__.py"))


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_package_docstring_names_every_module(package: Path) -> None:
    doc = (package / "__init__.py").read_text()
    parts = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    parts |= {p.parent.name for p in package.glob("*/__init__.py")}
    unnamed = {name for name in parts if f"``{name}``" not in doc}
    assert not unnamed, f"{package}/__init__.py does not say what these are: {sorted(unnamed)}"
