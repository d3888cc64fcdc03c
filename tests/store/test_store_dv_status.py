"""Each record's word on its client fleeing DV (schema 13, ``dv_words``) and the status derived
from them (``dv_status``, which the gate reads): the rule of ``Transaction.set_dv_status`` on
SQLite and PostgreSQL, withdrawal by deletion, and the migration of a store from before."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from hub.store import schema
from hub.store.base import SqlStore
from tests.store.test_store_deleted_at import postgres_store, sqlite_store

SOURCE = "hmis:demo"
OTHER = "hmis:other"
ALL_MIGRATIONS = list(schema.MIGRATIONS)
"""Every migration this code knows (taken before a test narrows the list)."""

Opener = Callable[[Path], AbstractAsyncContextManager[SqlStore]]


OPENERS: dict[str, Opener] = {"sqlite": sqlite_store, "postgresql": postgres_store}
DIALECTS = sorted(OPENERS)

Said = tuple[bool | None, str, str]
"""One word as written: (fleeing, or None to withdraw the record's word; as_of; said_by)."""


async def _say(store: SqlStore, *words: Said, client: str = "C1") -> None:
    """Write the words in order, each in its own transaction (as separate imports do)."""
    for fleeing, as_of, said_by in words:
        async with store.transaction() as tx:
            await tx.set_dv_status(SOURCE, client, fleeing, as_of, said_by)


async def _status(store: SqlStore, client: str = "C1", source: str = SOURCE) -> bool | None:
    """The client's derived status: fleeing or not, None when no word is held."""
    async with store.transaction() as tx:
        row = await tx._c.fetchrow(
            "SELECT fleeing FROM dv_status WHERE source=? AND client_id=?", (source, client)
        )
    return None if row is None else bool(row[0])


A_JUNE_FLEEING = (True, "2025-06-01", "hmis.HealthAndDV/A")
B_JANUARY_CALM = (False, "2024-01-10", "hmis.HealthAndDV/B")
B_JANUARY_FLEEING = (True, "2024-01-10", "hmis.HealthAndDV/B")
A_JUNE_CALM = (False, "2025-06-01", "hmis.HealthAndDV/A")

CASES: list[tuple[str, list[Said], bool | None]] = [
    ("a first word is kept", [A_JUNE_FLEEING], True),
    ("an older word does not clear a newer one", [A_JUNE_FLEEING, B_JANUARY_CALM], True),
    ("a newer word replaces an older one", [B_JANUARY_CALM, A_JUNE_FLEEING], True),
    ("a newer 'not fleeing' wins over an older 'fleeing'", [B_JANUARY_FLEEING, A_JUNE_CALM], False),
    ("an older 'fleeing' read later does not win", [A_JUNE_CALM, B_JANUARY_FLEEING], False),
    ("a correction of the same record replaces its word", [A_JUNE_FLEEING, A_JUNE_CALM], False),
    (
        "a correction of the newest record to an older date brings the other word back",
        [B_JANUARY_FLEEING, A_JUNE_CALM, (False, "2023-03-03", "hmis.HealthAndDV/A")],
        True,
    ),
    (
        "another record of the same day saying 'not fleeing' does not clear 'fleeing'",
        [A_JUNE_FLEEING, (False, "2025-06-01", "hmis.HealthAndDV/C")],
        True,
    ),
    (
        "another record of the same day saying 'fleeing' wins over 'not fleeing'",
        [(False, "2025-06-01", "hmis.HealthAndDV/C"), A_JUNE_FLEEING],
        True,
    ),
    (
        "the same id of another kind is another record",
        [A_JUNE_FLEEING, (False, "2025-06-01", "client/A")],
        True,
    ),
    ("an undated word ranks below a dated one", [A_JUNE_FLEEING, (False, "", "client/C1")], True),
    ("a dated word wins over an undated one", [(True, "", "client/C1"), B_JANUARY_CALM], False),
    ("undated words of two records: fleeing wins", [(True, "", "r1"), (False, "", "r2")], True),
    ("an undated record corrects its own word", [(True, "", "r1"), (False, "", "r1")], False),
    (
        "withdrawing the newest word brings the one before it back",
        [B_JANUARY_FLEEING, A_JUNE_CALM, (None, "", "hmis.HealthAndDV/A")],
        True,
    ),
    (
        "withdrawing the only word leaves no status",
        [A_JUNE_FLEEING, (None, "", A_JUNE_FLEEING[2])],
        None,
    ),
    (
        "withdrawing a word never said changes nothing",
        [A_JUNE_FLEEING, (None, "", "other/X")],
        True,
    ),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("words", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_the_status_is_the_latest_dated_word(
    dialect: str, tmp_path: Path, words: list[Said], status: bool | None
) -> None:
    async with OPENERS[dialect](tmp_path) as store:
        await _say(store, *words)
        assert await _status(store) is status


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_words_of_one_transaction_follow_the_rule_too(dialect: str, tmp_path: Path) -> None:
    """One batch may carry several rows of a client: the order inside it does not matter."""
    async with OPENERS[dialect](tmp_path) as store:
        async with store.transaction() as tx:
            for fleeing, as_of, said_by in (A_JUNE_FLEEING, B_JANUARY_CALM):
                await tx.set_dv_status(SOURCE, "C1", fleeing, as_of, said_by)
        assert await _status(store) is True


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_each_source_and_client_keeps_its_own_words(dialect: str, tmp_path: Path) -> None:
    async with OPENERS[dialect](tmp_path) as store:
        await _say(store, A_JUNE_FLEEING)
        async with store.transaction() as tx:
            await tx.set_dv_status(OTHER, "C1", *B_JANUARY_CALM)
            await tx.set_dv_status(SOURCE, "C2", *B_JANUARY_CALM)
        assert await _status(store) is True
        assert await _status(store, "C2") is False
        assert await _status(store, "C1", OTHER) is False


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_deletion_by_id_withdraws_the_words_of_the_records_it_deletes(
    dialect: str, tmp_path: Path
) -> None:
    """``mark_deleted`` (a full refresh no longer carrying the rows) withdraws their words."""
    async with OPENERS[dialect](tmp_path) as store:
        async with store.transaction() as tx:
            for rid in ("A", "B"):
                await tx._c.execute(
                    "INSERT INTO records (kind, source, source_id, owner, version, payload, "
                    "payload_hash, source_system, received_at, deleted, sensitivity, restricted, "
                    "flags) VALUES (?,?,?,?,?,?,?,?,?,0,'',0,'')",
                    ("hmis.HealthAndDV", SOURCE, rid, "o", "1", b"{}", "h", "s", "2025-01-01"),
                )
        await _say(store, B_JANUARY_FLEEING, A_JUNE_CALM)
        assert await _status(store) is False
        async with store.transaction() as tx:
            assert await tx.mark_deleted("hmis.HealthAndDV", SOURCE, ["A"]) == 1
        assert await _status(store) is True
        async with store.transaction() as tx:
            assert await tx.mark_deleted("hmis.HealthAndDV", SOURCE, ["B"]) == 1
        assert await _status(store) is None


# ---- migration 13 ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_status_of_an_existing_store_is_kept_failing_closed(
    dialect: str, tmp_path: Path
) -> None:
    """A store at schema 12 holding a status per client migrates to 13 with each as a word
    of no record: "fleeing" dated the day the hub learnt it (an older row's correction
    cannot clear it, a later row can), "not fleeing" undated (any dated word outranks it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", ALL_MIGRATIONS[:12])
        patch.setattr(schema, "LATEST_VERSION", 12)
        async with OPENERS[dialect](tmp_path) as store:
            assert await store.schema_version() == 12
            async with store.transaction() as tx:
                for client, fleeing in (("C1", 1), ("C2", 0)):
                    await tx._c.execute(
                        "INSERT INTO dv_status (source, client_id, fleeing, updated_at) "
                        "VALUES (?,?,?,?)",
                        (SOURCE, client, fleeing, "2025-01-01T00:00:00.000000+00:00"),
                    )
            patch.setattr(schema, "MIGRATIONS", ALL_MIGRATIONS)
            patch.setattr(schema, "LATEST_VERSION", ALL_MIGRATIONS[-1][0])
            assert await store.migrate() == [13]
            await store.check_schema()
            assert await _status(store, "C1") is True
            assert await _status(store, "C2") is False
            await _say(store, B_JANUARY_CALM, client="C1")  # 2024: before the hub learnt it
            assert await _status(store, "C1") is True
            await _say(store, A_JUNE_CALM, client="C1")  # 2025-06: after
            assert await _status(store, "C1") is False
            await _say(store, B_JANUARY_FLEEING, client="C2")
            assert await _status(store, "C2") is True


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_word_moves_with_its_record_to_another_client(dialect: str, tmp_path: Path) -> None:
    """A later version of a row naming another client takes its word along: the first
    client's status is settled from the words left to it."""
    async with OPENERS[dialect](tmp_path) as store:
        await _say(store, B_JANUARY_FLEEING, A_JUNE_CALM)  # C1: row A's newer "not fleeing"
        assert await _status(store, "C1") is False
        await _say(store, A_JUNE_CALM, client="C2")  # row A now names C2
        assert await _status(store, "C1") is True
        assert await _status(store, "C2") is False
        await _say(store, (None, "", A_JUNE_CALM[2]), client="C1")  # withdrawn wherever filed
        assert await _status(store, "C2") is None
