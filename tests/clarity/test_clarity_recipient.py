"""Exports for a recipient carry only what the consent gate releases; VSP data never leaves."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from consent import parse_consent_file
from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.ownership import AgencyService
from plugins.clarity.spec import FILES

WHEN = datetime(2025, 11, 1, 10, 0, 0)
VSP_PROJECT = "401"


def projects_of(tools: Any, export: Path) -> dict[str, str]:
    return {r["PersonalID"]: r["ProjectID"] for r in tools.read_csv(export / "Enrollment.csv")}


def consent_text(values: list[str]) -> str:
    return "\n".join(
        json.dumps(
            {
                "id": f"mpa-{value}",
                "client": {"system": "hmis:synthetic", "value": value},
                "signed_on": "2025-01-01",
                "networks": ["hmis", "cie"],
                "recorded_by": "shelter-a",
            }
        )
        for value in values
    )


async def test_clarity_recipient_export_holds_only_permitted_data(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=80, seed=6, version="2026", vsp=True)
    project = projects_of(tools, gen)
    with_dv = sorted(
        r["PersonalID"]
        for r in tools.read_csv(gen / "HealthAndDV.csv")
        if r["DomesticViolenceSurvivor"] == "1" and project[r["PersonalID"]] != VSP_PROJECT
    )
    others = [p for p, prj in sorted(project.items()) if prj != VSP_PROJECT and p != with_dv[0]]
    ordinary = [with_dv[0], *others[:2]]
    sheltered = [p for p, prj in sorted(project.items()) if prj == VSP_PROJECT][:1]
    assert len(set(ordinary)) == 3 and len(sheltered) == 1
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        assert ctx.gate.agencies["hmis-org-4"].kind == "vsp"
        consents = parse_consent_file(
            consent_text(ordinary + sheltered),
            agencies=ctx.gate.agencies,
            policy=ctx.config.consent_policy,
        )
        await ctx.import_consents(consents)
        summary = await export_hmis(
            ctx, tmp_path / "for-211", csv_version="2026", recipient="cie-211", export_date=WHEN
        )
        audit = [
            orjson.loads(r.body) for rows in [r async for r in ctx.store.iter_audit()] for r in rows
        ]

    out = tmp_path / "for-211"
    clients = tools.read_csv(out / "Client.csv")
    assert sorted(r["PersonalID"] for r in clients) == sorted(ordinary)
    enrollments = tools.read_csv(out / "Enrollment.csv")
    assert sorted(r["PersonalID"] for r in enrollments) == sorted(ordinary)
    # Sensitive categories were not asked for: behavioral health stays blank, HOPWA out.
    assert all(r["MentalHealthConsultation"] == "" for r in enrollments)
    assert all(r["RecordType"] != "143" for r in tools.read_csv(out / "Services.csv"))
    # Source rows are released column by column: health yes, domestic violence no.
    health = [r for r in tools.read_csv(out / "HealthAndDV.csv") if r["PersonalID"] == with_dv[0]]
    assert health and health[0]["InformationDate"] and health[0]["DataCollectionStage"] == "1"
    assert all(r["DomesticViolenceSurvivor"] == r["CurrentlyFleeing"] == "" for r in health)
    # Nobody without a consent, and nothing of the victim service provider, in any file.
    allowed = set(ordinary)
    for file in FILES:
        for row in tools.read_csv(out / f"{file}.csv"):
            if "PersonalID" in row:
                assert row["PersonalID"] in allowed, file
            assert row.get("ProjectID", "") != VSP_PROJECT, file
            assert row.get("OrganizationID", "") != "4", file
    assert {r["ProjectID"] for r in tools.read_csv(out / "Project.csv")} == {
        project[p] for p in ordinary
    }
    report = summary.to_json()
    assert report["recipient"] == "cie-211" and report["persons"] == 3
    assert report["withheld_records"] > 0
    # Every decision was audited, denials of the VSP's records included.
    assert audit
    assert all(entry["recipient"] == "cie-211" for entry in audit)
    assert any("VSP_RECORD" in entry["reasons"] for entry in audit)


async def test_clarity_vsp_data_is_restricted_everywhere(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=60, seed=6, version="2024", vsp=True)
    project = projects_of(tools, gen)
    sheltered = {p for p, prj in project.items() if prj == VSP_PROJECT}
    assert sheltered
    async with make_hub() as ctx:
        await import_export(ctx, gen)
        async with ctx.store.transaction() as tx:
            row = await tx.get_record("client", "hmis:synthetic", sorted(sheltered)[0])
            org = await tx.get_record("hmis.Organization", "hmis:synthetic", "4")
        assert row is not None and row.restricted and row.owner == "hmis-org-4"
        assert org is not None and org.restricted
        summary = await export_hmis(ctx, tmp_path / "all", csv_version="2024", export_date=WHEN)
    assert summary.restricted_skipped > 0
    assert not sheltered & {
        r["PersonalID"] for r in tools.read_csv(tmp_path / "all" / "Client.csv")
    }
    assert VSP_PROJECT not in {
        r["ProjectID"] for r in tools.read_csv(tmp_path / "all" / "Project.csv")
    }


async def test_clarity_agencies_come_back_on_start(make_hub: Any, tmp_path: Path) -> None:
    gen = write_export(tmp_path / "gen", clients=10, seed=6, version="2026", vsp=True)
    async with make_hub("h") as ctx:
        summary = (await import_export(ctx, gen)).to_json()
        assert set(summary["agencies_created"]) == {"hmis-org-2", "hmis-org-3", "hmis-org-4"}
    async with make_hub("h") as ctx:
        assert "hmis-org-2" not in ctx.gate.agencies
        service = AgencyService(ctx)
        await service.start()
        await service.stop()
        assert ctx.gate.agencies["hmis-org-2"].kind == "hmis"
        assert ctx.gate.agencies["hmis-org-4"].kind == "vsp"
        assert ctx.gate.agencies["hmis-org-4"].networks == frozenset({"hmis"})
        assert "hmis-org-1" not in ctx.gate.agencies  # organisation 1 is mapped to shelter-a
