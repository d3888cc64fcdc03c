"""The blind-index key: the store remembers which key built it (schema 12, ``store_meta``)
and refuses a hub started with another, and ``hub keys rotate-index`` replaces it offline,
crash-safely, keeping every person's links and consents. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from click.testing import Result

from hub.config import load_config
from hub.context import HubContext, consent_client_value, make_plugins, open_context
from hub.index_rotation import client_match_keys, stored_consent_value
from hub.keys import IndexKeyMismatch, KeyRing, index_key_check, load_keyring
from hub.store import StoreError
from hub.store.base import SqlStore
from hub.store.postgres import APPLICATION_NAME
from hub.store.schema import LATEST_VERSION
from hub.store.sqlite import SqliteStore
from hub.synthetic import client
from tests.conftest import fresh_pg_database, write_hub

SECRET_NAME = "Quixtanova"
BORN = date(1970, 5, 6)
STORES = ["sqlite", "postgresql"]
CliRun = Callable[..., Result]
LATER = itertools.count(1)
"""Ids of the later records of the person (one each time it is looked for)."""


def key_file(tmp_path: Path) -> Path:
    return tmp_path / "hub-data" / "keys.json"


@asynccontextmanager
async def hub_config(tmp_path: Path, store: str) -> AsyncIterator[Path]:
    """hub.toml and a key file in ``tmp_path``, on a new SQLite store or PostgreSQL
    database (dropped afterwards)."""
    if store == "postgresql":
        async with fresh_pg_database() as url:
            yield write_hub(tmp_path, store_url=url)
    else:
        yield write_hub(tmp_path)


@asynccontextmanager
async def opened(config: Path) -> AsyncIterator[HubContext]:
    cfg = load_config(config)
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        yield ctx


def consent(consent_id: str, value: str, system: str | None) -> dict[str, Any]:
    return {
        "id": consent_id,
        "client": {"value": value, **({"system": system} if system else {})},
        "signed_on": "2024-01-01",
        "networks": ["hmis", "cie"],
        "purposes": ["coordination", "referral", "treatment", "eligibility"],
        "recorded_by": "shelter-a",
    }


async def seed(config: Path) -> str:
    """A client (41) and two consents naming it (by system and value, by value alone);
    returns its person."""
    async with opened(config) as ctx:
        done = await ctx.engine.ingest(
            [client("41", family=SECRET_NAME, birth_date=BORN, ssn="078-05-1121")]
        )
        records = [consent("c-sys", "41", "hmis:demo"), consent("c-val", "41", None)]
        await ctx.import_consents([ctx.gate.parse_stored(orjson.dumps(c)) for c in records])
    return done.persons["hmis:demo/41"]


async def cli(hub_cli: CliRun, *args: str) -> Result:
    """A hub command, run as its own process would (its own event loop)."""
    return await asyncio.to_thread(hub_cli, *args)


async def assert_still_the_same_person(config: Path, person: str) -> None:
    """A new record of the person from another source links to ``person``, and both
    consents stored before apply to it (through the gate), their client values blinded
    with the key in force."""
    async with opened(config) as ctx:
        later = client(f"H-{next(LATER)}", source="ehr:mercy", family=SECRET_NAME, birth_date=BORN)
        done = await ctx.engine.ingest([later])
        assert done.persons[f"ehr:mercy/{later.meta.key.id}"] == person
        async with ctx.store.transaction() as tx:
            consents = await ctx.gate.consents_for(tx, person)
            stored = await tx._c.fetch("SELECT id, client_value FROM consents ORDER BY id")
        assert sorted(c.id for c in consents) == ["c-sys", "c-val"]
        by_id = {c.id: c for c in consents}
        assert [(r[0], r[1]) for r in stored] == [
            (cid, consent_client_value(by_id[cid], ctx.keys.blind)) for cid in ("c-sys", "c-val")
        ]


# ---- the store remembers its key ---------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_a_hub_with_another_index_key_is_refused(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with hub_config(tmp_path, store) as config:
        await seed(config)
        ring = load_keyring(key_file(tmp_path))
        other = dataclasses.replace(ring, index_key=os.urandom(32))
        other.write(key_file(tmp_path))
        with pytest.raises(IndexKeyMismatch) as refused:
            async with opened(config):
                pass
        message = str(refused.value)
        assert message.startswith(f"{key_file(tmp_path).resolve()}: the blind-index key")
        assert "rotate-index" in message and "key file this store was built with" in message
        assert other.index_check in message and ring.index_check in message
        for key in (ring.index_key, other.index_key):
            assert base64.b64encode(key).decode() not in message
            assert key.hex() not in message
        # From the environment: the message names the variable.
        monkeypatch.setenv("HUB_KEYS", other.to_json())
        with pytest.raises(IndexKeyMismatch, match=r"^\$HUB_KEYS: the blind-index key"):
            async with opened(config):
                pass
        monkeypatch.delenv("HUB_KEYS")
        ring.write(key_file(tmp_path))  # the right key file back: it opens again
        async with opened(config) as ctx:
            assert ctx.keys.index_key == ring.index_key


def test_the_cli_says_so_in_one_line(hub_dir: Any, hub_cli: CliRun, tmp_path: Path) -> None:
    hub_dir()
    assert hub_cli("migrate").exit_code == 0
    assert hub_cli("identity", "review").exit_code == 0
    ring = load_keyring(key_file(tmp_path))
    dataclasses.replace(ring, index_key=os.urandom(32)).write(key_file(tmp_path))
    result = hub_cli("identity", "review")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {key_file(tmp_path).resolve()}: the blind-index key")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("store", STORES)
async def test_a_store_from_schema_11_adopts_the_key_it_is_opened_with(
    tmp_path: Path, store: str
) -> None:
    async with hub_config(tmp_path, store) as config:
        person = await seed(config)
        async with opened(config) as ctx, ctx.store.transaction() as tx:
            # back to schema 11, data and all (the later migrations undone as well)
            await tx._c.execute("DROP TABLE store_meta")
            await tx._c.execute("DROP TABLE dv_words")  # 13
            await tx._c.execute("DELETE FROM schema_migrations WHERE version >= 12")
        async with opened(config) as ctx:  # migrates from 12 on and records the key's check
            assert await ctx.store.schema_version() == LATEST_VERSION
            async with ctx.store.transaction() as tx:
                assert await tx.store_meta("index_key_check") == ctx.keys.index_check
        await assert_still_the_same_person(config, person)
        ring = load_keyring(key_file(tmp_path))
        dataclasses.replace(ring, index_key=os.urandom(32)).write(key_file(tmp_path))
        with pytest.raises(IndexKeyMismatch):
            async with opened(config):
                pass


# ---- hub keys rotate-index -----------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_rotate_index_keeps_every_person_and_consent(
    tmp_path: Path, hub_cli: CliRun, store: str
) -> None:
    async with hub_config(tmp_path, store) as config:
        person = await seed(config)
        old = load_keyring(key_file(tmp_path))
        result = await cli(hub_cli, "keys", "rotate-index")
        assert result.exit_code == 0, result.output
        summary = orjson.loads(result.stdout)
        new = load_keyring(key_file(tmp_path))
        assert new.index_key != old.index_key and new.pending_index_key is None
        assert base64.b64encode(old.index_key).decode() not in key_file(tmp_path).read_text()
        assert (new.data_keys, new.signing_key) == (old.data_keys, old.signing_key)
        assert summary["index_key_check"] == new.index_check == index_key_check(new.index_key)
        assert summary["client_records"] == 1 and summary["consents"] == 2
        assert summary["person_keys"] == summary["person_keys_before"] > 0
        assert summary["unreadable"] == 0 and summary["resumed"] is False
        await assert_still_the_same_person(config, person)
        with pytest.raises(IndexKeyMismatch):  # the old key file is refused now
            old.write(key_file(tmp_path))
            async with opened(config):
                pass


@pytest.mark.parametrize("store", STORES)
async def test_re_blinding_pages_through_every_record(tmp_path: Path, store: str) -> None:
    """Pages of two records: every client's keys are made again, under its own person, as
    the engine makes them with the new key."""
    names = ["Abbott", "Baker", "Castro", "Dunn", "Ennis"]
    async with hub_config(tmp_path, store) as config, opened(config) as ctx:
        done = await ctx.engine.ingest(
            [client(str(50 + i), family=n, birth_date=BORN) for i, n in enumerate(names)]
        )
        old = ctx.keys
        new = old.with_pending_index_key(os.urandom(32)).promoted()
        await ctx.store.hold_alone()
        counts = await ctx.store.reblind(
            old.index_check,
            new.index_check,
            client_match_keys(new.blind),
            stored_consent_value(ctx, new.blind),
            batch=2,
        )
        assert counts["client_records"] == 5
        assert counts["person_keys"] == counts["person_keys_before"]
        async with ctx.store.transaction() as tx:
            for i, name in enumerate(names):
                person = done.persons[f"hmis:demo/{50 + i}"]
                row = await tx.get_record("client", "hmis:demo", str(50 + i))
                assert row is not None
                expected = set(client_match_keys(new.blind)(row))
                assert await tx.person_keys(person) == expected, name
            assert await tx.store_meta("index_key_check") == new.index_check


async def test_rotate_index_refuses_keys_from_the_environment(
    tmp_path: Path, hub_cli: CliRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with hub_config(tmp_path, "sqlite"):
        before = key_file(tmp_path).read_bytes()
        monkeypatch.setenv("HUB_KEYS", load_keyring(key_file(tmp_path)).to_json())
        result = await cli(hub_cli, "keys", "rotate-index")
        assert result.exit_code == 2
        assert result.output.startswith("error: keys come from $HUB_KEYS")
        assert key_file(tmp_path).read_bytes() == before


async def test_rotate_index_refuses_while_another_hub_has_the_sqlite_store_open(
    tmp_path: Path, hub_cli: CliRun
) -> None:
    async with hub_config(tmp_path, "sqlite") as config:
        person = await seed(config)
        before = key_file(tmp_path).read_bytes()
        async with opened(config):  # another hub (its own lock file descriptor)
            result = await cli(hub_cli, "keys", "rotate-index")
        assert result.exit_code == 2
        assert result.output.startswith("error: another process has the SQLite store at ")
        assert "stop every hub using it" in result.output
        assert key_file(tmp_path).read_bytes() == before  # nothing written, not even pending
        result = await cli(hub_cli, "keys", "rotate-index")
        assert result.exit_code == 0, result.output
        await assert_still_the_same_person(config, person)


async def test_no_hub_opens_a_sqlite_store_while_it_is_re_keyed(tmp_path: Path) -> None:
    rekeying = SqliteStore(tmp_path / "hub.db")
    await rekeying.open()
    try:
        await rekeying.migrate()
        await rekeying.hold_alone()
        with pytest.raises(StoreError, match="held by 'hub keys rotate-index'"):
            await SqliteStore(tmp_path / "hub.db").open()
    finally:
        await rekeying.close()
    late = SqliteStore(tmp_path / "hub.db")
    await late.open()
    await late.close()


async def test_rotate_index_refuses_while_another_hub_uses_the_postgresql_store(
    tmp_path: Path, hub_cli: CliRun
) -> None:
    async with hub_config(tmp_path, "postgresql") as config:
        person = await seed(config)
        before = key_file(tmp_path).read_bytes()
        url = load_config(config).store_url
        other = await asyncpg.create_pool(
            url, min_size=1, max_size=1, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            result = await cli(hub_cli, "keys", "rotate-index")
        finally:
            await other.close()
        assert result.exit_code == 2
        assert result.output.startswith("error: 1 connection(s) of other hub processes use ")
        assert "stop every hub using it" in result.output
        assert key_file(tmp_path).read_bytes() == before
        async with opened(config):  # a hub names its connections so
            result = await cli(hub_cli, "keys", "rotate-index")
        assert result.exit_code == 2
        assert "of other hub processes use the PostgreSQL store" in result.output
        assert key_file(tmp_path).read_bytes() == before
        stranger = await asyncpg.connect(url)  # not a hub (psql, a backup): no matter
        try:
            result = await cli(hub_cli, "keys", "rotate-index")
        finally:
            await stranger.close()
        assert result.exit_code == 0, result.output
        await assert_still_the_same_person(config, person)


# ---- an interrupted rotation -----------------------------------------------------------------


class Killed(BaseException):
    """The process dying at that point."""


def die_at_write(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Make the ``number``-th key file write (1: the pending key, 2: the promotion) die."""
    write = KeyRing.write
    calls: list[Path] = []

    def dying(self: KeyRing, path: Path) -> None:
        calls.append(path)
        if len(calls) == number:
            raise Killed
        write(self, path)

    monkeypatch.setattr(KeyRing, "write", dying)


