"""When the benchmark runs throughput."""

from __future__ import annotations

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
