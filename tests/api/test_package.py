"""The ``api`` package's docstring stays true: it names each of its modules."""

from __future__ import annotations

from pathlib import Path

import api


def test_the_package_docstring_names_every_module() -> None:
    modules = {path.stem for path in Path(api.__file__).parent.glob("*.py")} - {"__init__"}
    unnamed = {name for name in modules if f"``{name}``" not in (api.__doc__ or "")}
    assert not unnamed, f"api/__init__.py does not say what these are: {sorted(unnamed)}"
