"""``hub import clarity`` / ``hub export clarity`` as a user runs them."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hub.cli_support import CliState
from plugins.clarity.generate import write_export


def run(cli: click.Group, config: Path, *args: str) -> Any:
    runner = CliRunner()
    return runner.invoke(cli, ["--config", str(config), *args], obj=CliState(config_path=config))


def zipped(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as z:
        for p in sorted(folder.iterdir()):
            z.write(p, f"export/{p.name}")
    return target


def test_clarity_cli_imports_a_zip_and_prints_json(
    cli: click.Group, tools: Any, tmp_path: Path
) -> None:
    config = tools.write_config(tmp_path / "hub")
    export = zipped(write_export(tmp_path / "gen", clients=20, seed=1), tmp_path / "hudx-111.zip")
    result = run(cli, config, "import", "clarity", str(export))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == summary["inserted"] > 40
    for key in (
        "files",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "warnings",
        "errors",
        "report",
    ):
        assert key in summary
    assert Path(summary["report"]).exists()
    assert result.stderr == ""  # no progress bar when stderr is not a terminal

    again = json.loads(run(cli, config, "import", "clarity", str(export)).stdout)
    assert again["unchanged"] == again["rows_read"]

    out = tmp_path / "out"
    result = run(cli, config, "export", "clarity", "--out", str(out), "--csv-version", "2024")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["files"]["Client.csv"] == 20
    assert set(written["dropped_columns"]["Client.csv"]) == {"Sex"}
    assert (out / "Export.csv").read_text().splitlines()[1].count("2024 v1.3") == 1


def test_clarity_cli_dry_run(cli: click.Group, tools: Any, tmp_path: Path) -> None:
    config = tools.write_config(tmp_path / "hub")
    export = write_export(tmp_path / "gen", clients=5, seed=1)
    result = run(cli, config, "import", "clarity", str(export), "--dry-run")
    summary = json.loads(result.stdout)
    assert summary["dry_run"] is True and summary["inserted"] == 0
    result = run(
        cli, config, "export", "clarity", "--out", str(tmp_path / "o"), "--csv-version", "2026"
    )
    assert result.exit_code != 0
    assert "no HUD CSV data" in result.stderr


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("no-export", "Export.csv is missing"),
        ("blank-version", "CSVVersion is blank"),
        ("unknown-version", "CSVVersion '2030 v1.0' is not supported"),
        ("bad-zip", "not a readable zip file"),
        ("missing", "no such file or folder"),
    ],
)
def test_clarity_cli_refuses_with_a_reason(
    cli: click.Group, tools: Any, tmp_path: Path, damage: str, reason: str
) -> None:
    config = tools.write_config(tmp_path / "hub")
    export = write_export(tmp_path / "gen", clients=3, seed=1, version="2024")
    target: Path = export
    if damage == "no-export":
        (export / "Export.csv").unlink()
    elif damage in ("blank-version", "unknown-version"):
        value = "" if damage == "blank-version" else "2030 v1.0"
        text = (export / "Export.csv").read_text().replace('"2024 v1.3"', f'"{value}"')
        (export / "Export.csv").write_text(text)
    elif damage == "bad-zip":
        target = tmp_path / "broken.zip"
        target.write_bytes(b"PK\x03\x04 this is not a zip archive")
    elif damage == "missing":
        shutil.rmtree(export)
    result = run(cli, config, "import", "clarity", str(target))
    assert result.exit_code != 0
    message = result.stderr.strip()
    assert reason in message
    assert len(message.splitlines()) == 1 and "Traceback" not in result.output


def test_clarity_cli_export_options(cli: click.Group, tools: Any, tmp_path: Path) -> None:
    config = tools.write_config(tmp_path / "hub")
    export = write_export(tmp_path / "gen", clients=10, seed=1, version="2026")
    run(cli, config, "import", "clarity", str(export))
    out = tmp_path / "hashed"
    result = run(
        cli, config, "export", "clarity", "--out", str(out), "--csv-version", "2026",
        "--hash-status", "4", "--since", "2023-01-01", "--export-date", "2025-11-01T10:00:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = tools.read_csv(out / "Export.csv")[0]
    assert (meta["HashStatus"], meta["ExportDirective"], meta["ExportPeriodType"]) == (
        "4",
        "1",
        "1",
    )
    assert meta["ExportDate"] == "2025-11-01 10:00:00" and meta["ExportID"] == "hub20251101100000"
    original = {r["PersonalID"]: r for r in tools.read_csv(export / "Client.csv")}
    rows = tools.read_csv(out / "Client.csv")
    assert rows and all(r["DateUpdated"] >= "2023-01-01" for r in rows)
    for row in rows:
        source = original[row["PersonalID"]]
        assert len(row["FirstName"]) == 64 and row["FirstName"] != source["FirstName"]
        assert row["SSN"][:4] == source["SSN"][-4:] and len(row["SSN"]) == 68
        assert row["DOB"] == source["DOB"]  # not hashed
    bad = run(
        cli,
        config,
        "export",
        "clarity",
        "--out",
        str(out),
        "--csv-version",
        "2026",
        "--recipient",
        "nobody",
    )
    assert bad.exit_code != 0 and "unknown agency 'nobody'" in bad.stderr


def test_clarity_cli_export_declares_the_hash_status_of_the_data(
    cli: click.Group, tools: Any, tmp_path: Path
) -> None:
    first = tools.write_config(tmp_path / "first")
    run(cli, first, "import", "clarity", str(write_export(tmp_path / "gen", clients=5, seed=2)))
    hashed = tmp_path / "hashed"
    result = run(
        cli, first, "export", "clarity", "--out", str(hashed), "--csv-version", "2026",
        "--hash-status", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = tools.write_config(tmp_path / "hub")
    assert run(cli, config, "import", "clarity", str(hashed)).exit_code == 0
    out = tmp_path / "out"
    result = run(cli, config, "export", "clarity", "--out", str(out), "--csv-version", "2026")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hash_status"] == "4"
    assert tools.read_csv(out / "Export.csv")[0]["HashStatus"] == "4"
    clear = tmp_path / "clear"
    refused = run(
        cli, config, "export", "clarity", "--out", str(clear), "--csv-version", "2026",
        "--hash-status", "1",
    )  # fmt: skip
    assert refused.exit_code != 0
    message = refused.stderr.strip()
    assert "HashStatus 4" in message and "cannot be written in clear" in message
    assert len(message.splitlines()) == 1 and not clear.exists()
