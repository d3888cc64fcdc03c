"""``hub audit verify`` finds the first edited, deleted or swapped entry; checkpoints catch a
rewritten log; ``hub audit disclosures`` accounts for releases."""

from __future__ import annotations

import asyncio
import sqlite3
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
