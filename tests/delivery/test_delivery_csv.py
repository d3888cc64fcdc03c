"""The partner CSV plugin: mappings, the csv-file sink (folder and signed POST), imports."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.config import ConfigError
from hub.core.records import Client, HumanName, Identifier, Provenance, RecordMeta, SourceKey
from hub.delivery import DeliveryWorker, collect_sinks
from hub.sinks.webhook import verify_signature
from plugins.csv.mapping import parse_section

MAPPINGS = """
[csv.mappings.out]
kind = "client"
columns = [
  { column = "HMIS ID", field = "identifiers.0.value" },
  { column = "First Name", field = "names.0.given.0" },
  { column = "Last Name", field = "names.0.family" },
  { column = "DOB", field = "birth_date", format = "%m/%d/%Y" },
  { column = "Gender", field = "sex", codes = { F = "Female", M = "Male" } },
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
  { column = "Gender", field = "sex", codes = { F = "Female", M = "Male" } },
]

[csv.mappings.referrals]
kind = "referral"
id_column = "Referral ID"
defaults = { "client.source" = "hmis:1" }
columns = [
  { column = "Client ID", field = "client.id", required = true },
  { column = "Status", field = "status", codes = { O = "requested", C = "completed" } },
  { column = "Services", field = "service_codes", split = ";" },
  { column = "Authored", field = "authored_on", format = "%Y-%m-%d %H:%M" },
]

