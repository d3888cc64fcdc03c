"""Anything from a Part 2 program is ``substance_use`` (CONSENT.md), its client's identity
too: without consent to share substance-use data with that recipient, nothing of the record
leaves, and the audit says so (deny, nothing left)."""

from __future__ import annotations

from typing import Any

import orjson

from consent.parsing import parse_consent_file
from hub.audit import entry_from_row
from hub.synthetic import client

FEED = """
[[feeds]]
name = "to-{recipient}"
recipient = "{recipient}"
kinds = ["client"]
purpose = "{purpose}"
connector = "webhook"
categories = ["identity", "demographics", "substance_use"]
options = {{url = "http://127.0.0.1:9/none"}}
"""


async def run(hub_factory: Any, consent: dict[str, Any], recipient: str, purpose: str) -> Any:
    async with hub_factory(FEED.format(recipient=recipient, purpose=purpose)) as ctx:
        body = {"id": "mpa-1", "client": {"system": "p2:src", "value": "77"}}
        text = orjson.dumps([{"signed_on": "2024-01-01", **body, **consent}]).decode()
        cfg = ctx.config
        await ctx.import_consents(
            parse_consent_file(text, agencies=cfg.agencies, policy=cfg.consent_policy)
        )
        await ctx.engine.ingest([client("77", owner="recovery-p2", source="p2:src")])
        entries = [entry_from_row(r) async for batch in ctx.store.iter_audit() for r in batch]
        rows = await ctx.store.list_outbox()
        return [e for e in entries if e.recipient == recipient], rows


async def test_a_part2_client_record_does_not_leave_without_substance_use_consent(
    hub_factory: Any,
) -> None:
    audit, rows = await run(hub_factory, {}, "cie-211", "coordination")
    assert rows == [], "not a name, a birth date or an address"
    [entry] = audit
    assert entry.decision == "deny" and "NOTHING_LEFT" in entry.reasons
    assert "REDACTED_SENSITIVE" in entry.reasons


async def test_a_part2_client_record_leaves_when_consent_names_the_recipient(
    hub_factory: Any,
) -> None:
    consent = {"sensitive": ["substance_use"], "part2_recipients": ["cie-211"]}
    audit, rows = await run(hub_factory, consent, "cie-211", "coordination")
    [row] = rows
    assert orjson.loads(row.payload)["identifiers"][0]["value"] == "77"
    [entry] = audit
    assert entry.decision == "permit" and "substance_use" in entry.released


async def test_a_part2_program_reads_its_own_client_whole(hub_factory: Any) -> None:
    """Rule 1: the owner reading its own record is not a disclosure, so the record's
    sensitive label (a Part 2 program's substance_use) hides nothing from it; any other
    agency asking the same gets nothing without consent."""
    async with hub_factory() as ctx:
        result = await ctx.engine.ingest(
            [client("77", given="Ada", owner="recovery-p2", source="p2:src")]
        )
        person = result.persons["p2:src/77"]
        own = await ctx.engine.disclose_person(
            person, recipient="recovery-p2", purpose="treatment", kinds=["client"]
        )
        other = await ctx.engine.disclose_person(
            person, recipient="cie-211", purpose="treatment", kinds=["client"]
        )
        entries = [entry_from_row(r) async for batch in ctx.store.iter_audit() for r in batch]
    [(_record, payload)] = own
    assert payload["names"][0]["given"] == ["Ada"] and payload["birth_date"]
    assert other == []
    [mine] = [e for e in entries if e.recipient == "recovery-p2"]
    assert mine.decision == "permit" and "substance_use" in mine.released
