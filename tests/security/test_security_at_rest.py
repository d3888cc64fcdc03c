"""A stolen database reveals nothing readable: the raw SQLite file and the raw PostgreSQL
tables hold no test client's SSN, name or birth date in clear."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import orjson

from consent.parsing import parse_consent_file
from hub.context import HubContext
from hub.synthetic import client, enrollment

SECRETS = ["Zebulon", "Quixtanova", "078-05-1121", "1961-07-23", "4242 Hidden Lane", "619-555-0100"]
FEED = """
[[feeds]]
name = "to-hospital"
recipient = "hospital-x"
kinds = ["client"]
purpose = "treatment"
connector = "webhook"
options = {url = "http://127.0.0.1:9/none"}
"""


async def fill(ctx: HubContext) -> str:
    rec = client(
        "555",
        given="Zebulon",
        family="Quixtanova",
        ssn="078-05-1121",
        birth_date=date(1961, 7, 23),
        address="4242 Hidden Lane",
    )
    consent = orjson.dumps(
        {
            "id": "c555",
            "client": {"system": "hmis:demo", "value": "555"},
            "signed_on": "2024-01-01",
            "recorded_by": "shelter-a",
            "purposes": ["treatment"],
        }
    ).decode()
    cfg = ctx.config
    await ctx.import_consents(
        parse_consent_file(consent, agencies=cfg.agencies, policy=cfg.consent_policy)
    )
    result = await ctx.engine.ingest([rec, enrollment("E555", "555")])
    assert result.enqueued == 1  # the outbox holds a copy too
    person = result.persons["hmis:demo/555"]
    # reading back through the store gives the clear values
    seen = await ctx.engine.disclose_person(person, recipient="hospital-x", purpose="treatment")
    assert seen[0][1]["names"][0]["family"] == "Quixtanova"
    assert seen[0][1]["ssn"] == "078-05-1121"
    return person


def assert_no_secrets(blob: bytes) -> None:
    for secret in SECRETS:
        assert secret.encode() not in blob, f"{secret!r} found in clear"
        assert secret.upper().encode() not in blob
        assert secret.replace("-", "").encode() not in blob


async def test_sqlite_file_has_no_pii_in_clear(hub_factory, tmp_path: Path) -> None:
    async with hub_factory(FEED) as ctx:
        await fill(ctx)
        await ctx.store.close()  # checkpoint WAL into the main file
        await ctx.store.open()
    raw = b""
    for path in (tmp_path / "hub-data").glob("hub.db*"):
        raw += path.read_bytes()
    assert raw
    assert_no_secrets(raw)


async def test_postgresql_tables_have_no_pii_in_clear(hub_factory) -> None:
    async with hub_factory(FEED, store="postgresql") as ctx:
        await fill(ctx)
        dump = b""
        async with ctx.store.transaction() as tx:
            tables = await tx._c.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            assert len(tables) >= 10
            for (table,) in tables:
                for (text,) in await tx._c.fetch(f'SELECT t::text FROM "{table}" t'):
                    dump += text.encode() + b"\n"
    assert_no_secrets(dump)
    # the escaped bytea form must not hide a clear value either
    assert b"Quixtanova".hex().encode() not in dump


def test_key_rotation_reencrypts_everything_and_old_key_can_go(hub_dir, hub_cli, tmp_path) -> None:
    from hub.config import load_config
    from hub.context import make_plugins, open_context
    from hub.keys import load_keyring

    config = hub_dir(FEED)

    async def seed() -> None:
        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            await fill(ctx)

    asyncio.run(seed())
    old = load_keyring(tmp_path / "hub-data" / "keys.json").active_data_key
    result = hub_cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    rotated = orjson.loads(result.stdout)
    counts = rotated["reencrypted"]
    assert counts["records"] >= 1 and counts["outbox"] == 1 and counts["consents"] == 1
    assert rotated["old_keys"] == [old]  # what `hub keys retire` takes next
    retire = hub_cli("keys", "retire", old)
    assert retire.exit_code == 0, retire.output
    ring = load_keyring(tmp_path / "hub-data" / "keys.json")
    assert old not in dict(ring.data_keys)

    async def check() -> None:  # every row decrypts with the new key only
        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg)) as ctx:
            await verify(ctx)

    async def verify(ctx: HubContext) -> None:
        batches = [b async for b in ctx.store.iter_records("client")]
        assert batches[0][0].payload.count(b"Quixtanova") == 1
        [item] = await ctx.store.list_outbox()
        assert b"Quixtanova" in item.payload
        assert len(ctx.gate.all_consents()) == 1

    asyncio.run(check())
