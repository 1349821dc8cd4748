"""What a load did: counts, and every file that failed with its reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        """``path:line: reason``, the one way a failure is written."""
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


@dataclass
class LoadReport:
    store: str = ""
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Articles deleted because their source file is gone (--prune, --watch).
    deleted: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    #: Set when the run stopped early (the store went away); files after the
    #: last written batch were not attempted.
    aborted: str | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def files(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.failed

    @property
    def ok(self) -> bool:
        return not self.failures and self.aborted is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = self.failed
        data["files"] = self.files
        return data


def render(report: LoadReport, console: Console) -> None:
    """The closing summary a person reads: counts, then each failure."""
    rate = f" ({report.files / report.seconds:,.0f} files/s)" if report.seconds > 0 else ""
    console.print(f"Loaded into {report.store} in {report.seconds:.2f}s{rate}", highlight=False)
    table = Table(show_header=False, box=None, padding=(0, 1, 0, 2))
    for label, count, style in (
        ("inserted", report.inserted, "green"),
        ("updated", report.updated, "cyan"),
        ("unchanged", report.unchanged, "dim"),
        *((("deleted", report.deleted, "yellow"),) if report.deleted else ()),
        ("failed", report.failed, "red" if report.failed else "dim"),
    ):
        table.add_row(label, f"[{style}]{count:,}[/]")
    console.print(table)
    for failure in report.failures:
        # Text, not markup: a path or reason may hold brackets such as "[red]".
        line = Text.assemble(("FAILED", "red"), " ", str(failure))
        console.print(line, highlight=False, soft_wrap=True)
    if report.aborted:
        console.print(f"[red]STOPPED[/] {report.aborted}", soft_wrap=True)
