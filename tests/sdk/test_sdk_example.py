"""The example third-party plugin (``examples/ndjson-https``), once installed with pip, loads
through its entry point and shows in ``hub plugins list``."""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.cli_support import CliState

DIST = "cie-hub-ndjson-https"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ndjson-https"


def _installed() -> bool:
    try:
        importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_the_example_is_a_separate_distribution() -> None:
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert f'name = "{DIST}"' in pyproject
    assert 'ndjson_https = "cie_hub_ndjson_https.plugin"' in pyproject
    assert (EXAMPLE / "tests" / "test_ndjson_https_contract.py").exists()


def test_hub_plugins_list_shows_the_installed_example(tmp_path: Path) -> None:
    if not _installed():
        message = f"{DIST} is not installed: pip install -e examples/ndjson-https"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    state = CliState(config_path=tmp_path / "hub.toml")
    result = CliRunner().invoke(cli, ["plugins", "list", "--json"], obj=state)
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.output)}
    example = plugins["ndjson_https"]
    assert example["version"] == "0.1.0"
    assert example["module"] == "cie_hub_ndjson_https.plugin"
    assert {(c["name"], c["direction"]) for c in example["connectors"]} == {
        ("ndjson-https", "sink"),
        ("ndjson", "codec"),
    }
