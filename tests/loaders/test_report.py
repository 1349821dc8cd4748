"""The closing report: a failure is written one way, and literally."""

import io

from rich.console import Console

from loaders.report import Failure, LoadReport, render


def rendered(report: LoadReport, color: bool = False) -> str:
    out = io.StringIO()
    system = "standard" if color else None
    render(report, Console(file=out, width=200, force_terminal=color, color_system=system))
    return out.getvalue()


def test_render_writes_each_failure_as_its_str():
    failures = [Failure("a/b.md", "quality must be a whole number", 9), Failure("c.md", "empty")]
    report = LoadReport(store="db", failures=failures)
    lines = [line for line in rendered(report).splitlines() if line.startswith("FAILED")]
    assert lines == ["FAILED a/b.md:9: quality must be a whole number", "FAILED c.md: empty"]
    assert "\x1b[31mFAILED\x1b[0m a/b.md:9: " in rendered(report, color=True)


def test_brackets_in_a_path_or_reason_print_literally():
    failure = Failure("news/[red]x[/red].md", "title must be text, got '[bold]hi[/]'", 3)
    assert str(failure) == "news/[red]x[/red].md:3: title must be text, got '[bold]hi[/]'"
    assert f"FAILED {failure}\n" in rendered(LoadReport(store="db", failures=[failure]))


def test_a_failure_and_a_skip_are_each_one_line_in_text_and_json():
    report = LoadReport(
        store="db",
        failures=[Failure("a\\nFAILED b.md", "title must be text, got 'x\nFAILED c.md: y'", 2)],
        skips=[Failure("fifo.md", "is a named pipe (FIFO), not a regular file")],
    )
    lines = rendered(report).splitlines()
    assert [line for line in lines if line.startswith(("FAILED", "SKIPPED"))] == [
        "FAILED a\\nFAILED b.md:2: title must be text, got 'x\\nFAILED c.md: y'",
        "SKIPPED fifo.md: is a named pipe (FIFO), not a regular file",
    ]
    assert any(line.split() == ["skipped", "1"] for line in lines)
    data = report.to_dict()
    assert data["failures"][0]["reason"] == "title must be text, got 'x\\nFAILED c.md: y'"
    assert (data["failed"], data["skipped"], data["files"]) == (1, 1, 2)
    assert data["skips"] == [
        {"path": "fifo.md", "reason": "is a named pipe (FIFO), not a regular file", "line": None}
    ]
    assert not report.ok
