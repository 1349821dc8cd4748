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


# -- inside api: packages in layers, and no import circles --------------------

#: api's packages from the client inwards: each may import those after it, and
#: the base modules; ``api.app`` assembles them all.
API_LAYERS = ("http", "operation", "execution", "schema", "live", "data", "telemetry")
API_BASE = {"errors", "bounded"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules one module imports, anywhere in it (under
    ``TYPE_CHECKING`` and inside functions too): ``from a.b import c`` names
    ``a.b.c`` when that is a module, else ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if n in modules else node.module for n in names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def api_graph() -> dict[str, set[str]]:
    paths = [p for p in (ROOT / "api").rglob("*.py") if "node_modules" not in p.parts]
    modules = {module_name(p) for p in paths}
    return {module_name(p): module_imports(p, modules) - {module_name(p)} for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_api_has_no_import_circles() -> None:
    # A package's __init__ importing its own modules is how it exposes them,
    # not a circle; those edges are left out.
    graph = {
        m: {
            i
            for i in imports
            if not (i.startswith(m + ".") and (ROOT / m.replace(".", "/")).is_dir())
        }
        for m, imports in api_graph().items()
    }
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_api_packages_import_only_inwards() -> None:
    wrong = []
    for module, imports in sorted(api_graph().items()):
        here = layer(module)
        if here not in API_LAYERS:
            continue  # api itself, api.app and the base modules
        allowed = set(API_LAYERS[API_LAYERS.index(here) :]) | API_BASE
        wrong += [f"{module} imports {i}" for i in sorted(imports) if layer(i) not in allowed]
    assert not wrong, f"api's packages import inwards only ({' -> '.join(API_LAYERS)}): {wrong}"


def test_the_base_modules_import_no_package() -> None:
    graph = api_graph()
    wrong = {m: imports for m in API_BASE if (imports := graph[f"api.{m}"])}
    assert not wrong
