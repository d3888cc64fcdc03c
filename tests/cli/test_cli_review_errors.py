"""Review findings on the CLI: a store written by a newer hub, a malformed record reference,
a malformed PostgreSQL URL, and Ctrl-C on ``hub serve``: one-line errors (exit 2) or a
clean stop, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.store import StoreError
from hub.store.schema import LATEST_VERSION
from tests.conftest import fresh_pg_database, write_hub

NEWER = LATEST_VERSION + 3
NEWER_ERROR = (
    f"store schema is version {NEWER}, newer than this hub ({LATEST_VERSION}): upgrade the hub"
)


def hub_exe() -> str:
    return str(Path(sys.executable).parent / "hub")


def hub_cmd(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("HUB_CONFIG", "HUB_STORE_URL")}
    return subprocess.run(
        [hub_exe(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=environ | env
    )


def stamp_newer(db: Path) -> None:
    """Mark the store as migrated by a future hub."""
    import sqlite3

    with sqlite3.connect(db) as c:
        c.execute(
            "INSERT INTO schema_migrations (version, title, applied_at) VALUES (?, ?, ?)",
            (NEWER, "future", "2030-01-01T00:00:00Z"),
        )


@pytest.mark.parametrize("command", [("migrate",), ("audit", "verify"), ("outbox", "list")])
def test_a_store_of_a_newer_hub_is_refused(hub_dir, hub_cli, command: tuple[str, ...]) -> None:
    config = hub_dir()
    assert hub_cli("migrate").exit_code == 0
    stamp_newer(config.parent / "hub-data" / "hub.db")
    result = hub_cli(*command)
    assert result.exit_code == 2
    assert result.output == f"error: {NEWER_ERROR}\n"


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_both_stores_refuse_a_newer_schema(hub_factory, store: str) -> None:
    async with hub_factory(store=store) as ctx:
        async with ctx.store.transaction() as tx:
            await tx._c.execute(
                "INSERT INTO schema_migrations (version, title, applied_at) VALUES (?,?,?)",
                (NEWER, "future", "2030-01-01T00:00:00Z"),
            )
        with pytest.raises(StoreError) as checked:
            await ctx.store.check_schema()
        assert str(checked.value) == NEWER_ERROR
        with pytest.raises(StoreError) as migrated:
            await ctx.store.migrate()
        assert str(migrated.value) == NEWER_ERROR


def test_unlink_of_a_malformed_reference_is_a_one_line_error(hub_dir, hub_cli) -> None:
    hub_dir()
    assert hub_cli("migrate").exit_code == 0
    result = hub_cli("identity", "unlink", "bad")
    assert result.exit_code == 2
    assert result.output == (
        "error: record reference 'bad' is not kind/source/id (e.g. client/hmis:1/42)\n"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://hub:S3cret@127.0.0.1:54x2/hub", "invalid literal for int()"),
        ("postgresql://hub:S3cret@127.0.0.1:5432/hub?sslmode=bogus", "`sslmode` parameter"),
        ("postgresql://hub:S3cret@127.0.0.1:99999/hub", "connect(): port must be 0-65535"),
    ],
)
def test_a_malformed_postgresql_url_is_a_one_line_error(
    tmp_path: Path, url: str, reason: str
) -> None:
    write_hub(tmp_path)
    result = hub_cmd(tmp_path, "audit", "verify", HUB_STORE_URL=url)
    assert result.returncode == 2, result.stderr
    host = url.split("@")[1].split("?")[0]
    assert result.stderr.startswith(f"error: invalid PostgreSQL store URL for {host}: {reason}")
    assert result.stderr.count("\n") == 1
    assert "S3cret" not in result.stderr


async def test_a_postgresql_password_never_shows_in_store_errors() -> None:
    from hub.store.postgres import PostgresStore

    async with fresh_pg_database() as url:
        spoiled = url.replace("://", "://nobody:Pa55word@", 1) + "?sslmode=bogus&password=Xyzzy1"
        with pytest.raises(StoreError) as err:
            await PostgresStore(spoiled).open()
    assert "Pa55word" not in str(err.value) and "Xyzzy1" not in str(err.value)


SERVE_TOML = """
[http]
host = "127.0.0.1"
port = 0

[hl7]
port = 0

[fhir]
validation_workers = 2
"""


def test_ctrl_c_on_serve_stops_without_a_traceback(tmp_path: Path) -> None:
    """A terminal's Ctrl-C sends SIGINT to the whole process group: the hub and its FHIR
    validation workers."""
    config = write_hub(tmp_path, SERVE_TOML)
    proc = subprocess.Popen(
        [hub_exe(), "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "HUB_LOG_LEVEL": "WARNING"},
    )
    try:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen.append(line)
            if not line or "hub ready" in line:
                break
        assert "fhir-validation started\n" in seen, "".join(seen)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
        assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
        assert rest.endswith("stopped\n")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
