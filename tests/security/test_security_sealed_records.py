"""Record payloads at rest: all protected values of a record sealed in one AES-GCM token.

Covers every record kind (SourceRow included), payloads written by the last release (one token
per protected value), key rotation rewriting them in the sealed form, and tampering: an altered
token, a token or payload copied to another record, an altered clear field.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.context import HubContext
from hub.core.records import RECORD_TYPES, Client, Record, SourceRow
from hub.core.rows import record_to_row
from hub.crypto import PREFIX, SEALED_KEY, DecryptionError, FieldCipher
from hub.testing.fixtures import CLIENT_RENEE, INCOME_ROW, RECORDS, REFERRAL, pii_strings

K1, K2 = "k1", "k2"
KEYS = {K1: os.urandom(32), K2: os.urandom(32)}
PROTECTED = {
    "client": {
        "identifiers",
        "names",
        "birth_date",
        "ssn",
        "telecom",
        "addresses",
        "name_quality",
        "ssn_quality",
        "birth_date_quality",
    },
    "referral": {"notes", "reason"},
}
"""What the last release protected, written out (so a change to the set is noticed)."""


def cipher(active: str = K1, *kids: str) -> FieldCipher:
    return FieldCipher({k: KEYS[k] for k in (kids or (K1, K2))}, active)


def stored_form(record: Record, c: FieldCipher | None = None) -> tuple[bytes, bytes]:
    """(clear payload, stored payload) of a record."""
    row = record_to_row(record)
    c = c or cipher()
    return row.payload, c.protect_payload(row.kind, row.source, row.source_id, row.payload)


def reveal(record: Record, stored: bytes, c: FieldCipher | None = None) -> bytes:
    key = record.meta.key
    return (c or cipher()).reveal_payload(record.meta.kind, key.source, key.id, stored)


def protected_in(record: Record, data: dict[str, Any]) -> list[str]:
    """Protected names of a record that ``data`` (a payload) holds in clear."""
    top = [n for n in PROTECTED.get(record.meta.kind, ()) if n in data]
    if isinstance(record, SourceRow):
        top += [
            f"fields.{n}"
            for n, cat in record.categories.items()
            if cat == "identity" and n in data.get("fields", {})
        ]
    return top


def legacy_payload(c: FieldCipher, record: Record) -> bytes:
    """The payload as the last release stored it: each protected value its own token, bound to
    ``kind|source|source_id|field`` (``fields.<column>`` for a source row's columns)."""
    row = record_to_row(record)
    data = orjson.loads(row.payload)
    base = f"{row.kind}|{row.source}|{row.source_id}|"
    for name in PROTECTED.get(row.kind, ()):
        if name in data:
            data[name] = c.seal(orjson.dumps(data[name]), (base + name).encode())
    if isinstance(record, SourceRow):
        for name, cat in record.categories.items():
            if cat == "identity" and name in data["fields"]:
                value = orjson.dumps(data["fields"][name])
                data["fields"][name] = c.seal(value, (base + "fields." + name).encode())
    return orjson.dumps(data)


# ---- round trip, per record kind -----------------------------------------------------------


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{r.meta.kind}-{r.meta.key.id}")
def test_every_kind_round_trips_and_stores_no_protected_value_in_clear(record: Record) -> None:
    clear, stored = stored_form(record)
    assert reveal(record, stored) == clear  # byte for byte: the store returns what it got
    data = orjson.loads(stored)  # the stored payload is JSON
    if not protected_in(record, orjson.loads(clear)):
        assert stored == clear  # nothing to protect: stored as it is, no crypto
        return
    assert protected_in(record, data) == []
    assert list(data)[-1] == SEALED_KEY and stored.count(PREFIX.encode()) == 1
    assert data[SEALED_KEY].startswith(f"{PREFIX}{K1}:")
    for secret in pii_strings([record]):
        assert secret.encode() not in stored, "PII in clear"
    # fields that are not protected stay readable where they were
    for name, value in orjson.loads(clear).items():
        if name not in PROTECTED.get(record.meta.kind, ()) and name != "fields":
            assert data[name] == value


def test_every_protected_kind_is_covered() -> None:
    kinds = {r.meta.kind for r in RECORDS}
    assert set(PROTECTED) <= kinds and set(RECORD_TYPES) <= kinds
    assert any(isinstance(r, SourceRow) for r in RECORDS)


def test_source_row_seals_only_its_identity_columns() -> None:
    clear, stored = stored_form(INCOME_ROW)
    data = orjson.loads(stored)
    assert "PersonalID" not in data["fields"]
    assert data["fields"]["TotalMonthlyIncome"] == "850.00"
    assert data["categories"]["PersonalID"] == "identity"  # column names and categories stay
    assert reveal(INCOME_ROW, stored) == clear


def test_source_row_with_every_column_protected_and_a_column_named_like_the_seal() -> None:
    every = dataclasses.replace(
        INCOME_ROW,
        fields={"FirstName": "Quixtanova", "SSN": "078051121"},
        categories={"FirstName": "identity", "SSN": "identity"},
    )
    clear, stored = stored_form(every)
    assert orjson.loads(stored)["fields"] == {}
    assert b"Quixtanova" not in stored and b"078051121" not in stored
    assert reveal(every, stored) == clear
    odd = dataclasses.replace(
        INCOME_ROW, fields={SEALED_KEY: "x"}, categories={SEALED_KEY: "income"}
    )
    clear, stored = stored_form(odd)
    assert stored == clear and reveal(odd, stored) == clear
    odd = dataclasses.replace(
        INCOME_ROW,
        fields={SEALED_KEY: "x", "Name": "Zebulon"},
        categories={SEALED_KEY: "income", "Name": "identity"},
    )
    clear, stored = stored_form(odd)
    assert b"Zebulon" not in stored and reveal(odd, stored) == clear


def test_protect_is_idempotent_and_nothing_else_changes() -> None:
    c = cipher()
    row = record_to_row(CLIENT_RENEE)
    once = c.protect_payload(row.kind, row.source, row.source_id, row.payload)
    assert c.protect_payload(row.kind, row.source, row.source_id, once) == once
    again = c.protect_payload(row.kind, row.source, row.source_id, row.payload)
    assert again != once  # a fresh nonce every time
    mixed = orjson.loads(once) | {"ssn": "078-05-1121"}
    with pytest.raises(ValueError):
        c.protect_payload(row.kind, row.source, row.source_id, orjson.dumps(mixed))


# ---- payloads of the last release -----------------------------------------------------------


@pytest.mark.parametrize("record", [CLIENT_RENEE, REFERRAL, INCOME_ROW], ids=lambda r: r.meta.kind)
def test_per_value_payloads_of_the_last_release_still_decrypt(record: Record) -> None:
    c = cipher()
    old = legacy_payload(c, record)
    assert old.count(PREFIX.encode()) >= 1 and SEALED_KEY.encode() not in old
    clear = record_to_row(record).payload
    assert orjson.loads(reveal(record, old, c)) == orjson.loads(clear)
    assert c.payload_needs_rewrite(old)
    fresh = c.protect_payload(
        record.meta.kind, record.meta.key.source, record.meta.key.id, reveal(record, old, c)
    )
    assert not c.payload_needs_rewrite(fresh) and fresh.count(PREFIX.encode()) == 1
    assert reveal(record, fresh, c) == clear
    # a per-value token moved to another field of the same record does not decrypt
    data = orjson.loads(old)
    if isinstance(record, Client):
        data["ssn"], data["birth_date"] = data["birth_date"], data["ssn"]
        with pytest.raises(DecryptionError):
            reveal(record, orjson.dumps(data), c)


def test_tokens_of_the_last_release_open_unchanged() -> None:
    # seal/open/seal_blob/open_blob keep their format: enc1:<key id>:<base64 nonce+ct>
    nonce = os.urandom(12)
    token = (
        f"{PREFIX}{K1}:"
        + base64.b64encode(
            nonce + AESGCM(KEYS[K1]).encrypt(nonce, b"1961-07-23", b"person|p1")
        ).decode()
    )
    c = cipher(K2)
    assert c.open(token, b"person|p1") == b"1961-07-23"
    assert c.open_blob(token.encode(), "person|p1") == b"1961-07-23"
    blob = c.seal_blob(b'{"a":1}', "idem-1")
    assert blob.startswith(f"{PREFIX}{K2}:".encode()) and c.open_blob(blob, "idem-1") == b'{"a":1}'
    assert c.open_blob(b'{"plain":true}', "idem-1") == b'{"plain":true}'
    assert c.key_of(c.seal(b"x", b"a")) == K2
    raw = base64.b64decode(c.seal(b"x", b"a").split(":", 2)[2])
    assert len(raw) == 12 + 1 + 16
    with pytest.raises(DecryptionError):
        c.open_blob(blob, "idem-2")


# ---- rotation ------------------------------------------------------------------------------


def test_rotation_rewrites_under_the_new_key_and_the_old_key_can_go() -> None:
    clear, stored = stored_form(CLIENT_RENEE, cipher(K1, K1))
    ring = cipher(K2, K1, K2)
    assert ring.needs_rotation(stored) and ring.payload_needs_rewrite(stored)
    assert not cipher(K1, K1).payload_needs_rewrite(stored)
    key = CLIENT_RENEE.meta.key
    fresh = ring.protect_payload("client", key.source, key.id, reveal(CLIENT_RENEE, stored, ring))
    assert orjson.loads(fresh)[SEALED_KEY].startswith(f"{PREFIX}{K2}:")
    assert not ring.needs_rotation(fresh) and not ring.payload_needs_rewrite(fresh)
    assert reveal(CLIENT_RENEE, fresh, cipher(K2, K2)) == clear
    with pytest.raises(DecryptionError):
        reveal(CLIENT_RENEE, fresh, cipher(K1, K1))
    with pytest.raises(DecryptionError):  # the old key is gone from the ring
        reveal(CLIENT_RENEE, stored, cipher(K2, K2))


# ---- tampering -----------------------------------------------------------------------------


def _with_token(stored: bytes, token: str) -> bytes:
    data = orjson.loads(stored)
    data[SEALED_KEY] = token
    return orjson.dumps(data)


def test_an_altered_token_does_not_decrypt() -> None:
    _, stored = stored_form(CLIENT_RENEE)
    token = orjson.loads(stored)[SEALED_KEY]
    head, body = token.rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    for at in (0, 12, len(raw) // 2, len(raw) - 1):  # nonce, ciphertext, tag
        bad = bytearray(raw)
        bad[at] ^= 1
        altered = _with_token(stored, f"{head}:{base64.b64encode(bytes(bad)).decode()}")
        with pytest.raises(DecryptionError):
            reveal(CLIENT_RENEE, altered)
    for broken in (
        _with_token(stored, f"{head}:{body[:-8]}"),  # truncated
        _with_token(stored, f"{PREFIX}k9:{body}"),  # unknown key id
        _with_token(stored, f"{PREFIX}{K1}:not base64!"),
        _with_token(stored, ""),
    ):
        with pytest.raises(DecryptionError):
            reveal(CLIENT_RENEE, broken)


def _moved(record: Record, source: str | None = None, source_id: str | None = None) -> Record:
    key = record.meta.key
    key = dataclasses.replace(key, source=source or key.source, id=source_id or key.id)
    return dataclasses.replace(record, meta=dataclasses.replace(record.meta, key=key))


def test_a_token_copied_to_another_record_does_not_decrypt() -> None:
    _, stored = stored_form(CLIENT_RENEE)
    k = CLIENT_RENEE.meta.key
    c = cipher()
    for kind, source, sid in (
        ("client", k.source, "C-9999"),
        ("client", "hmis:other", k.id),
        ("referral", k.source, k.id),
    ):
        with pytest.raises(DecryptionError):  # the whole stored payload moved
            c.reveal_payload(kind, source, sid, stored)
    # only the token moved, into another client's payload with the same clear fields
    other = _moved(CLIENT_RENEE, source_id="C-9999")
    other_clear, other_stored = stored_form(other)
    assert c.reveal_payload("client", k.source, "C-9999", other_stored) == other_clear
    moved = _with_token(other_stored, orjson.loads(stored)[SEALED_KEY])
    assert orjson.loads(moved).keys() == orjson.loads(other_stored).keys()
    with pytest.raises(DecryptionError):
        c.reveal_payload("client", k.source, "C-9999", moved)


def test_an_altered_clear_field_or_a_mixed_payload_does_not_decrypt() -> None:
    _, stored = stored_form(CLIENT_RENEE)
    k = CLIENT_RENEE.meta.key
    c = cipher()
    data = orjson.loads(stored)
    token = data.pop(SEALED_KEY)
    changed = orjson.dumps(data | {"veteran_status": "1"})[:-1] + b',"' + SEALED_KEY.encode()
    changed += b'":"' + token.encode() + b'"}'
    with pytest.raises(DecryptionError):
        c.reveal_payload("client", k.source, k.id, changed)
    # a protected field slipped in next to the token
    slipped = stored.replace(b'{"', b'{"ssn":"000-00-0000","', 1)
    with pytest.raises(DecryptionError):
        c.reveal_payload("client", k.source, k.id, slipped)
    # the token of one record under a legacy per-value field of another
    legacy = orjson.loads(legacy_payload(c, CLIENT_RENEE))
    legacy["ssn"] = token
    with pytest.raises(DecryptionError):
        c.reveal_payload("client", k.source, k.id, orjson.dumps(legacy))


def test_record_keys_that_differ_only_in_where_a_separator_falls_do_not_share_tokens() -> None:
    a = dataclasses.replace(
        CLIENT_RENEE,
        meta=dataclasses.replace(
            CLIENT_RENEE.meta, key=dataclasses.replace(CLIENT_RENEE.meta.key, source="x|y", id="z")
        ),
    )
    _, stored = stored_form(a)
    with pytest.raises(DecryptionError):
        cipher().reveal_payload("client", "x", "y|z", stored)


# ---- through the real store (SQLite and PostgreSQL) ----------------------------------------


async def test_store_reads_last_release_payloads_and_rotation_rewrites_them(
    any_hub: HubContext,
) -> None:
    store = any_hub.store
    old = store.cipher
    assert old is not None
    records = list(RECORDS)
    async with store.transaction() as tx:
        await tx.write_records([record_to_row(r) for r in records])
        # what the last release wrote: one token per protected value
        for r in records:
            k = r.meta.key
            await tx._c.execute(
                "UPDATE records SET payload=? WHERE kind=? AND source=? AND source_id=?",
                (legacy_payload(old, r), r.meta.kind, k.source, k.id),
            )
    async with store.transaction() as tx:
        for r in records:
            back = await tx.get_record(r.meta.kind, r.meta.key.source, r.meta.key.id)
            assert back is not None
            assert orjson.loads(back.payload) == orjson.loads(record_to_row(r).payload)
    kid = "k" + secrets.token_hex(4)
    keys = {**dict(any_hub.keys.data_keys), kid: os.urandom(32)}
    new = FieldCipher(keys, kid)
    counts = await store.reencrypt(new)
    protected = [r for r in records if protected_in(r, orjson.loads(record_to_row(r).payload))]
    assert counts["records"] == len(protected)
    async with store._reader() as c:
        raw = {
            (kind, source, sid): bytes(p)
            for kind, source, sid, p in await c.fetch(
                "SELECT kind, source, source_id, payload FROM records"
            )
        }
    for r in records:
        stored = raw[(r.meta.kind, r.meta.key.source, r.meta.key.id)]
        assert not new.payload_needs_rewrite(stored)
        for secret in pii_strings([r]):
            assert secret.encode() not in stored
        if r in protected:
            assert orjson.loads(stored)[SEALED_KEY].startswith(f"{PREFIX}{kid}:")
            assert stored.count(PREFIX.encode()) == 1
    assert not await store.key_in_use(old.active)
    store.cipher = FieldCipher({kid: keys[kid]}, kid)  # the old key retired
    async with store.transaction() as tx:
        for r in records:
            back = await tx.get_record(r.meta.kind, r.meta.key.source, r.meta.key.id)
            assert back is not None and back.payload == record_to_row(r).payload


async def test_a_write_between_the_read_and_the_rewrite_of_a_rotation_is_kept(
    tmp_path: Path,
) -> None:
    """Key rotation rewrites values in batches while the hub runs: a revocation committed
    after a batch was read is not overwritten by the batch's re-encrypted old value."""
    from contextlib import asynccontextmanager

    from hub.store.sqlite import SqliteStore

    old_key, new_key = os.urandom(32), os.urandom(32)
    store = SqliteStore(tmp_path / "rotate.db")
    await store.open()
    await store.migrate()
    store.cipher = FieldCipher({"k1": old_key}, "k1")
    async with store.transaction() as tx:
        await tx.put_consents([("c1", None, "key", b'{"id": "c1", "revoked_on": null}')])
    rotated = FieldCipher({"k1": old_key, "k2": new_key}, "k2")
    store.cipher = rotated
    real = store.transaction
    revoked = False

    @asynccontextmanager
    async def revoking_first() -> Any:
        nonlocal revoked
        if not revoked:  # the first batch's transaction: a revocation commits just before
            revoked = True
            async with real() as other:
                await other.put_consents(
                    [("c1", None, "key", b'{"id": "c1", "revoked_on": "2026-01-01"}')]
                )
        async with real() as tx:
            yield tx

    store.transaction = revoking_first  # type: ignore[method-assign]
    await store.reencrypt(rotated)
    store.transaction = real  # type: ignore[method-assign]
    async with store.transaction() as tx:
        assert await tx.all_consents() == [b'{"id": "c1", "revoked_on": "2026-01-01"}']
    await store.close()
