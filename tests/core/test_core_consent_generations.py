"""Stored consents as each process loads them: those a process stores itself are in use at
once and not read back and parsed again at its next transaction, while those another
process stored meanwhile still are; a consent naming an agency that has since left the
network still stands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from consent.model import ConsentRecord
from consent.parsing import parse_consent_file
from hub.config import HubConfig, load_config
from hub.context import HubContext, make_plugins, open_context
from hub.synthetic import client
from tests.conftest import write_hub


def consent(cid: str, value: str, cfg: HubConfig) -> list[ConsentRecord]:
    body = {
        "id": cid,
        "client": {"system": "hmis:demo", "value": value},
        "signed_on": "2024-01-01",
        "networks": ["hmis", "cie"],
        "purposes": ["treatment"],
        "recorded_by": "shelter-a",
    }
    return parse_consent_file(
        orjson.dumps(body).decode(), agencies=cfg.agencies, policy=cfg.consent_policy
    )


def known(ctx: HubContext) -> set[str]:
    return {c.id for c in ctx.gate.all_consents()}


async def test_own_consents_are_not_read_back_but_others_are(tmp_path: Path) -> None:
    cfg = load_config(write_hub(tmp_path, ""))
    async with (
        open_context(cfg, make_plugins(cfg), migrate=True) as serving,
        open_context(cfg, make_plugins(cfg)) as admin,
    ):
        await serving.import_consents(consent("m1", "1", cfg))
        assert known(serving) == {"m1"}
        assert await serving.reload_consents() == 0  # nothing stored that it does not hold

        # Another process stores one; then this one stores another: the other's is still
        # read at the next transaction (with this one's, which came after it).
        await admin.import_consents(consent("m2", "2", cfg))
        await serving.import_consents(consent("m3", "3", cfg))
        assert known(serving) == {"m1", "m3"}
        assert await serving.reload_consents() == 2
        assert known(serving) == {"m1", "m2", "m3"}
        assert await serving.reload_consents() == 0


CLINIC_TOML = """
[[agencies]]
id = "clinic-z"
name = "Clinic Z"
kind = "health"
networks = ["cie"]
"""


async def test_a_consent_naming_an_agency_that_left_still_stands(tmp_path: Path) -> None:
    """A partner leaves the network (its agency is taken out of hub.toml) while stored
    consents name it: the hub still starts and decides by those consents."""
    path = write_hub(tmp_path, CLINIC_TOML)
    cfg = load_config(path)
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        result = await ctx.engine.ingest([client("1")])
        person = result.persons["hmis:demo/1"]
        body = {
            "id": "m1",
            "client": {"system": "hmis:demo", "value": "1"},
            "signed_on": "2024-01-01",
            "networks": ["cie"],
            "exclude_agencies": ["clinic-z"],
            "purposes": ["treatment"],
            "recorded_by": "clinic-z",
        }
        await ctx.import_consents(
            parse_consent_file(
                orjson.dumps(body).decode(), agencies=cfg.agencies, policy=cfg.consent_policy
            )
        )
    path.write_text(path.read_text(encoding="utf-8").replace(CLINIC_TOML, ""), encoding="utf-8")
    cfg = load_config(path)
    assert "clinic-z" not in cfg.agencies
    async with open_context(cfg, make_plugins(cfg)) as ctx:
        assert known(ctx) == {"m1"}
        async with ctx.store.transaction() as tx:
            consents = await ctx.gate.consents_for(tx, person)
            facts = await ctx.gate.facts(tx, person)
        decision = ctx.gate.decide(
            consents=consents,
            facts=facts,
            owner="shelter-a",
            recipient="hospital-x",
            purpose="treatment",
            categories=frozenset({"identity"}),
            at=datetime(2025, 1, 1, tzinfo=UTC),
        )
        assert decision.permitted


async def test_the_gate_remembers_a_bounded_number_of_persons(tmp_path: Path) -> None:
    """Consent look-ups are kept in memory for the hot path, but no more than the limit:
    past it the gate forgets and looks persons up again, with the same answers."""
    cfg = load_config(write_hub(tmp_path, ""))
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        result = await ctx.engine.ingest([client(str(i)) for i in range(25)])
        persons = {i: result.persons[f"hmis:demo/{i}"] for i in range(25)}
        for i in range(0, 25, 2):  # every other client signed an MPA
            await ctx.import_consents(consent(f"m{i}", str(i), cfg))
        ctx.gate.person_cache_limit = 10
        seen: list[int] = []
        for _ in range(2):  # the second pass looks up persons already forgotten
            async with ctx.store.transaction() as tx:
                await ctx.gate.load_people(tx, [persons[i] for i in range(0, 8)])
                seen.append(ctx.gate.remembered_persons)
                for i, person in persons.items():
                    found = await ctx.gate.consents_for(tx, person)
                    seen.append(ctx.gate.remembered_persons)
                    assert [c.id for c in found] == ([f"m{i}"] if i % 2 == 0 else [])
        assert max(seen) == 10
        assert min(seen) < 10  # it did forget
