"""What a load did: counts, every file that failed and every file skipped, with
its reason.

A file *fails* when its content or permissions keep it out (fix the file); it
is *skipped* when it is not an article file to read at all, or not one right
now: a FIFO, socket or device (never opened), or a file that vanished or kept
changing while it was read (load again once it has settled). Either makes the
report not ``ok``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from loaders.paths import printable


@dataclass(frozen=True)
class Failure:
    """A file that was not loaded, and why. ``path`` is the path's text
    (``loaders.paths.path_text``): one line, valid UTF-8, unambiguous."""

    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        """``path:line: reason``, the one way a failure is written; on one line
        whatever the reason quotes from the file."""
        where = f"{self.path}:{self.line}" if self.line else self.path
        return printable(f"{where}: {self.reason}")

    def to_dict(self) -> dict[str, Any]:
        return {"path": printable(self.path), "reason": printable(self.reason), "line": self.line}


@dataclass
class LoadReport:
    store: str = ""
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Articles deleted because their source file is gone (--prune, --watch).
    deleted: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: Files not read: not regular files, or gone or changing when read.
    skips: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    #: Set when the run stopped early (the store went away); files after the
    #: last written batch were not attempted.
    aborted: str | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def skipped(self) -> int:
        return len(self.skips)

    @property
    def files(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.failed + self.skipped

    @property
    def ok(self) -> bool:
        return not self.failures and not self.skips and self.aborted is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [f.to_dict() for f in self.failures]
        data["skips"] = [s.to_dict() for s in self.skips]
        data["failed"] = self.failed
        data["skipped"] = self.skipped
        data["files"] = self.files
        return data


def render(report: LoadReport, console: Console) -> None:
    """The closing summary a person reads: counts, then each failure and skip."""
    rate = f" ({report.files / report.seconds:,.0f} files/s)" if report.seconds > 0 else ""
    console.print(f"Loaded into {report.store} in {report.seconds:.2f}s{rate}", highlight=False)
    table = Table(show_header=False, box=None, padding=(0, 1, 0, 2))
    for label, count, style in (
        ("inserted", report.inserted, "green"),
        ("updated", report.updated, "cyan"),
        ("unchanged", report.unchanged, "dim"),
        *((("deleted", report.deleted, "yellow"),) if report.deleted else ()),
        ("failed", report.failed, "red" if report.failed else "dim"),
        *((("skipped", report.skipped, "yellow"),) if report.skipped else ()),
    ):
        table.add_row(label, f"[{style}]{count:,}[/]")
    console.print(table)
    for label, style, failures in (
        ("FAILED", "red", report.failures),
        ("SKIPPED", "yellow", report.skips),
    ):
        for failure in failures:
            # Text, not markup: a path or reason may hold brackets such as "[red]".
            line = Text.assemble((label, style), " ", str(failure))
            console.print(line, highlight=False, soft_wrap=True)
    if report.aborted:
        console.print(f"[red]STOPPED[/] {report.aborted}", soft_wrap=True)
