"""A consent that names its client by identifier value alone (no system) must not follow
that value to another person: when the value is carried by more than one person, the
consent applies to none of them until it names ``client.system`` (fail closed)."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from consent.parsing import parse_consent_file
from hub.audit import entry_from_row
from hub.synthetic import client

FEED = """
[[feeds]]
name = "to-211"
recipient = "cie-211"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
options = {url = "http://127.0.0.1:9/none"}
"""


async def import_consent(ctx: Any, consent: dict[str, Any]) -> None:
    text = orjson.dumps([{"signed_on": "2024-01-01", **consent}]).decode()
    cfg = ctx.config
    await ctx.import_consents(
        parse_consent_file(text, agencies=cfg.agencies, policy=cfg.consent_policy)
    )


async def queued_sources(ctx: Any) -> list[str]:
    return sorted(row.record_source for row in await ctx.store.list_outbox())


async def test_a_value_only_consent_does_not_follow_its_value_to_another_person(
    hub_factory: Any,
) -> None:
    async with hub_factory(FEED) as ctx:
        await ctx.engine.ingest([client("4711", given="Ana", family="Brooks")])
        await import_consent(ctx, {"id": "mpa-A", "client": {"value": "4711"}})
        # A later record of the same person is shared under the consent.
        await ctx.engine.ingest([client("4711", family="Brooks", version="2025-02-01T00:00:00")])
        assert await queued_sources(ctx) == ["hmis:demo"]

        # Someone else whose hospital MRN happens to be 4711 arrives.
        other = client(
            "4711",
            given="Zed",
            family="Quinn",
            source="hl7:MERCY",
            owner="hospital-x",
            birth_date=date(1990, 5, 5),
        )
        await ctx.engine.ingest([other])
        async with ctx.store.transaction() as tx:
            mercy = (await tx.persons_of_clients("hl7:MERCY", ["4711"]))["4711"]
            hmis = (await tx.persons_of_clients("hmis:demo", ["4711"]))["4711"]
        assert mercy != hmis, "two persons"
        assert await queued_sources(ctx) == ["hmis:demo"], "nothing of the other person"
        entries = [entry_from_row(r) async for batch in ctx.store.iter_audit() for r in batch]
        about_mercy = [e for e in entries if e.client == mercy]
        assert about_mercy and all(e.decision == "deny" for e in about_mercy)
        assert all(e.consent_id != "mpa-A" for e in about_mercy)


async def test_a_value_only_consent_matching_several_persons_applies_to_none(
    hub_factory: Any,
) -> None:
    async with hub_factory(FEED) as ctx:
        # Imported before anyone carries the value: nothing to check it against then.
        await import_consent(ctx, {"id": "mpa-V", "client": {"value": "5150"}})
        await ctx.engine.ingest([client("5150", given="Ana", family="Brooks")])
        assert await queued_sources(ctx) == ["hmis:demo"]
        await ctx.engine.ingest(
            [
                client(
                    "5150",
                    given="Zed",
                    family="Quinn",
                    source="hl7:MERCY",
                    owner="hospital-x",
                    birth_date=date(1990, 5, 5),
                )
            ]
        )
        ctx.engine.gate.forget_people()
        # The value now names two persons: neither is shared under it any more...
        await ctx.engine.ingest([client("5150", family="Brooks", version="2025-03-01T00:00:00")])
        assert await queued_sources(ctx) == ["hmis:demo"]
        # ...until the consent says which system its value is from.
        await import_consent(
            ctx, {"id": "mpa-V", "client": {"system": "hmis:demo", "value": "5150"}}
        )
        await ctx.engine.ingest([client("5150", family="Brooks", version="2025-04-01T00:00:00")])
        assert await queued_sources(ctx) == ["hmis:demo", "hmis:demo"]