@pytest.mark.parametrize(
    ("store", "then"),
    [("sqlite", "open"), ("sqlite", "rerun"), ("postgresql", "open"), ("postgresql", "rerun")],
)
async def test_a_rotation_that_died_after_the_store_commit_is_completed(
    tmp_path: Path, hub_cli: CliRun, monkeypatch: pytest.MonkeyPatch, store: str, then: str
) -> None:
    async with hub_config(tmp_path, store) as config:
        person = await seed(config)
        old = load_keyring(key_file(tmp_path))
        with monkeypatch.context() as patch:
            die_at_write(patch, 2)
            with pytest.raises(Killed):
                await cli(hub_cli, "keys", "rotate-index")
        died = load_keyring(key_file(tmp_path))
        assert died.index_key == old.index_key and died.pending_index_key is not None
        if then == "rerun":
            result = await cli(hub_cli, "keys", "rotate-index")
            assert result.exit_code == 0, result.output
            summary = orjson.loads(result.stdout)
            assert summary["resumed"] is True
            assert summary["index_key_check"] == index_key_check(died.pending_index_key)
        else:
            async with opened(config) as ctx:
                assert ctx.keys.index_key == died.pending_index_key
        done = load_keyring(key_file(tmp_path))
        assert done.index_key == died.pending_index_key and done.pending_index_key is None
        await assert_still_the_same_person(config, person)