[csv.mappings.consents]
kind = "consent"
defaults = { "client.system" = "urn:hmis" }
columns = [
  { column = "Consent ID", field = "id" },
  { column = "HMIS ID", field = "client.value" },
  { column = "Signed", field = "signed_on", format = "%m/%d/%Y" },
  { column = "Method", field = "method", codes = { W = "written", E = "electronic" } },
  { column = "Networks", field = "networks", split = ";" },
]
"""


def named_client(value: str, given: str, family: str, owner: str = "shelter") -> Client:
    """A client with a name (distinct names: nothing links two of them)."""
    return Client(
        meta=RecordMeta(
            "client",
            SourceKey("hmis:1", value),
            owner,
            Provenance("test", datetime.now(UTC), "0" * 64),
            "2025-01-01T00:00:00",
        ),
        identifiers=(Identifier("urn:hmis", value, "PI"),),
        names=(HumanName(family=family, given=(given,)),),
        birth_date=date(1984, 2, 29),
        sex="Female",
    )


def csv_feed(**options: Any) -> str:
    lines = [
        "[[feeds]]",
        'name = "partner-csv"',
        'recipient = "partner"',
        'kinds = ["client"]',
        'purpose = "coordination"',
        'connector = "csv-file"',
        "[feeds.options]",
        'mapping = "out"',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


async def deliver_all(ctx: Any) -> None:
    worker = DeliveryWorker(ctx, collect_sinks(ctx), "csv-test")
    try:
        while await worker.run_once():
            pass
    finally:
        for sink in worker.sinks.values():
            await sink.close()


async def ingest_named(ctx: Any, h: Any) -> None:
    people = [("N1", "Ada", "Lovelace"), ("N2", "Grace", "Hopper"), ("N3", "Mary", "Somerville")]
    text = json.dumps([h.consent_json(v) for v, _, _ in people])
    from consent.parsing import parse_consent_file

    await ctx.import_consents(
        parse_consent_file(text, agencies=ctx.config.agencies, policy=ctx.config.consent_policy)
    )
    await ctx.engine.ingest([named_client(*p) for p in people])


async def test_delivery_csv_sink_writes_one_file_per_batch_atomically(hub, h) -> None:
    hub.write(csv_feed(dir="partner-out", file_name="{recipient}-{count}.csv"), extra=MAPPINGS)
    async with hub.open() as ctx:
        await ingest_named(ctx, h)
        await deliver_all(ctx)
        assert dict(await ctx.store.outbox_depth()) == {"delivered": 3}
    folder = hub.root / "partner-out"
    assert sorted(p.name for p in folder.iterdir()) == ["partner-3.csv"], "no temp file left"
    text = (folder / "partner-3.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "HMIS ID,First Name,Last Name,DOB,Gender"
    rows = sorted(list(csv.reader(io.StringIO(text)))[1:])
    assert rows == [
        ["N1", "Ada", "Lovelace", "02/29/1984", "F"],
        ["N2", "Grace", "Hopper", "02/29/1984", "F"],
        ["N3", "Mary", "Somerville", "02/29/1984", "F"],
    ]
    assert (folder / "partner-3.csv").read_bytes().count(b"\r\n") == 4


async def test_delivery_csv_sink_posts_signed_csv(hub, receiver, h) -> None:
    hub.write(
        csv_feed(url=receiver.url, secret_envs=[h.secret_env], key_column="Hub Key"), extra=MAPPINGS
    )
    async with hub.open() as ctx:
        await ingest_named(ctx, h)
        await deliver_all(ctx)
        keys = sorted(r.idempotency_key for r in await ctx.store.list_outbox())
    (seen,) = receiver.requests
    assert seen.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert verify_signature(seen.headers["X-Hub-Signature"], seen.body, [h.secret])
    rows = list(csv.DictReader(io.StringIO(seen.body.decode())))
    assert sorted(r["Hub Key"] for r in rows) == keys
    assert seen.key, "the batch carries an idempotency key"


async def test_delivery_csv_sink_bad_options_dead_letter(hub, h) -> None:
    hub.write(csv_feed(), extra=MAPPINGS)
    async with hub.open() as ctx:
        await ingest_named(ctx, h)
        await deliver_all(ctx)
        rows = await ctx.store.list_outbox()
    assert {r.status for r in rows} == {"dead"}
    assert rows[0].last_error == "feed options need 'dir' (a folder) or 'url' (an https endpoint)"


def write_roster(folder: Path) -> Path:
    path = folder / "roster.csv"
    path.write_text(
        "\ufeffClient ID,First Name,Last Name,DOB,Gender\n"
        "R1,Ada,Lovelace,12/10/1815,F\n"
        "R2,Grace,Hopper,13/45/1906,F\n"  # line 3: impossible date
        '"R3","Mary","Somerville","12/26/1780","X"\n'  # line 4: unknown code
        "\n"
        "R4,Emmy,Noether,03/23/1882,F\n"
        ",No,Id,01/01/1900,F\n",  # line 7: blank id
        encoding="utf-8",
    )
    return path


def test_delivery_csv_import_reports_bad_rows_and_imports_the_rest(
    hub_dir, hub_cli, tmp_path
) -> None:
    hub_dir(MAPPINGS.replace('"hmis:1"', '"csv:partner"'))
    roster = write_roster(tmp_path)
    result = hub_cli("import", "csv", str(roster), "--mapping", "roster", "--agency", "shelter-a")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["imported"], summary["rejected"]) == (5, 2, 3)
    assert summary["outcomes"] == {"inserted": 2}
    errors = [(e["line"], e["column"], e["message"]) for e in summary["errors"]]
    assert errors == [
        (3, "DOB", "not a date in the form %m/%d/%Y"),
        (4, "Gender", "value is not one of the column's codes (F, M)"),
        (7, "Client ID", "required, but blank"),
    ]
    assert f"{roster} line 3 column 'DOB': not a date" in result.stderr
    assert "13/45/1906" not in result.output + result.stderr, "never the cell's value"

    again = hub_cli("import", "csv", str(roster), "--mapping", "roster", "--agency", "shelter-a")
    assert json.loads(again.stdout)["outcomes"] == {"unchanged": 2}

    bad = hub_cli("import", "csv", str(roster), "--mapping", "nope", "--agency", "shelter-a")
    assert bad.exit_code == 2 and "unknown mapping 'nope'" in bad.output
    bad = hub_cli("import", "csv", str(roster), "--mapping", "roster", "--agency", "nobody")
    assert bad.exit_code == 2 and "unknown agency 'nobody'" in bad.output
    (tmp_path / "short.csv").write_text("Client ID,First Name\nR9,X\n", encoding="utf-8")
    bad = hub_cli(
        "import", "csv", str(tmp_path / "short.csv"), "--mapping", "roster", "--agency", "shelter-a"
    )
    assert (
        bad.exit_code == 2
        and "line 1: missing column(s) 'Last Name', 'DOB', 'Gender'" in bad.output
    )


def test_delivery_csv_an_unterminated_quote_loses_one_row_not_the_rest(
    hub_dir, hub_cli, tmp_path
) -> None:
    hub_dir(MAPPINGS)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Client ID,First Name,Last Name,DOB,Gender\n"
        'R1,"Ada,Lovelace,12/10/1815,F\n'  # line 2: the quote is never closed
        "R2,Grace,Hopper,12/09/1906,F\n"
        "R3,Emmy,Noether,03/23/1882,F\n",
        encoding="utf-8",
    )
    result = hub_cli("import", "csv", str(roster), "--mapping", "roster", "--agency", "shelter-a")
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["imported"], summary["rejected"]) == (3, 2, 1)
    [error] = summary["errors"]
    assert error["line"] == 2 and error["message"].startswith("unterminated quote: lines 2 to 4")
    assert "Lovelace" not in result.output + result.stderr


def test_delivery_csv_a_row_that_makes_no_record_names_the_column_to_fill(
    hub_dir, hub_cli, tmp_path
) -> None:
    roster_id = '  { column = "Client ID", field = "identifiers.0.value", required = true },\n'
    assert MAPPINGS.count(roster_id) == 1
    hub_dir(
        MAPPINGS.replace(
            roster_id,
            roster_id
            + '  { column = "Other System", field = "identifiers.1.system" },\n'
            + '  { column = "Other ID", field = "identifiers.1.value" },\n',
        )
    )
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Client ID,First Name,Last Name,DOB,Gender,Other System,Other ID\n"
        "R1,Ada,Lovelace,12/10/1815,F,,MRN-9\n"
        "R2,Grace,Hopper,12/09/1906,F,urn:mercy,\n"
        "R3,Emmy,Noether,03/23/1882,F,urn:mercy,MRN-3\n",
        encoding="utf-8",
    )
    result = hub_cli("import", "csv", str(roster), "--mapping", "roster", "--agency", "shelter-a")
    summary = json.loads(result.stdout)
    assert summary["imported"] == 1
    errors = [(e["line"], e["column"], e["message"]) for e in summary["errors"]]
    assert errors == [
        (
            2,
            "Other System",
            "identifiers.1.system is required when identifiers.1 has any other field "
            "(columns 'Other System', 'Other ID')",
        ),
        (
            3,
            "Other ID",
            "identifiers.1.value is required when identifiers.1 has any other field "
            "(columns 'Other ID', 'Other System')",
        ),
    ]
    assert "MRN-9" not in result.output + result.stderr


async def test_delivery_csv_import_referrals_and_consents_route_through_the_gate(hub, h) -> None:
    referral_feed = h.webhook_feed(
        "referrals", "partner", "http://127.0.0.1:9/", kinds=["referral"]
    )
    hub.write(referral_feed, extra=MAPPINGS)
    from plugins.csv.importer import import_csv

    mappings, errors = parse_section(hub.config().section("csv"))
    assert errors == []
    consents = hub.root / "consents.csv"
    consents.write_text(
        "Consent ID,HMIS ID,Signed,Method,Networks\n"
        "c-1,K1,01/15/2025,W,hmis;cie\n"
        "c-2,K2,01/15/2025,Z,cie\n"  # line 3: unknown method code
        "c-3,K3,02/30/2025,E,cie\n",  # line 4: impossible date
        encoding="utf-8",
    )
    referrals = hub.root / "referrals.csv"
    referrals.write_text(
        "Referral ID,Client ID,Status,Services,Authored\n"
        "F1,K1,O,food;shelter,2025-03-01 09:30\n"
        "F2,K2,C,housing,2025-03-02 10:00\n",
        encoding="utf-8",
    )
    async with hub.open() as ctx:
        await ctx.engine.ingest([h.client("K1"), h.client("K2")])
        got = await import_csv(ctx, consents, mappings["consents"], "shelter")
        assert (got.imported, [(e.line, e.column) for e in got.errors]) == (
            1,
            [(3, "Method"), (4, "Signed")],
        )
        got = await import_csv(ctx, referrals, mappings["referrals"], "shelter")
        assert (got.imported, got.errors, got.outcomes) == (2, [], {"inserted": 2})
        rows = await ctx.store.list_outbox()
        assert [r.record_source_id for r in rows] == ["F1"], "only K1 consented"
        payload = json.loads(rows[0].payload)
        assert payload["service_codes"] == ["food", "shelter"]
        assert payload["status"] == "requested"
        assert payload["authored_on"] == "2025-03-01T09:30:00"
        assert payload["client"] == {"source": "hmis:1", "id": "K1"}


def test_delivery_csv_mapping_errors_name_the_key() -> None:
    section = {
        "mappings": {
            "a": {"kind": "client", "columns": [{"column": "X", "field": "nmes.0.family"}]},
            "b": {"kind": "planet", "columns": []},
            "c": {
                "kind": "client",
                "columns": [
                    {"column": "S", "field": "sex", "format": "%Y"},
                    {"column": "N", "field": "names.family"},
                    {"column": "G", "field": "gender", "split": ""},
                ],
            },
        }
    }
    mappings, errors = parse_section(section)
    assert mappings == {}
    assert "csv.mappings.a.columns[0].field: unknown field 'nmes' for kind client" in errors
    assert any(e.startswith("csv.mappings.b.kind: required, one of") for e in errors)
    assert (
        "csv.mappings.c.columns[0].format: only date and date-time fields take a strftime format"
        in errors
    )
    assert (
        "csv.mappings.c.columns[1].field: field 'names.family': a list needs an index here"
        in errors
    )
    assert "csv.mappings.c.columns[2].split: only list fields take a separator" in errors


def test_delivery_csv_config_error_names_file_and_line(hub) -> None:
    hub.write(
        extra='[csv.mappings.bad]\nkind = "client"\ncolumns = [{ column = "X", field = "dob" }]\n'
    )
    with pytest.raises(ConfigError, match=r"line \d+: key 'csv.mappings.bad.columns\[0\].field'"):
        hub.config()


async def test_delivery_csv_sink_is_registered_by_the_plugin(hub, h) -> None:
    hub.write(extra=MAPPINGS)
    async with hub.open() as ctx:
        sinks = collect_sinks(ctx)
        try:
            assert {"webhook", "csv-file"} <= set(sinks)
        finally:
            await asyncio.gather(*(s.close() for s in sinks.values()))
