"""Benchmark rows, their targets, and the table and JSON they are reported as."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

#: scenario -> (comparison, bound): ratio <= bound ("max") or >= bound ("min")
TARGETS: dict[str, tuple[str, float]] = {
    "front_page": ("max", 2.0),
    "mobile": ("max", 2.0),
    "filtered": ("max", 2.0),
    # "execution" (a resolver per field: the fallback for what plans do not
    # cover) is reported beside graphql-core's execute, with no target.
    "execution_compiled": ("max", 0.15),
    # The server as deployed (answers kept), asked the same query again and
    # again; "cpu_compiled" (every answer made) is reported, with no target.
    "cpu_kept": ("max", 2.0),
    "throughput": ("min", 0.5),
    "load": ("min", 0.8),
    "embedded_load_growth": ("min", 0.8),
    "reload": ("max", 0.05),
    "growth": ("max", 1.1),
    "rss_loader_growth": ("max", 1.2),
    "rss_server": ("max", 200.0),
    # /healthz and /readyz p99 (ms) while the store is busy (bench/busy.py).
    "healthz_busy": ("max", 50.0),
    # Against the same server untraced (bench/cpu.py, --tracing).
    "cpu_traced": ("max", 1.05),
    "cpu_compiled_traced": ("max", 1.05),
    # serve --workers 2 (bench/fleet.py): a worker's RSS (MiB), as one server's;
    # hash-only hits over the most possible, registrations shared in the store.
    "fleet_rss_worker": ("max", 200.0),
    "fleet_apq_shared": ("min", 0.95),
    # The same head-sampled, requests as roots (--tracing-sampler RATIO).
    "cpu_sampled": ("max", 1.05),
    "cpu_compiled_sampled": ("max", 1.05),
}


@dataclass
class Row:
    scenario: str
    size: int
    engine: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    limit_p50_ms: float | None = None
    ratio: float | None = None
    target: str | None = None
    passed: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.p50_ms is not None and self.limit_p50_ms:
            self.ratio = self.p50_ms / self.limit_p50_ms
        rule = TARGETS.get(self.scenario)
        if rule and self.ratio is not None:
            kind, bound = rule
            self.target = f"{'<=' if kind == 'max' else '>='} {bound:g}"
            self.passed = self.ratio <= bound if kind == "max" else self.ratio >= bound

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["pass"] = data.pop("passed")
        data.update(data.pop("extra"))
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in data.items()}


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return statistics.median(ordered), p99


#: Rows of the ``cpu`` scenario (bench/cpu.py), shown in a table of their own:
#: CPU per request, not latency.
CPU_SCENARIOS = ("cpu_kept", "cpu_compiled", "cpu", "cpu_bare", "cpu_floor")
#: Those with tracing on (``--tracing``), each against its untraced twin.
TRACED_SCENARIOS = ("cpu_compiled_traced", "cpu_traced")
#: Those head-sampled at a ratio (``--tracing-sampler``), against the same twins.
SAMPLED_SCENARIOS = ("cpu_compiled_sampled", "cpu_sampled")


def render(rows: list[Row], console: Console | None = None) -> None:
    console = console or Console(width=140)
    timed = [
        row
        for row in rows
        if row.scenario not in CPU_SCENARIOS + TRACED_SCENARIOS + SAMPLED_SCENARIOS
    ]
    if timed or not rows:
        _render_timed(timed, console)
    cpu = [row for row in rows if row.scenario in CPU_SCENARIOS]
    if cpu:
        _render_cpu(cpu, console)
    traced = [row for row in rows if row.scenario in TRACED_SCENARIOS + SAMPLED_SCENARIOS]
    if traced:
        _render_traced(traced, console)


def _render_timed(rows: list[Row], console: Console) -> None:
    table = Table(title="newsgraph benchmark", title_justify="left")
    for column in (
        "scenario",
        "size",
        "engine",
        "p50 ms",
        "p99 ms",
        "limit p50 ms",
        "ratio",
        "target",
        "result",
    ):
        table.add_column(
            column, justify="right" if column not in ("scenario", "engine", "result") else "left"
        )
    for row in rows:
        result = {True: "[green]pass[/]", False: "[red]short[/]", None: ""}[row.passed]
        table.add_row(
            row.scenario,
            f"{row.size:,}",
            row.engine,
            _num(row.p50_ms),
            _num(row.p99_ms),
            _num(row.limit_p50_ms),
            _num(row.ratio, 3),
            row.target or "",
            result,
        )
    console.print(table)
    for row in rows:
        if "skipped" in row.extra:
            console.print(f"{row.scenario} at {row.size:,}: {row.extra['skipped']}")


def _cpu_table(title: str, columns: tuple[str, ...]) -> Table:
    """A table of the cpu scenario's rows: scenario and query, then figures."""
    table = Table(title=title, title_justify="left")
    for column in ("scenario", "query", *columns):
        name = column in ("scenario", "query")
        table.add_column(column, justify="left" if name else "right", no_wrap=name)
    return table


def _render_cpu(rows: list[Row], console: Console) -> None:
    get = any(row.extra.get("method") == "GET" for row in rows)
    sizes = ", ".join(f"{size:,}" for size in sorted({row.size for row in rows}))
    table = _cpu_table(
        f"server CPU per request (one Uvicorn worker, store stubbed, answers from {sizes} "
        "articles" + (", queries sent as GET)" if get else ")"),
        (
            "cpu ms/req",
            "bare ms/req",
            "ratio",
            "by round",
            "spread",
            "server busy",
            "load busy",
            "waits/req",
            "requests",
            "kept",
        ),
    )
    for row in rows:
        extra = row.extra
        low, high = extra.get("ratio_spread", (None, None))
        kept = extra.get("answers_kept_share")
        bare = row.scenario == "cpu_bare"  # its ratios are all 1
        table.add_row(
            row.scenario,
            extra.get("query", ""),
            _num(extra.get("cpu_ms_per_request"), 3),
            _num(extra.get("bare_cpu_ms_per_request"), 3),
            _num(row.ratio, 2),
            "" if bare else _num(extra.get("ratio_rounds_median"), 2),
            "" if bare or low is None else f"{_num(low, 2)}–{_num(high, 2)}",
            _num(extra.get("server_busy"), 2),
            _num(extra.get("client_busy"), 2),
            _num(extra.get("server_waits_per_request"), 3),
            f"{extra.get('requests', 0):,}",
            "" if kept is None else _num(kept, 2),
        )
    console.print(table)


def _render_traced(rows: list[Row], console: Console) -> None:
    table = _cpu_table(
        "tracing's cost: server CPU per request, traced / untraced",
        (
            "cpu ms/req",
            "untraced ms/req",
            "ratio (median)",
            "spread",
            "sampled",
            "spans/req",
            "target",
            "result",
        ),
    )
    for row in rows:
        extra = row.extra
        low, high = extra.get("ratio_spread", (None, None))
        table.add_row(
            row.scenario,
            extra.get("query", ""),
            _num(extra.get("cpu_ms_per_request"), 3),
            _num(extra.get("untraced_cpu_ms_per_request"), 3),
            _num(row.ratio, 3),
            f"{_num(low, 3)}–{_num(high, 3)}",
            _num(extra.get("sampler_ratio"), 2),
            _num(
                extra.get("server_spans_exported", 0) / max(extra.get("server_requests", 0), 1), 2
            ),
            row.target or "",
            {True: "[green]pass[/]", False: "[red]short[/]", None: ""}[row.passed],
        )
    console.print(table)


def write_json(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([r.to_json() for r in rows], indent=1) + "\n")


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"
