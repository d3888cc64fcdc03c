"""Property: for random agencies, consents, records and feeds, nothing reaches a recipient
without a permit in the audit log, and no withheld category is ever in a queued or
delivered payload."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.categories import CATEGORIES
from consent.parsing import parse_consent_file
from hub.audit import entry_from_row
from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.core.records import Client
from hub.core.rows import row_to_record
from hub.keys import KeyRing
from hub.synthetic import client, enrollment, health_dv

AGENCIES = [
    ("shelter-a", "hmis", ["hmis", "cie"]),
    ("hospital-x", "health", ["cie"]),
    ("cie-211", "cie", ["cie"]),
    ("safe-haven", "vsp", ["hmis"]),
    ("recovery", "part2", ["cie"]),
    ("clinic", "health", ["hmis"]),
]
AGENCY_IDS = [a for a, _, _ in AGENCIES]
PURPOSES = ["coordination", "referral", "treatment", "eligibility", "research"]

consent_st = st.fixed_dictionaries(
    {
        "signed_on": st.sampled_from(["2023-01-01", "2024-06-01", "2026-01-01", "2027-01-01"]),
        "networks": st.lists(st.sampled_from(["hmis", "cie"]), min_size=1, unique=True),
        "exclude_agencies": st.lists(st.sampled_from(AGENCY_IDS), unique=True, max_size=2),
        "sensitive": st.lists(
            st.sampled_from(["behavioral_health", "substance_use", "hiv", "dv"]), unique=True
        ),
        "purposes": st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True),
        "method": st.sampled_from(["written", "verbal"]),
        "revoked_on": st.sampled_from([None, "2027-06-01"]),
    }
)
person_st = st.fixed_dictionaries(
    {
        "owner": st.sampled_from(AGENCY_IDS),
        "consent": st.one_of(st.none(), consent_st),
        "fleeing": st.booleans(),
        "birth_year": st.sampled_from([1950, 1990, 2010]),
    }
)
feed_st = st.fixed_dictionaries(
    {
        "recipient": st.sampled_from(AGENCY_IDS),
        "purpose": st.sampled_from(PURPOSES),
        "categories": st.lists(st.sampled_from(list(CATEGORIES)), min_size=1, unique=True),
    }
)


def toml(feeds: list[dict[str, Any]]) -> str:
    out = ['[store]\nurl = "sqlite:///hub-data/hub.db"\n[keys]\nfile = "hub-data/keys.json"\n']
    for aid, kind, nets in AGENCIES:
        out.append(
            f'[[agencies]]\nid = "{aid}"\nkind = "{kind}"\nnetworks = {nets!r}\n'.replace("'", '"')
        )
    for i, f in enumerate(feeds):
        out.append(
            f'[[feeds]]\nname = "f{i}"\nrecipient = "{f["recipient"]}"\n'
            f'kinds = ["client", "enrollment", "hmis.HealthAndDV"]\npurpose = "{f["purpose"]}"\n'
            f'categories = {f["categories"]!r}\nconnector = "webhook"\n'.replace("'", '"')
        )
    return "\n".join(out)


def released_fields(payload: dict[str, Any]) -> list[str]:
    """The data fields a payload carries (a source row's columns, or a record's fields)."""
    if "fields" in payload and "categories" in payload:
        return list(payload["fields"])
    return list(payload)


async def scenario(base: Path, people: list[dict[str, Any]], feeds: list[dict[str, Any]]) -> None:
    (base / "hub.toml").write_text(toml(feeds), encoding="utf-8")
    KeyRing.generate().write(base / "hub-data" / "keys.json")
    cfg = load_config(base / "hub.toml")
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        consents = []
        records: list[Any] = []
        for i, p in enumerate(people):
            pid = str(i + 1)
            if p["consent"] is not None:
                consents.append(
                    {
                        "id": f"c{pid}",
                        "client": {"system": "hmis:demo", "value": pid},
                        "recorded_by": "shelter-a",
                        **p["consent"],
                    }
                )
            records += [
                client(pid, owner=p["owner"], birth_date=date(p["birth_year"], 6, 1)),
                enrollment(f"E{pid}", pid, owner=p["owner"]),
                health_dv(f"D{pid}", pid, fleeing=p["fleeing"], owner=p["owner"]),
            ]
        if consents:
            text = "\n".join(orjson.dumps(c).decode() for c in consents)
            await ctx.import_consents(
                parse_consent_file(text, agencies=cfg.agencies, policy=cfg.consent_policy)
            )
        result = await ctx.engine.ingest(records)
        audit = {
            entry_from_row(r).seq: entry_from_row(r)
            async for b in ctx.store.iter_audit()
            for r in b
        }
        # a person is fleeing when any of the records linked to them says so
        person_of = {pid.split("/")[1]: p for pid, p in result.persons.items()}
        fleeing_persons = {person_of[str(i + 1)] for i, p in enumerate(people) if p["fleeing"]}
        fleeing = {pid for pid, person in person_of.items() if person in fleeing_persons}
        for item in await ctx.store.list_outbox(limit=10_000):
            entry = audit[item.audit_seq]
            assert entry.decision in ("permit", "permit-redacted")
            assert entry.recipient == item.recipient
            assert (
                entry.record == f"{item.record_kind}/{item.record_source}/{item.record_source_id}"
            )
            async with ctx.store.transaction() as tx:
                row = await tx.get_record(
                    item.record_kind, item.record_source, item.record_source_id
                )
                assert row is not None
                record = row_to_record(row)
                cats = record.field_categories()
                payload = orjson.loads(item.payload)
                released = set(entry.released)
                for field in released_fields(payload):
                    assert cats[field] in released, (field, cats[field], released)
                if (
                    isinstance(record, Client)
                    and record.meta.key.id in fleeing
                    and item.recipient != record.meta.owner
                ):
                    assert "addresses" not in payload
                # delivery time: decided again, released again only what is permitted now
                again = await ctx.engine.redisclose(tx, item, entry.purpose, None)
                if again.payload is not None:
                    assert again.audit.decision in ("permit", "permit-redacted")
                    for field in released_fields(again.payload):
                        assert cats[field] in set(again.audit.released)
            assert record.meta.owner != "safe-haven" or item.recipient == "safe-haven"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(person_st, min_size=1, max_size=4),
    feeds=st.lists(feed_st, min_size=1, max_size=3),
)
def test_nothing_leaves_without_a_permit_in_the_audit_log(people, feeds) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp), people, feeds))
