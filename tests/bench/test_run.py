"""When the benchmark runs throughput."""

from __future__ import annotations

from bench.loading import embedded_load_growth
from bench.report import Row
from bench.run import _too_slow_for_throughput


def front_page(limit_ms: float, size: int = 1000) -> Row:
    return Row("front_page", size, "wire", p50_ms=limit_ms, limit_p50_ms=limit_ms)


def test_throughput_runs_when_every_client_can_get_answers() -> None:
    assert _too_slow_for_throughput([front_page(100)], 1000, clients=32, seconds=30) == ""


def test_throughput_is_skipped_with_the_reason_when_the_store_is_too_slow() -> None:
    why = _too_slow_for_throughput([front_page(4_500)], 1000, clients=32, seconds=30)
    assert "4.5s" in why and "32 clients" in why


def test_only_the_same_size_counts() -> None:
    rows = [front_page(4_500, size=100_000)]
    assert _too_slow_for_throughput(rows, 1000, clients=32, seconds=30) == ""


def load(size: int, files_per_s: float, engine: str = "embedded") -> Row:
    return Row("load", size, engine, ratio=1.0, extra={"articles_per_s": files_per_s})


def test_embedded_load_growth_compares_the_largest_size_with_the_smallest() -> None:
    rows = [load(2_000, 700.0), load(20_000, 560.0)]
    (row,) = embedded_load_growth(rows, [2_000, 20_000], "embedded")
    assert (row.size, row.extra["from_size"], row.ratio) == (20_000, 2_000, 0.8)
    assert row.passed and row.target == ">= 0.8"
    assert not embedded_load_growth(
        [load(2_000, 700.0), load(20_000, 80.0)], [2_000, 20_000], "embedded"
    )[0].passed


def test_embedded_load_growth_needs_two_sizes_on_the_embedded_engine() -> None:
    rows = [load(2_000, 700.0, "wire"), load(20_000, 560.0, "wire")]
    assert embedded_load_growth(rows, [2_000, 20_000], "wire") == []
    assert embedded_load_growth(rows[:1], [2_000], "embedded") == []


def test_the_fleet_scenario_is_a_command_and_a_part_of_run(monkeypatch) -> None:
    import bench.fleet
    import bench.run
    from bench.__main__ import main

    seen: dict[str, object] = {}
    monkeypatch.setattr(bench.fleet, "run_fleet", lambda args: seen.setdefault("fleet", args))
    monkeypatch.setattr(bench.run, "run", lambda *args: seen.setdefault("run", args))
    assert main(["fleet", "--engine", "embedded", "--requests", "7"]) == 0
    fleet = seen["fleet"]
    assert (fleet.engine, fleet.requests) == ("embedded", 7)  # type: ignore[attr-defined]
    assert main(["run", "--sizes", "200", "--fleet-requests", "0"]) == 0
    assert seen["run"][-1] == 0  # type: ignore[index]


def test_shared_registrations_are_held_to_nearly_every_possible_hit() -> None:
    assert Row("fleet_apq_shared", 12, "wire", ratio=1.0).passed
    assert not Row("fleet_apq_shared", 12, "wire", ratio=0.675).passed
    assert Row("fleet_apq_per_worker", 12, "wire", ratio=0.675).passed is None  # reported


def test_bench_cpu_passes_each_option_to_the_scenario_by_name(monkeypatch, tmp_path) -> None:
    """Three options of one type family (a flag, a ratio, a flag) once met the
    scenario by position, and a merge put a flag where the ratio goes."""
    import bench.run
    from bench.__main__ import main
    from bench.cpu import CLIENTS

    seen: dict[str, object] = {}

    def scenario(*args: object, **kwargs: object) -> list[Row]:
        seen.update(kwargs)
        return []

    monkeypatch.setattr(bench.run, "cpu_scenario", scenario)
    monkeypatch.setattr(bench.run, "load_paths", lambda *a: type("R", (), {"ok": True})())
    monkeypatch.setattr(bench.run, "corpus_for", lambda size, workdir: tmp_path)
    argv = ["cpu", "--size", "10", "--engine", "embedded", "--workdir", str(tmp_path)]
    assert main([*argv, "--get"]) == 0
    assert (seen["tracing"], seen["sampler"], seen["get"]) == (False, None, True)
    assert seen["clients"] == CLIENTS  # the command's default is the scenario's
    assert main([*argv, "--tracing-sampler", "0.1"]) == 0
    assert (seen["sampler"], seen["get"]) == (0.1, False)
