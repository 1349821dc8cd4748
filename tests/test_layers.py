"""Dependencies point one way: ``core`` <- ``api``, ``loaders`` <- ``newsgraph``.

``bench`` and ``tests`` sit on top; what both need (a wire server, free ports, a
live Uvicorn) lives in ``testing``, which either may import; neither imports the
other. Read from the
source with ``ast`` (no imports run), so an import added inside a function
counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "api", "loaders", "newsgraph", "testing", "bench", "tests")

#: What each package may import of the project's own packages.
ALLOWED = {
    "core": set(),
    "api": {"core"},
    "loaders": {"core"},
    "newsgraph": {"core", "api", "loaders"},
    "testing": {"core", "api", "loaders", "newsgraph"},
    "bench": {"core", "api", "loaders", "newsgraph", "testing"},
    "tests": {"core", "api", "loaders", "newsgraph", "testing", "bench"},
}


def imported(path: Path) -> set[str]:
    """The top-level modules that one module imports absolutely, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names}
    return found


def project_imports(path: Path) -> set[str]:
    """The project packages that one module imports, anywhere in it."""
    return imported(path) & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if "node_modules" not in path.parts
        and (bad := project_imports(path) - ALLOWED[package] - {package})
    }
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}: {sorted(wrong)}"


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from api.app import create_app\n    import loaders.read\n")
    assert project_imports(module) == {"api", "loaders"}