async def test_a_rotation_that_died_before_the_store_commit_is_taken_up_by_a_rerun(
    tmp_path: Path, hub_cli: CliRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with hub_config(tmp_path, "sqlite") as config:
        person = await seed(config)
        old = load_keyring(key_file(tmp_path))
        with monkeypatch.context() as patch:

            async def dying(self: SqlStore, *args: Any, **kwargs: Any) -> dict[str, int]:
                raise Killed

            patch.setattr(SqlStore, "reblind", dying)
            with pytest.raises(Killed):
                await cli(hub_cli, "keys", "rotate-index")
        pending = load_keyring(key_file(tmp_path)).pending_index_key
        assert pending is not None
        async with opened(config) as ctx:  # a hub in between still works with the old key
            assert ctx.keys.index_key == old.index_key
        await assert_still_the_same_person(config, person)
        result = await cli(hub_cli, "keys", "rotate-index")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout)["resumed"] is True
        done = load_keyring(key_file(tmp_path))
        assert done.index_key == pending and done.pending_index_key is None
        await assert_still_the_same_person(config, person)


async def test_a_store_re_keyed_by_hand_matches_the_pending_key_once_promoted(
    tmp_path: Path,
) -> None:
    """The state a crash between the store commit and the promotion leaves, made step by
    step: the pending key in the file, the store re-blinded with it; the next open
    promotes it."""
    async with hub_config(tmp_path, "sqlite") as config:
        person = await seed(config)
        old = load_keyring(key_file(tmp_path))
        pending = old.with_pending_index_key(os.urandom(32))
        pending.write(key_file(tmp_path))
        new = pending.promoted()
        async with opened(config) as ctx:
            await ctx.store.hold_alone()
            await ctx.store.reblind(
                old.index_check,
                new.index_check,
                client_match_keys(new.blind),
                stored_consent_value(ctx, new.blind),
            )
        assert load_keyring(key_file(tmp_path)).pending_index_key is not None
        await assert_still_the_same_person(config, person)
        assert load_keyring(key_file(tmp_path)) == new


# ---- the key file ---------------------------------------------------------------------------


def test_the_key_file_carries_a_pending_index_key_and_old_files_read_as_before(
    tmp_path: Path,
) -> None:
    ring = KeyRing.generate()
    path = tmp_path / "keys.json"
    ring.write(path)
    assert "pending_index_key" not in path.read_text()
    assert load_keyring(path) == ring and ring.pending_index_check is None
    pending = ring.with_pending_index_key(os.urandom(32))
    pending.write(path)
    back = load_keyring(path)
    assert back == pending and back.index_key == ring.index_key
    assert back.pending_index_check == index_key_check(pending.pending_index_key or b"")
    assert back.index_check != back.pending_index_check
    assert len(back.index_check) == 16 and int(back.index_check, 16) >= 0
    assert "pending" not in repr(back) and back.promoted().index_key == back.pending_index_key
    short = dataclasses.replace(ring, pending_index_key=b"x" * 15)
    with pytest.raises(ValueError, match="pending_index_key is 15 bytes"):
        short.write(path)
