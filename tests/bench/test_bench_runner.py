"""The runner: child processes per side, alternated rounds, prepare, skips, failures, memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.bench.model import Benchmark
from hub.bench.runner import RunOptions, SuiteRunner
from tests.bench import bench_fakes

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def importable_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child processes import ``tests.bench.bench_fakes`` from the repository root."""
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))


def leftovers(folder: Path) -> list[Path]:
    """What is left in ``folder``."""
    return list(folder.iterdir())


def fake(name: str, path: object, floor: object = bench_fakes.CountingCase) -> Benchmark:
    """A fake benchmark at two tiny sizes."""
    return Benchmark(
        name=name,
        title=name,
        unit="item",
        path=path,  # type: ignore[arg-type]
        floor=floor,  # type: ignore[arg-type]
        floor_title="counting",
        prepare=bench_fakes.prepare_marker,
        sizes={"tiny": (1_000, 2_000)},
    )


async def test_bench_runner_alternates_sides_in_child_processes(tmp_path: Path) -> None:
    messages: list[str] = []
    runner = SuiteRunner(
        RunOptions(profile="tiny", rounds=2, workdir=tmp_path), progress=messages.append
    )
    suite = await runner.run([fake("fake.ballast", bench_fakes.BallastCase)])
    (result,) = suite.benchmarks
    assert result.status == "ok", [s.reason for s in result.sizes]
    assert [s.size for s in result.sizes] == [1_000, 2_000]
    sides = [m.split("] ")[1].split(":")[0] for m in messages if "] " in m]
    assert sides[:4] == ["path round 1", "floor round 1", "path round 2", "floor round 2"]
    for size in result.sizes:
        assert size.path is not None and size.floor is not None
        assert [r.items for r in size.path.rounds] == [size.size, size.size]
        assert size.ratio is not None and size.ratio > 0
        # Each side's peak is its own child's: the path's 64 MB ballast is not the floor's.
        assert size.path.peak_rss_kb - size.floor.peak_rss_kb > 40 * 1024
    assert suite.machine["nproc"] >= 1
    assert leftovers(tmp_path) == []  # scratch space is removed


async def test_bench_runner_reports_skips_and_failures(tmp_path: Path) -> None:
    runner = SuiteRunner(RunOptions(profile="tiny", rounds=1, workdir=tmp_path))
    suite = await runner.run(
        [
            fake("fake.skips", bench_fakes.SkippingCase),
            fake("fake.fails", bench_fakes.FailingCase),
            fake("fake.works", bench_fakes.CountingCase, floor=None),
        ]
    )
    by_name = {b.name: b for b in suite.benchmarks}
    skipped = by_name["fake.skips"]
    assert skipped.status == "skipped"
    assert len(skipped.sizes) == 1  # no point trying the larger size
    assert skipped.sizes[0].reason == "no such server here"
    failed = by_name["fake.fails"]
    assert failed.status == "error"
    assert "RuntimeError: the path broke" in failed.sizes[0].reason
    works = by_name["fake.works"]
    assert works.status == "ok"
    assert works.sizes[0].floor is None and works.sizes[0].ratio is None
    assert suite.failed == ["fake.fails"]
    data = suite.to_json()
    assert [b["status"] for b in data["benchmarks"]] == ["skipped", "error", "ok"]
