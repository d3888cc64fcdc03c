"""Kill -9 a ``hub serve`` while it receives HL7 and delivers to a local receiver, restart it:
every acknowledged message is stored, every permitted record reaches the receiver at least
once (duplicates with the same idempotency key), and nothing withheld is ever sent."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from hub.keys import KeyRing

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
CONSENTED = 12  # patients P0..P11 have a consent; P12..P17 have none
PATIENTS = 18


def adt(i: int) -> bytes:
    mrn = f"P{i}"
    given = "".join(chr(97 + int(d)) for d in str(i))  # letters only: distinct people
    text = "\r".join(
        [
            f"MSH|^~\\&|EPIC|MERCY|HUB|CIE|20250301101500||ADT^A01^ADT_A01|CTL{i}|P|2.5",
            "EVN|A01|20250301101500",
            f"PID|1||{mrn}^^^MERCY^MR||Crashtest^{given}||1980010{i % 9 + 1}|F",
            f"PV1|1|I|ER^1^A^MERCY||||||||||||||||V{i}",
        ]
    )
    return VT + text.encode() + FS + CR


TOML = """
[store]
url = "sqlite:///hub-data/hub.db"
[keys]
file = "hub-data/keys.json"
[http]
port = 0
[hl7]
port = {mllp_port}
[[hl7.senders]]
facility = "MERCY"
agency = "hospital-x"
[delivery]
poll_seconds = 0.1
backoff_base_seconds = 0.1
[[agencies]]
id = "hospital-x"
kind = "health"
networks = ["cie"]
[[agencies]]
id = "cie-211"
kind = "cie"
networks = ["cie"]
[[feeds]]
name = "to-211"
recipient = "cie-211"
kinds = ["client", "encounter"]
purpose = "coordination"
categories = ["identity", "health"]
connector = "webhook"
options = {{url = "{url}", secret_envs = ["CRASH_SECRET"]}}
"""


class Receiver:
    """The partner: records every delivery (and its idempotency key)."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = defaultdict(int)
        self.clients: set[str] = set()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.keys[body["idempotency_key"]] += 1
        if body["kind"] == "client":
            for ident in body["record"].get("identifiers", []):
                self.clients.add(ident["value"])
        return web.json_response({"ok": True})


def free_port() -> int:
    """A port the OS has just handed out (``[hl7] port = 0`` disables the listener)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def consents(path: Path) -> None:
    lines = [
        orjson.dumps(
            {
                "id": f"c{i}",
                "client": {"system": "MERCY", "value": f"P{i}"},
                "signed_on": "2024-01-01",
                "networks": ["cie"],
                "recorded_by": "hospital-x",
            }
        ).decode()
        for i in range(CONSENTED)
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def start(config: Path) -> tuple[subprocess.Popen[str], int]:
    exe = Path(sys.executable).parent / "hub"
    proc = subprocess.Popen(
        [str(exe), "--config", str(config), "serve"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "CRASH_SECRET": "s3cret-for-the-test", "HUB_LOG_LEVEL": "WARNING"},
    )
    assert proc.stderr is not None
    port = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"hl7-mllp-listener started on port (\d+)", line)
        if m:
            port = int(m.group(1))
        if "hub ready" in line:
            assert port, "the MLLP listener did not announce its port"
            return proc, port
    proc.kill()
    raise AssertionError("hub serve did not become ready")


async def send(port: int, indexes: range) -> list[int]:
    """Send messages one by one; the indexes that were acknowledged with AA."""
    acked: list[int] = []
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except OSError:
        return acked
    try:
        for i in indexes:
            writer.write(adt(i))
            await writer.drain()
            frame = await asyncio.wait_for(reader.readuntil(FS + CR), 5)
            if b"MSA|AA|" in frame:
                acked.append(i)
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        pass
    finally:
        writer.close()
    return acked


def stored_clients(config: Path) -> set[str]:
    with sqlite3.connect(config.parent / "hub-data" / "hub.db") as conn:
        rows = conn.execute("SELECT source_id FROM records WHERE kind='client'").fetchall()
    return {r[0] for r in rows}


async def scenario(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    config = tmp_path / "hub.toml"
    config.write_text(TOML.format(url=receiver.url, mllp_port=free_port()), encoding="utf-8")
    KeyRing.generate().write(tmp_path / "hub-data" / "keys.json")
    consents(tmp_path / "consents.jsonl")
    exe = Path(sys.executable).parent / "hub"
    await asyncio.to_thread(
        subprocess.run,
        [str(exe), "--config", str(config), "consent", "import", str(tmp_path / "consents.jsonl")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    proc: subprocess.Popen[str] | None = None
    try:
        proc, port = start(config)
        first = await send(port, range(0, PATIENTS // 2))
        proc.send_signal(signal.SIGKILL)  # no goodbye: the process dies mid-work
        proc.wait(timeout=10)
        proc, port = start(config)
        second = await send(port, range(PATIENTS // 2, PATIENTS))
        acked = first + second
        assert len(acked) == PATIENTS, "every message is acknowledged by one of the two runs"
        wanted = {f"P{i}" for i in range(CONSENTED)}
        deadline = time.monotonic() + 30
        expected = 2 * CONSENTED  # one client and one encounter per consented patient
        # Polling what another process delivers: nothing in this process to wait on.
        while time.monotonic() < deadline and (  # noqa: ASYNC110
            not wanted <= receiver.clients or len(receiver.keys) < expected
        ):
            await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        assert receiver.runner is not None
        await receiver.runner.cleanup()
    assert {f"P{i}" for i in acked} <= stored_clients(config)
    assert wanted <= receiver.clients, "every permitted record arrived at least once"
    assert receiver.clients <= wanted, "nothing withheld was sent"
    # redelivery after the crash reuses the key, so the receiver can de-duplicate
    assert len(receiver.keys) == 2 * CONSENTED


def test_kill_dash_nine_loses_nothing_acknowledged_and_sends_nothing_withheld(
    tmp_path: Path,
) -> None:
    asyncio.run(scenario(tmp_path))


__all__: list[Any] = []
