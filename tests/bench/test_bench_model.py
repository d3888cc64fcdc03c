"""The benchmark model, statistics, selection and report formatting (no processes)."""

from __future__ import annotations

import pytest

from hub.bench.model import Benchmark, Params, Target, reference, resolve
from hub.bench.report import markdown, rows
from hub.bench.results import BenchResult, RoundFigure, SideResult, SizeResult, SuiteResult
from hub.bench.runner import BenchError, select
from tests.bench import bench_fakes


def bench(name: str = "demo.count", **kw: object) -> Benchmark:
    """A valid benchmark of the fake cases, with overrides."""
    args: dict[str, object] = {
        "name": name,
        "title": "Counting",
        "unit": "item",
        "path": bench_fakes.CountingCase,
        "floor": bench_fakes.CountingCase,
        "floor_title": "counting again",
        "sizes": {"small": (10, 20)},
    }
    args.update(kw)
    return Benchmark(**args)  # type: ignore[arg-type]


def test_bench_callables_must_be_importable_by_name() -> None:
    with pytest.raises(ValueError, match="module-level"):
        bench(path=lambda p: bench_fakes.CountingCase(p))
    ref = reference(bench_fakes.CountingCase)
    assert ref == "tests.bench.bench_fakes:CountingCase"
    assert resolve(ref) is bench_fakes.CountingCase


def test_bench_rejects_bad_names_and_sizes() -> None:
    with pytest.raises(ValueError, match="without spaces"):
        bench(name="two words")
    with pytest.raises(ValueError, match="unknown size profile 'huge'"):
        bench(sizes={"huge": (1,)})
    with pytest.raises(ValueError, match="must be positive"):
        bench(sizes={"small": ()})


def test_bench_sizes_fall_back_to_the_nearest_profile() -> None:
    b = bench(sizes={"tiny": (1,), "small": (10, 20)})
    assert b.sizes_for("tiny") == (1,)
    assert b.sizes_for("medium") == (10, 20)
    assert b.sizes_for("large") == (10, 20)
    assert bench(sizes={"large": (5,)}).sizes_for("tiny") == (5,)
    with pytest.raises(ValueError, match="unknown size profile"):
        b.sizes_for("enormous")


def test_bench_params_round_trip_as_json(tmp_path: object) -> None:
    from pathlib import Path

    p = Params(3, Path("/d"), Path("/w"), seed=9, options={"pg_url": "postgresql://x/y"})
    assert Params.from_json(p.to_json()) == p


def test_bench_target_in_words() -> None:
    assert Target(min_rate=3000, min_ratio=0.35).describe("msg") == "≥ 3,000 msg/s, ≥ 35% of floor"
    assert Target(max_peak_rss_mb=400).describe("row") == "peak RSS < 400 MB"
    assert Target().describe("x") == "—"


def side(*rates: float, peak_mb: int = 50) -> SideResult:
    """A side whose rounds did 100 items at the given rates."""
    return SideResult([RoundFigure(100, 100 / r) for r in rates], peak_rss_kb=peak_mb * 1024)


def test_bench_median_spread_and_paired_ratio() -> None:
    path = side(90, 100, 110)
    floor = side(200, 180, 220)
    assert path.median_rate == pytest.approx(100)
    assert path.spread == pytest.approx(0.2)
    assert path.us_per_item == pytest.approx(10_000)
    size = SizeResult(100, path=path, floor=floor)
    # per round: 0.45, 0.5556, 0.5 -> median 0.5
    assert size.ratio == pytest.approx(0.5)


def test_bench_targets_are_checked_per_size() -> None:
    size = SizeResult(100, path=side(100, peak_mb=500), floor=side(150))
    size.check(Target(min_rate=50, min_ratio=0.5, max_peak_rss_mb=400))
    verdicts = {c.what: c.met for c in size.checks}
    assert verdicts == {"rate": True, "ratio": True, "peak_rss_mb": False}
    assert size.met is False
    data = size.to_json()
    assert data["peak_rss_mb"] == 500.0
    assert data["ratio"] == pytest.approx(0.6667, abs=1e-3)
    assert data["met"] is False


def test_bench_growth_compares_smallest_and_largest_size() -> None:
    result = BenchResult("demo.count", "Counting", "item", "floor", Target())
    result.sizes = [
        SizeResult(10, path=side(100, peak_mb=50)),
        SizeResult(100, path=side(50, peak_mb=60)),
    ]
    growth = result.growth()
    assert growth is not None
    assert growth["cost_per_item_growth"] == pytest.approx(2.0)
    assert growth["peak_rss_growth_mb"] == pytest.approx(10.0)


def test_bench_select_by_name_or_prefix() -> None:
    benches = [bench("hl7.a"), bench("hl7.b"), bench("gate.decide")]
    assert [b.name for b in select(benches, ["hl7"])] == ["hl7.a", "hl7.b"]
    assert [b.name for b in select(benches, ["gate.decide", "hl7.b"])] == ["hl7.b", "gate.decide"]
    assert select(benches, []) == benches
    with pytest.raises(BenchError, match="no benchmark named 'nope'"):
        select(benches, ["nope"])


def test_bench_markdown_table_has_a_row_per_size() -> None:
    result = BenchResult("demo.count", "Counting", "item", "floor", Target(min_rate=10))
    size = SizeResult(100, path=side(100), floor=side(200))
    size.check(result.target)
    result.sizes = [size, SizeResult(1000, status="skipped", reason="no server")]
    suite = SuiteResult("small", 3, {"nproc": 2}, "2026-01-01T00:00:00+00:00")
    suite.benchmarks = [result]
    table = rows(suite)
    assert table[0][:5] == ["demo.count", "100", "100 ±0%", "200 ±0%", "50%"]
    assert table[0][-1] == "yes"
    assert table[1][-1] == "skipped"
    text = markdown(suite)
    assert text.count("\n| demo.count |") == 2
    assert "≥ 10 item/s" in text
