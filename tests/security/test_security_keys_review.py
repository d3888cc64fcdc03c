"""Review findings on the key file and key rotation: the key file is written atomically and
never readable by others, a damaged or wrong key file is a one-line error, ``hub keys retire``
never writes ``$HUB_KEYS`` over the key file, and a hub that runs while ``hub keys rotate``
re-encrypts still reads every row."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.keys import KeyRing, load_keyring
from hub.synthetic import client

SECRET_NAME = "Quixtanova"


def key_file(tmp_path: Path) -> Path:
    return tmp_path / "hub-data" / "keys.json"


def test_a_key_file_write_that_fails_midway_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    KeyRing.generate().write(path)
    before = path.read_bytes()

    def crash(self: KeyRing) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(KeyRing, "to_json", crash)
    with pytest.raises(OSError):
        KeyRing.generate().write(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary left


def test_keys_are_never_written_into_a_file_others_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{}", encoding="utf-8")
    os.chmod(path, 0o644)  # an old file, made readable by mistake
    modes: list[int] = []
    fdopen = os.fdopen

    def spy(fd: int, *args: Any, **kwargs: Any) -> Any:
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", spy)
    KeyRing.generate().write(path)
    assert modes == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _broken(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = json.loads(KeyRing.generate().to_json())
        change(data)
        path.write_text(json.dumps(data), encoding="utf-8")

    return write


def _short_key(data: dict[str, Any]) -> None:
    data["data_keys"][0]["key"] = base64.b64encode(b"0123456789abcde").decode()


def _unknown_active(data: dict[str, Any]) -> None:
    data["active_data_key"] = "knope"


def _twice(data: dict[str, Any]) -> None:
    data["data_keys"].append(dict(data["data_keys"][0]))


def _short_signing_key(data: dict[str, Any]) -> None:
    data["signing_key"] = base64.b64encode(b"x" * 31).decode()


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda p: p.write_bytes(b"\xff\xfe\x00{"), "not UTF-8 text"),
        (_broken(_short_key), "is 15 bytes, 16, 24 or 32 needed"),
        (_broken(_unknown_active), "active data key 'knope' is not in data_keys"),
        (_broken(_twice), "two data keys have the same id"),
        (_broken(_short_signing_key), "signing_key is 31 bytes, 32 needed"),
    ],
    ids=["binary", "truncated-data-key", "unknown-active-key", "repeated-id", "signing-key"],
)
def test_a_damaged_key_file_is_a_one_line_error(
    hub_dir: Any, hub_cli: Any, tmp_path: Path, write: Callable[[Path], None], reason: str
) -> None:
    hub_dir()
    assert hub_cli("migrate").exit_code == 0
    path = key_file(tmp_path)
    write(path)
    os.chmod(path, 0o600)
    result = hub_cli("identity", "review")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: malformed key file (")
    assert reason in result.output and result.output.count("\n") == 1


def test_a_key_file_of_another_hub_is_a_one_line_error(
    hub_dir: Any, hub_cli: Any, tmp_path: Path
) -> None:
    hub_dir()
    consent = tmp_path / "consent.json"
    consent.write_text(
        orjson.dumps(
            [
                {
                    "id": "c1",
                    "client": {"system": "hmis:demo", "value": "1"},
                    "signed_on": "2025-01-01",
                    "recorded_by": "shelter-a",
                }
            ]
        ).decode(),
        encoding="utf-8",
    )
    assert hub_cli("consent", "import", str(consent)).exit_code == 0
    # A backup of the wrong hub restored (its blind-index key kept: a wholly different key
    # file is refused sooner, see tests/security/test_security_index_key.py).
    index_key = load_keyring(key_file(tmp_path)).index_key
    dataclasses.replace(KeyRing.generate(), index_key=index_key).write(key_file(tmp_path))
    result = hub_cli("identity", "review")
    assert result.exit_code == 2
    assert result.output == (
        "error: a protected value does not decrypt (unknown key id or tampered data)\n"
    )


def test_retire_refuses_keys_from_the_environment_and_leaves_the_key_file_alone(
    hub_dir: Any, hub_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_dir()
    assert hub_cli("migrate").exit_code == 0
    before = key_file(tmp_path).read_bytes()
    env = KeyRing.generate()
    env = dataclasses.replace(env, data_keys=(("kold", os.urandom(32)), *env.data_keys))
    monkeypatch.setenv("HUB_KEYS", env.to_json())
    result = hub_cli("keys", "retire", "kold")
    assert result.exit_code == 2
    assert result.output.startswith("error: keys come from $HUB_KEYS")
    assert key_file(tmp_path).read_bytes() == before  # not replaced by the variable's keys


def test_a_hub_running_during_rotation_reads_what_was_reencrypted(
    hub_dir: Any, hub_cli: Any, tmp_path: Path
) -> None:
    config = hub_dir()
    old_key = load_keyring(key_file(tmp_path)).active_data_key

    async def main() -> None:
        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg), migrate=True) as running:
            first = await running.engine.ingest([client("41", family=SECRET_NAME)])
            person = first.persons["hmis:demo/41"]
            rotated = await asyncio.to_thread(hub_cli, "keys", "rotate")
            assert rotated.exit_code == 0, rotated.output
            async with running.store.transaction() as tx:
                [row] = await tx.records_of_person(person)
            assert SECRET_NAME.encode() in row.payload
            # having met the new key, the running hub also encrypts with it
            await running.engine.ingest([client("42", family=SECRET_NAME)])
            assert not await running.store.key_in_use(old_key)

    asyncio.run(main())
    assert hub_cli("keys", "retire", old_key).exit_code == 0


def test_rotation_goes_past_a_value_that_decrypts_with_no_key(
    hub_dir: Any, hub_cli: Any, tmp_path: Path
) -> None:
    """One damaged record used to stop every `hub keys rotate` at the same row, so the old
    key could never be retired; now it is left as it is, reported, and the rest rotates."""
    import sqlite3

    from hub.config import load_config
    from hub.context import make_plugins, open_context
    from hub.synthetic import client

    config = hub_dir()

    async def seed() -> None:
        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            await ctx.engine.ingest([client(str(i), family="Evans") for i in range(5)])

    asyncio.run(seed())
    with sqlite3.connect(tmp_path / "hub-data" / "hub.db") as db:
        [(payload,)] = db.execute("SELECT payload FROM records WHERE source_id='0'").fetchall()
        damaged = bytes(payload).replace(b'__sealed__":"enc1:', b'__sealed__":"enc1:x')
        assert damaged != bytes(payload)
        db.execute("UPDATE records SET payload=? WHERE source_id='0'", (damaged,))
    result = hub_cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["unreadable"] == 1 and report["reencrypted"]["records"] == 4
    assert "1 stored value(s) decrypt with no key" in result.stderr
    assert "Evans" not in result.output
