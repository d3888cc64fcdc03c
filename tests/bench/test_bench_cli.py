"""``hub bench``: the whole suite at the tiny size produces every figure (never a speed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from hub.bench.model import Benchmark
from hub.bench.suite import collect_benchmarks
from hub.bench_cli import bench
from hub.cli_support import CliState
from hub.context import make_plugins
from hub.plugin_api import hookimpl
from hub.plugins import PluginManager

PLUGIN_BENCH_MODULES = ("plugins.hl7.bench", "plugins.clarity.bench", "plugins.fhir.benchmarks")


class _Provider:
    """Offers a plugin's bench module through ``hub_benchmarks`` (until its plugin does)."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    @hookimpl
    def hub_benchmarks(self) -> list[Benchmark]:
        """The module's benchmarks."""
        result: list[Benchmark] = self.module.benchmarks()
        return result


def bench_plugins() -> PluginManager:
    """The installed plugins, plus each plugin bench module its plugin does not offer yet."""
    import importlib

    pm = make_plugins()
    offered = {b.name for r in pm.hook.hub_benchmarks() for b in r or ()}
    for name in PLUGIN_BENCH_MODULES:
        module = importlib.import_module(name)
        if not {b.name for b in module.benchmarks()} <= offered:
            pm.register(_Provider(module), name=f"{name}-provider")
    return pm


def invoke(*args: str) -> tuple[int, str, str]:
    """Run ``hub bench ARGS``; exit code, stdout, stderr."""
    state = CliState(config_path=Path("hub.toml"), _plugins=bench_plugins())
    result = CliRunner().invoke(bench, list(args), obj=state)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_bench_cli_lists_every_benchmark() -> None:
    code, out, _ = invoke("--list", "--size", "small")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == [b.name for b in collect_benchmarks(bench_plugins())]
    for expected in (
        "hl7.mllp.1conn",
        "hl7.mllp.8conn",
        "clarity.import.sqlite",
        "clarity.import.postgresql",
        "fhir.ingest.bundle",
        "fhir.render.patient",
        "gate.decide",
        "delivery.webhook",
        "e2e.hl7_to_fhir",
    ):
        assert expected in names


def test_bench_cli_refuses_an_unknown_benchmark() -> None:
    code, _, err = invoke("--only", "no.such.bench")
    assert code == 2
    assert "no benchmark named 'no.such.bench'" in err


@pytest.mark.slow
def test_bench_cli_tiny_suite_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    md = tmp_path / "table.md"
    code, stdout, stderr = invoke(
        "--size", "tiny", "--rounds", "1", "--json", str(out), "--markdown", str(md),
        "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert code == 0, stdout + stderr
    data = json.loads(out.read_text())
    assert data["profile"] == "tiny" and data["rounds"] == 1
    assert data["machine"]["nproc"] >= 1 and data["machine"]["python"]
    expected = {b.name for b in collect_benchmarks(bench_plugins())}
    assert {b["name"] for b in data["benchmarks"]} == expected
    pg_optional = not os.environ.get("HUB_REQUIRE_PG")
    for b in data["benchmarks"]:
        allowed = {"ok", "skipped"} if b["name"].endswith("postgresql") and pg_optional else {"ok"}
        assert b["status"] in allowed, (b["name"], b["sizes"])
        if b["status"] == "skipped":
            continue
        assert b["target"] and b["floor"]
        for size in b["sizes"]:
            path, floor = size["path"], size["floor"]
            assert path["median_rate"] > 0 and path["spread"] >= 0
            assert path["peak_rss_mb"] > 0 and size["peak_rss_mb"] == path["peak_rss_mb"]
            assert floor["median_rate"] > 0 and floor["peak_rss_mb"] > 0
            assert size["ratio"] > 0
            assert len(path["rounds"]) == len(floor["rounds"]) == 1
    growth = {b["name"]: b["growth"] for b in data["benchmarks"]}
    assert growth["hl7.mllp.1conn"]["sizes"] == [40, 80]
    assert "hl7.mllp.1conn" in stdout and "path÷floor" in stdout
    assert "| hl7.mllp.1conn |" in md.read_text()
