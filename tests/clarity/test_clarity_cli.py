"""``hub import clarity`` / ``hub export clarity`` as a user runs them."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import datetime, timedelta
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


def test_clarity_cli_refuses_an_export_date_before_the_data_it_writes(
    cli: click.Group, tools: Any, tmp_path: Path
) -> None:
    """An --export-date earlier than a row's DateUpdated or a deletion's time is refused
    (a receiver would skip such a row as a future version: a deletion lost), and nothing is
    written; a later one exports, reproducibly, and another hub imports it cleanly."""
    from tests.clarity.test_clarity_delta_deletions import _without_enrollments

    config = tools.write_config(tmp_path / "hub")
    gen = write_export(tmp_path / "gen", clients=10, seed=4)
    assert run(cli, config, "import", "clarity", str(gen)).exit_code == 0
    gone = tools.read_csv(gen / "Exit.csv")[0]
    client = next(
        r for r in tools.read_csv(gen / "Client.csv") if r["PersonalID"] == gone["PersonalID"]
    )
    refreshed = _without_enrollments(tools, gen, tmp_path / "refreshed", {gone["EnrollmentID"]})
    assert run(cli, config, "import", "clarity", str(refreshed)).exit_code == 0  # deleted now

    def export(out: Path, *options: str) -> Any:
        return run(
            cli, config, "export", "clarity", "--out", str(out), "--csv-version", "2026", *options
        )

    kept = tmp_path / "kept"
    assert export(kept).exit_code == 0
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    for out, options, later in (
        # The deletion (made now) is later than the export date.
        (tmp_path / "delta", ("--since", "2025-10-01", "--export-date", "2025-11-01T10:00:00"), 2),
        # Rows of the generated export were updated after this date.
        (tmp_path / "full", ("--export-date", "2020-06-01T00:00:00"), 0),
        # An existing export is left as it was.
        (kept, ("--export-date", "2020-06-01T00:00:00"), 0),
    ):
        refused = export(out, *options)
        assert refused.exit_code != 0
        message = refused.stderr.strip()
        assert len(message.splitlines()) == 1 and "Traceback" not in refused.output
        assert message.endswith("nothing was written")
        assert f"--export-date {options[-1].replace('T', ' ')}: " in message
        assert "updated or deleted after it" in message
        assert later == 0 or f": {later} rows" in message
        for value in (client["FirstName"], client["LastName"], client["PersonalID"]):
            assert value not in message
    assert not (tmp_path / "delta").exists() and not (tmp_path / "full").exists()
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before
    after_since = export(tmp_path / "x", "--since", "2025-12-01", "--export-date", "2025-11-01")
    assert after_since.exit_code != 0 and "--since 2025-12-01 is after --export-date" in (
        after_since.stderr
    )

    late = (datetime.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    options = ("--since", "2025-10-01", "--export-date", late)
    assert export(tmp_path / "one", *options).exit_code == 0
    assert export(tmp_path / "two", *options).exit_code == 0
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    assert one == {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}
    assert len(one) == 24  # no staging folder left behind
    other = tools.write_config(tmp_path / "other")
    imported = run(cli, other, "import", "clarity", str(tmp_path / "one"))
    summary = json.loads(imported.stdout)
    assert summary["errors"] == 0 and summary["deleted"] == 2  # the enrollment, its exit
