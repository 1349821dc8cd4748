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


def public_definitions(path: Path) -> set[str]:
    """The public classes and constants a module defines (not imports)."""
    import ast

    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "TypeVar":
                continue  # a type variable is local to its module's signatures
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            continue
        found |= {n for n in names if not n.startswith("_") and (n[0].isupper())}
    return found


def test_no_two_public_classes_or_constants_in_api_share_a_name() -> None:
    """Two ``Budget``s or two ``MAX_ID_LENGTH``s with different meanings send a
    reader to the wrong one."""
    where: dict[str, list[str]] = {}
    for path in sorted((ROOT / "api").rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for name in public_definitions(path):
            where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    shared = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not shared
