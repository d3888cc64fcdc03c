"""The real FY2024 sample export (written by another project) imports without crashing."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from plugins.clarity.importer import import_export


def assert_no_client_values(report: Path, clients: Path) -> None:
    """No name, SSN or birth date of the first 100 clients appears in the report."""
    text = report.read_text(encoding="utf-8")
    with clients.open(encoding="utf-8", newline="") as handle:
        for row in list(csv.DictReader(handle))[:100]:
            for col in ("FirstName", "LastName", "SSN", "DOB"):
                if len(row[col]) > 3:
                    assert row[col] not in text


@pytest.fixture
def sample(tools: Any) -> Path:
    if not tools.sample.is_dir():
        pytest.skip("shared samples not available")
    return Path(tools.sample)


async def test_clarity_sample_imports_with_a_report(
    make_hub: Any, tools: Any, sample: Path
) -> None:
    async with make_hub() as ctx:
        summary = (await import_export(ctx, sample)).to_json()
        assert summary["csv_version"] == "2024 v1.3"
        assert summary["source"] == "hmis:1106 I COUNT Network"
        assert summary["errors"] == 0
        assert summary["rows_read"] == 19453
        assert summary["inserted"] == summary["accepted"] == 19453
        assert summary["files"]["Client.csv"]["inserted"] == 514
        assert summary["files"]["Enrollment.csv"]["inserted"] == 574
        counts = await ctx.store.count_records()
        assert counts["client"] == 514
        assert counts["enrollment"] == 574
        assert counts["service"] == 6385
        assert counts["hmis.Disabilities"] == 6942

        lines = tools.findings(summary["report"])
        assert lines, "the sample has known repairs (its ExportDate format, quoted headers)"
        for line in lines:
            assert {"file", "line", "column", "rule", "severity", "message"} <= set(line)
        rules = {(f["file"], f["rule"]) for f in lines}
        assert ("Export.csv", "date-format") in rules  # 02-07-2023 12:00:00
        assert ("Organization.csv", "quoted-header") in rules
        assert ("Exit.csv", "header-case") in rules

        # No client data in the report: no name, SSN or DOB of the sample appears in it.
        assert_no_client_values(Path(summary["report"]), sample / "Client.csv")

        # Unmapped organisations became agencies; re-importing changes nothing.
        assert "hmis-org-1361" in ctx.gate.agencies
        again = (await import_export(ctx, sample)).to_json()
        assert again["unchanged"] == again["rows_read"] == 19453
        assert again["inserted"] == again["updated"] == again["deleted"] == 0


async def test_clarity_sample_client_mapping(make_hub: Any, sample: Path) -> None:
    async with make_hub() as ctx:
        await import_export(ctx, sample)
        async with ctx.store.transaction() as tx:
            row = await tx.get_record("client", "hmis:1106 I COUNT Network", "528656")
            enrollment = await tx.get_record("enrollment", "hmis:1106 I COUNT Network", "849668")
        assert row is not None and enrollment is not None
        from hub.core.rows import row_to_record

        client = row_to_record(row)
        assert client.identifiers[0].value == "528656"  # type: ignore[attr-defined]
        assert client.identifiers[0].type == "PI"  # type: ignore[attr-defined]
        assert client.race == ("2054-5",)  # type: ignore[attr-defined]
        assert client.gender == ("man",)  # type: ignore[attr-defined]
        assert client.sex == ""  # type: ignore[attr-defined]  # never derived from FY2024 gender
        assert row.version == "2015-09-30T17:18:23"
        # The client's owner is its earliest enrollment's project's organisation's agency.
        assert row.owner.startswith("hmis-org-")
        assert enrollment.owner == "hmis-org-1361"
