"""``hub audit verify`` finds the first edited, deleted or swapped entry; checkpoints catch a
rewritten log; ``hub audit disclosures`` accounts for releases."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import date
from pathlib import Path

import orjson

from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.synthetic import client


def consent_for(pid: str) -> str:
    return orjson.dumps(
        {
            "id": f"c{pid}",
            "client": {"system": "hmis:demo", "value": pid},
            "signed_on": "2024-01-01",
            "networks": ["hmis", "cie"],
            "purposes": ["coordination", "treatment"],
            "recorded_by": "shelter-a",
        }
    ).decode()


def make_log(config: Path, reads: int = 5, pid: str = "1") -> None:
    async def main() -> None:
        from consent.parsing import parse_consent_file

        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            await ctx.import_consents(
                parse_consent_file(
                    consent_for(pid), agencies=cfg.agencies, policy=cfg.consent_policy
                )
            )
            r = await ctx.engine.ingest([client(pid)])
            for _ in range(reads):
                await ctx.engine.disclose_person(
                    r.persons[f"hmis:demo/{pid}"], recipient="hospital-x", purpose="treatment"
                )

    asyncio.run(main())


def db(config: Path) -> sqlite3.Connection:
    return sqlite3.connect(config.parent / "hub-data" / "hub.db", isolation_level=None)


def test_intact_chain_verifies(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config)
    result = hub_cli("audit", "verify")
    assert result.exit_code == 0
    assert "intact: 5 entries" in result.output


def test_edited_entry_is_named(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config)
    with db(config) as conn:
        body = orjson.loads(conn.execute("SELECT body FROM audit_log WHERE seq=2").fetchone()[0])
        body["released"] = ["identity", "health", "hiv"]
        conn.execute("UPDATE audit_log SET body=? WHERE seq=2", (orjson.dumps(body),))
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "entry 2 (altered)" in result.output


def test_deleted_entry_is_named(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config)
    with db(config) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq=3")
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "entry 3 (missing)" in result.output


def test_swapped_entries_are_named(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config)
    with db(config) as conn:
        b2 = conn.execute("SELECT body, prev_hash, hash FROM audit_log WHERE seq=2").fetchone()
        b4 = conn.execute("SELECT body, prev_hash, hash FROM audit_log WHERE seq=4").fetchone()
        conn.execute("UPDATE audit_log SET body=?, prev_hash=?, hash=? WHERE seq=2", b4)
        conn.execute("UPDATE audit_log SET body=?, prev_hash=?, hash=? WHERE seq=4", b2)
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "entry 2" in result.output


def test_truncated_tail_is_detected(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config)
    with db(config) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq>=4")
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "removed from the end" in result.output


def test_rewritten_log_is_caught_by_the_signed_checkpoint(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config, reads=3)
    assert hub_cli("audit", "checkpoint").exit_code == 0
    # An attacker with database access rewrites the whole log consistently: a fresh,
    # valid chain with other contents, head moved to match.
    with db(config) as conn:
        conn.execute("DELETE FROM audit_log")
        conn.execute("DELETE FROM audit_head")
    make_log(config, reads=3, pid="2")
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "checkpoint" in result.output


def test_disclosures_account_for_releases_only(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config, reads=2)
    result = hub_cli("audit", "disclosures", "--client", "1", "--client-system", "hmis:demo")
    rows = orjson.loads(result.stdout)
    assert len(rows) == 2
    assert rows[0]["recipient"] == "hospital-x" and rows[0]["purpose"] == "treatment"
    assert "identity" in rows[0]["what"]


def person_of(config: Path, seq: int) -> str:
    with db(config) as conn:
        row = conn.execute("SELECT person_id FROM audit_log WHERE seq=?", (seq,)).fetchone()
    return str(row[0])


def disclosed(hub_cli, pid: str) -> list[dict]:
    result = hub_cli("audit", "disclosures", "--client", pid, "--client-system", "hmis:demo")
    assert result.exit_code == 0, result.output
    rows: list[dict] = orjson.loads(result.stdout)
    return rows


def test_entry_moved_to_another_client_is_named(hub_dir, hub_cli) -> None:
    # The person column is outside the hash; the accounting selects by it.
    config = hub_dir()
    make_log(config, reads=3, pid="1")  # entries 1-3
    make_log(config, reads=3, pid="2")  # entries 4-6
    other = person_of(config, 4)
    with db(config) as conn:
        conn.execute("UPDATE audit_log SET person_id=? WHERE seq=2", (other,))
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "entry 2 (altered)" in result.output
    assert other not in result.output  # internal ids are not printed


def test_disclosures_list_only_entries_about_the_client(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config, reads=3, pid="1")  # entries 1-3
    make_log(config, reads=3, pid="2")  # entries 4-6
    with db(config) as conn:
        conn.execute("UPDATE audit_log SET person_id=? WHERE seq=2", (person_of(config, 4),))
    # Client 1's entry 2, filed under client 2, is not listed as a disclosure of client 2.
    assert [r["audit_seq"] for r in disclosed(hub_cli, "2")] == [4, 5, 6]


def test_entry_filed_under_an_unknown_id_is_named(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config, reads=4)
    with db(config) as conn:
        conn.execute("UPDATE audit_log SET person_id='someone-else' WHERE seq=3")
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "entry 3 (altered)" in result.output
    assert "filed under another client" in result.output


def test_first_of_several_moved_entries_is_named(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config, reads=3, pid="1")
    make_log(config, reads=3, pid="2")
    with db(config) as conn:
        conn.execute("UPDATE audit_log SET person_id='someone-else' WHERE seq=5")
        conn.execute("UPDATE audit_log SET person_id=? WHERE seq=6", (person_of(config, 1),))
    result = hub_cli("audit", "verify")
    assert result.exit_code == 1
    assert "entry 5 (altered)" in result.output


def test_entries_of_several_clients_verify_intact(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config, reads=2, pid="1")
    make_log(config, reads=3, pid="2")
    result = hub_cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "intact: 5 entries" in result.output
    assert len(disclosed(hub_cli, "1")) == 2 and len(disclosed(hub_cli, "2")) == 3


UNSENT_FEED = """
[[feeds]]
name = "to-211"
recipient = "cie-211"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
options = {url = "http://127.0.0.1:9/never-sent"}
"""


def test_a_record_only_queued_is_not_a_disclosure(tmp_path, hub_dir, hub_cli) -> None:
    config = hub_dir(UNSENT_FEED)
    path = tmp_path / "consent.json"
    path.write_text(consent_for("1"), encoding="utf-8")
    assert hub_cli("consent", "import", str(path)).exit_code == 0

    async def ingest() -> None:
        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            await ctx.engine.ingest([client("1")])
            assert [r.status for r in await ctx.store.list_outbox()] == ["pending"]

    asyncio.run(ingest())
    # Queued for the feed, no worker has run: nothing has reached cie-211 yet.
    assert disclosed(hub_cli, "1") == []


def test_an_entry_body_that_is_not_an_object_is_named_not_a_crash(hub_dir, hub_cli) -> None:
    config = hub_dir()
    make_log(config, reads=3)
    for body in (b"[1, 2]", b"null", b"not json"):
        with db(config) as conn:
            conn.execute("UPDATE audit_log SET body=? WHERE seq=2", (body,))
        result = hub_cli("audit", "verify")
        assert result.exit_code == 1, result.output
        assert "entry 2 (altered)" in result.output
        # The accounting says it could not read the entry rather than leave it out.
        rows = disclosed(hub_cli, "1")
        assert [r["audit_seq"] for r in rows] == [1, 2, 3]
        assert "cannot be read" in rows[1]["error"]


def test_a_value_naming_several_clients_is_refused_not_answered_empty(hub_dir, hub_cli) -> None:
    # Client 7 of the HMIS and a hospital's patient with MRN 7: "--client 7" alone names two.
    config = hub_dir()
    make_log(config, reads=2, pid="7")

    async def hospital_patient() -> None:
        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg)) as ctx:
            patient = client(
                "7",
                source="mercy:mrn",
                owner="hospital-x",
                given="Bo",
                family="Bell",
                birth_date=date(1961, 2, 3),
            )
            await ctx.engine.ingest([patient])

    asyncio.run(hospital_patient())
    for command in (
        ("audit", "disclosures", "--client", "7"),
        ("consent", "show", "--client", "7"),
        (
            "consent",
            "check",
            "--client",
            "7",
            "--owner",
            "shelter-a",
            "--recipient",
            "hospital-x",
            "--purpose",
            "treatment",
        ),
    ):
        result = hub_cli(*command)
        assert result.exit_code == 2, result.output
        assert "names several clients: add --client-system" in result.output
    assert len(disclosed(hub_cli, "7")) == 2
