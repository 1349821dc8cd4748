"""docs/request-path.md stays true: the modules it names exist, and the
pipeline's steps are the ones it lists, in its order."""

from __future__ import annotations

import re
from pathlib import Path

from api.operation.schema import build_schema

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "request-path.md").read_text()


def test_every_module_it_names_exists() -> None:
    named = set(re.findall(r"`(api/[\w/]+(?:\.py)?)`", DOC))
    assert len(named) > 20
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing


def test_it_lists_the_pipelines_steps_in_order() -> None:
    section = DOC.split("## 2.")[1].split("## 3.")[0]
    listed = re.findall(r"^\d+\. `(\w+)`", section, re.M)
    pipeline = build_schema().pipeline
    assert listed == [type(step).__name__ for step in pipeline.steps]
    after = DOC.split("## 3.")[1].split("## 4.")[0]
    assert re.findall(r"^\d+\. `(\w+)`", after, re.M) == [
        type(step).__name__ for step in pipeline.finish
    ]
