"""Floors shared by several benchmarks: the least work that could do the same job.

* :class:`MllpCommitFloor` — a raw asyncio MLLP server that, per frame, commits one row to a
  WAL SQLite database (the hub's pragmas: ``synchronous=NORMAL``, ``BEGIN IMMEDIATE`` …
  ``COMMIT``) and answers a canned ACK. No parsing, no identity, no gate, no audit.
* :class:`HttpPostFloor` — the same aiohttp client the webhook sink uses, posting bodies
  straight to the receiver with the same number in flight. No outbox, no gate, no signing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import aiohttp

from hub.bench.model import Measured, Params
from hub.bench.procs import MllpLoad, Receiver

MESSAGES_FILE = "messages.txt"
"""Where ``prepare`` of the MLLP benchmarks writes the messages (in ``Params.data_dir``)."""

CANNED_ACK = (
    b"\x0bMSH|^~\\&|HUB|CIE|BENCHEHR|BENCHFAC|20250301080000||ACK^A01^ACK|ACK1|P|2.5\r"
    b"MSA|AA|B0\r\x1c\r"
)
END_BLOCK = b"\x1c\r"


def open_wal(path: Path) -> sqlite3.Connection:
    """A SQLite connection configured as the hub's store configures its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class MllpCommitFloor:
    """Raw asyncio MLLP server + one SQLite INSERT and COMMIT per message + canned ACK."""

    def __init__(self, params: Params, connections: int = 1) -> None:
        self.params = params
        self.connections = connections
        self._conn: sqlite3.Connection | None = None
        self._server: asyncio.Server | None = None
        self._load: MllpLoad | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self._conn
        assert conn is not None
        buffer = b""
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    return
                buffer += data
                while True:
                    end = buffer.find(END_BLOCK)
                    if end < 0:
                        break
                    frame, buffer = buffer[1:end], buffer[end + 2 :]
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("INSERT INTO message (body) VALUES (?)", (frame,))
                    conn.execute("COMMIT")
                    writer.write(CANNED_ACK)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()

    async def setup(self) -> None:
        """Create the database, start the server and the load generator."""
        self._conn = open_wal(self.params.workdir / "floor.db")
        self._conn.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = int(self._server.sockets[0].getsockname()[1])
        self._load = MllpLoad(self.params.data_dir / MESSAGES_FILE, port, self.connections)
        await self._load.start()

    async def run(self) -> Measured:
        """Send every message and wait for every ACK."""
        assert self._load is not None
        return await self._load.go()

    async def close(self) -> None:
        """Stop everything."""
        if self._load is not None:
            await self._load.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        if self._conn is not None:
            self._conn.close()


class HttpPostFloor:
    """POST ``bodies`` to a receiver with ``in_flight`` requests at once (plain aiohttp)."""

    def __init__(self, bodies: list[bytes], in_flight: int, path: str = "/hook") -> None:
        self.bodies = bodies
        self.in_flight = in_flight
        self.path = path
        self.receiver = Receiver()
        self._session: aiohttp.ClientSession | None = None

    async def setup(self) -> None:
        """Start the receiver and open the client session (one warm-up request)."""
        await self.receiver.start()
        connector = aiohttp.TCPConnector(limit=256)
        self._session = aiohttp.ClientSession(connector=connector)
        await self._post(b"{}")

    async def _post(self, body: bytes) -> None:
        assert self._session is not None
        async with self._session.post(
            self.receiver.base_url + self.path,
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"receiver answered HTTP {resp.status}")

    async def run(self) -> Measured:
        """Post every body; the count posted."""
        semaphore = asyncio.Semaphore(self.in_flight)

        async def one(body: bytes) -> None:
            async with semaphore:
                await self._post(body)

        await asyncio.gather(*(one(b) for b in self.bodies))
        return Measured(len(self.bodies))

    async def close(self) -> None:
        """Close the session and stop the receiver."""
        if self._session is not None:
            await self._session.close()
        await self.receiver.close()
