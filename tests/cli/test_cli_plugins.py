"""``hub plugins list``: every built-in plugin with its connectors and codecs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
from click.testing import Result


def test_plugins_list_names_connectors_and_codecs(hub_cli: Callable[..., Result]) -> None:
    listed = {p["name"]: p for p in orjson.loads(hub_cli("plugins", "list", "--json").output)}
    assert {"clarity", "csv", "fhir", "hl7", "hub"} <= set(listed)
    assert "hl7v2" in listed["hl7"]["codecs"]
    assert "fhir-r4" in listed["fhir"]["codecs"]
    assert {"hud-client-csv", "hud-client-csv-2026"} <= set(listed["clarity"]["codecs"])
    assert {c["name"] for c in listed["hl7"]["connectors"]} == {"hl7-mllp-listener", "hl7-mllp"}
    table = hub_cli("plugins", "list").output
    assert "hl7v2 (codec)" in table and "hl7-mllp (sink)" in table


def run_hub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real console entry point (plugins are loaded before click parses)."""
    return subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "HUB_CONFIG"},
    )


def test_a_disabled_plugin_is_not_loaded_and_a_misspelt_name_is_refused(hub_dir) -> None:
    config: Path = hub_dir('[plugins]\ndisabled = ["hl7"]\n')
    listed = run_hub("--config", str(config), "plugins", "list", "--json", cwd=config.parent)
    assert listed.returncode == 0, listed.stderr
    assert "hl7" not in {p["name"] for p in orjson.loads(listed.stdout)}
    assert "fhir" in {p["name"] for p in orjson.loads(listed.stdout)}
    # The same config found as ./hub.toml (no --config) disables it too.
    default = run_hub("plugins", "list", "--json", cwd=config.parent)
    assert "hl7" not in {p["name"] for p in orjson.loads(default.stdout)}

    config.write_text(config.read_text().replace('"hl7"', '"hl7-typo"'), encoding="utf-8")
    refused = run_hub("--config", str(config), "plugins", "list", cwd=config.parent)
    assert refused.returncode == 2
    assert "'hl7-typo', which is not an installed plugin" in refused.stderr
    assert "Traceback" not in refused.stderr
