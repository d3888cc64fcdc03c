"""``hub plugins new`` writes a plugin project that installs and passes its own kit tests.

The project is installed into the running environment (``pip install --no-deps
--no-build-isolation -e``), its tests run in a subprocess, and it is uninstalled afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from hub.cli import cli
from hub.cli_support import CliState
from hub.plugins_cli import register
from hub.scaffold import Names, ScaffoldError, scaffold

DIST = "cie-hub-demo-sink"
PIP = [sys.executable, "-m", "pip"]


def hub(tmp_path: Path, *args: str) -> Result:
    """Run ``hub …`` in-process (with ``plugins new`` added if the CLI lacks it yet)."""
    group = cli.commands["plugins"]
    assert isinstance(group, click.Group)
    if "new" not in group.commands:
        register(cli)
    state = CliState(config_path=tmp_path / "hub.toml")
    return CliRunner().invoke(cli, list(args), obj=state, catch_exceptions=False)


def _uninstall() -> None:
    subprocess.run([*PIP, "uninstall", "--quiet", "-y", DIST], capture_output=True, timeout=120)


@pytest.fixture
def demo_project(tmp_path: Path) -> Iterator[Path]:
    """``hub plugins new demo_sink --dir …``, installed editable; uninstalled afterwards."""
    target = tmp_path / "demo-sink"
    result = hub(tmp_path, "plugins", "new", "demo_sink", "--dir", str(target))
    assert result.exit_code == 0, result.output
    assert "pip install -e" in result.output
    _uninstall()  # a run that died half-way may have left it installed
    install = [*PIP, "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(target)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    try:
        yield target
    finally:
        _uninstall()


@pytest.mark.slow
def test_a_new_plugin_installs_and_passes_its_contract_tests(demo_project: Path) -> None:
    files = sorted(str(p.relative_to(demo_project)) for p in demo_project.rglob("*.py"))
    assert files == [
        "src/cie_hub_demo_sink/__init__.py",
        "src/cie_hub_demo_sink/codec.py",
        "src/cie_hub_demo_sink/plugin.py",
        "src/cie_hub_demo_sink/sink.py",
        "tests/test_demo_sink_contract.py",
    ]
    pyproject = (demo_project / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points.cie_hub]\ndemo_sink = "cie_hub_demo_sink.plugin"' in pyproject
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(demo_project / "tests")],
        cwd=demo_project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    assert "skipped" not in done.stdout, "a new plugin passes every check, exempting none"


def test_plugin_names_are_checked(tmp_path: Path) -> None:
    result = hub(tmp_path, "plugins", "new", "Demo-Sink", "--dir", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "plugin name 'Demo-Sink' must be" in result.output
    assert not (tmp_path / "x").exists()
    with pytest.raises(ScaffoldError):
        Names.of("class")


def test_an_existing_project_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine", encoding="utf-8")
    result = hub(tmp_path, "plugins", "new", "demo_sink", "--dir", str(target))
    assert result.exit_code == 2
    assert "exists and is not an empty folder" in result.output
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]


def test_names_are_derived_consistently(tmp_path: Path) -> None:
    names = Names.of("partner_feed")
    assert (names.dashed, names.package, names.dist, names.title) == (
        "partner-feed",
        "cie_hub_partner_feed",
        "cie-hub-partner-feed",
        "Partner Feed",
    )
    written = scaffold("partner_feed", tmp_path / "p")
    text = "".join(p.read_text(encoding="utf-8") for p in written)
    assert "{{" not in text and "}}" not in text
    assert 'name = "partner-feed"' in text and "cie_hub_partner_feed.plugin" in text
