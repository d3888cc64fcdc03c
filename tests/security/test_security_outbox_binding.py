"""An outbox payload's ciphertext is bound to its entry (feed, recipient, person, record
version, idempotency key): moved to another entry, or left on an entry whose person was
edited, it does not decrypt, so one person's data is never decided under another's consent.
A payload sealed by an earlier release (bound to the idempotency key alone) still reads."""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
from pathlib import Path

import orjson
import pytest

from consent.parsing import parse_consent_file
from hub.context import HubContext
from hub.crypto import DecryptionError
from hub.store.sql import outbox_binding
from hub.synthetic import client
from tests.conftest import HubFactory

FEED = """
[[feeds]]
name = "to-hospital"
recipient = "hospital-x"
kinds = ["client"]
purpose = "treatment"
connector = "webhook"
options = {url = "http://127.0.0.1:9/none"}
"""
ENTRY = (
    "feed, recipient, person_id, record_kind, record_source, record_source_id, record_version, "
    "idempotency_key"
)


async def two_entries(ctx: HubContext) -> None:
    consents = [
        {
            "id": f"c{i}",
            "client": {"system": "hmis:demo", "value": str(i)},
            "signed_on": "2024-01-01",
            "recorded_by": "shelter-a",
        }
        for i in (1, 2)
    ]
    cfg = ctx.config
    await ctx.import_consents(
        parse_consent_file(
            orjson.dumps(consents).decode(), agencies=cfg.agencies, policy=cfg.consent_policy
        )
    )
    await ctx.engine.ingest([client("1", family="Alpha"), client("2", family="Bravo")])


async def edited(
    ctx: HubContext, tmp_path: Path, *statements: tuple[str, tuple[object, ...]]
) -> None:
    """Run SQL on the store file behind the hub's back (an attacker with the database)."""
    await ctx.store.close()
    with sqlite3.connect(tmp_path / "hub-data" / "hub.db") as db:
        for sql, args in statements:
            db.execute(sql, args)
    await ctx.store.open()


async def test_a_payload_moved_to_another_entry_does_not_decrypt(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    async with hub_factory(FEED) as ctx:
        await two_entries(ctx)
        (first, second) = sorted(await ctx.store.list_outbox(), key=lambda r: r.id)
        with sqlite3.connect(tmp_path / "hub-data" / "hub.db") as db:
            payloads = dict(db.execute("SELECT id, payload FROM outbox").fetchall())
        # swap (payload, idempotency key) between the two persons' entries
        await edited(
            ctx,
            tmp_path,
            ("UPDATE outbox SET idempotency_key='x' WHERE id=?", (first.id,)),
            (
                "UPDATE outbox SET payload=?, idempotency_key=? WHERE id=?",
                (payloads[first.id], first.idempotency_key, second.id),
            ),
            (
                "UPDATE outbox SET payload=?, idempotency_key=? WHERE id=?",
                (payloads[second.id], second.idempotency_key, first.id),
            ),
        )
        with pytest.raises(DecryptionError):
            await ctx.store.get_outbox(second.id)


async def test_an_entry_whose_person_was_edited_does_not_decrypt(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    async with hub_factory(FEED) as ctx:
        await two_entries(ctx)
        (first, second) = sorted(await ctx.store.list_outbox(), key=lambda r: r.id)
        await edited(
            ctx,
            tmp_path,
            ("UPDATE outbox SET person_id=? WHERE id=?", (second.person_id, first.id)),
        )
        with pytest.raises(DecryptionError):
            await ctx.store.get_outbox(first.id)
        assert b"Bravo" in (await ctx.store.get_outbox(second.id) or first).payload


async def test_a_payload_sealed_by_an_earlier_release_still_reads_and_rotation_binds_it(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    async with hub_factory(FEED) as ctx:
        await two_entries(ctx)
        entry = sorted(await ctx.store.list_outbox(), key=lambda r: r.id)[0]
        cipher = ctx.store.cipher
        assert cipher is not None
        legacy = cipher.seal_blob(entry.payload, entry.idempotency_key)
        await edited(ctx, tmp_path, ("UPDATE outbox SET payload=? WHERE id=?", (legacy, entry.id)))
        again = await ctx.store.get_outbox(entry.id)
        assert again is not None and again.payload == entry.payload

        # key rotation re-seals it bound to the whole entry
        ring = ctx.keys
        rotated = dataclasses.replace(
            ring,
            data_keys=(*ring.data_keys, ("k-new", secrets.token_bytes(32))),
            active_data_key="k-new",
        ).cipher()
        assert (await ctx.store.reencrypt(rotated))["outbox"] >= 1
        with sqlite3.connect(tmp_path / "hub-data" / "hub.db") as db:
            row = db.execute(
                f"SELECT {ENTRY}, payload FROM outbox WHERE id=?", (entry.id,)
            ).fetchone()
        assert rotated.open_blob(row[8], outbox_binding(row[:8])) == entry.payload
