"""Small local receivers a sink delivers to during its contract tests.

* :class:`HttpReceiver` — an aiohttp server on 127.0.0.1 (webhooks, FHIR push, NDJSON over
  HTTPS in tests): answers 200 ``{}``, or 503 while failing.
* :class:`MllpReceiver` — an HL7 v2 MLLP listener on 127.0.0.1: answers ``AA`` (``AE``
  while failing) echoing MSH-10.
* :class:`FolderReceiver` — a folder a file sink writes to; while failing, the folder is
  replaced by a plain file so nothing can be written there.

Each records what arrived, says how often an idempotency key reached it (:meth:`saw`), can
hold requests unanswered (to cancel a delivery mid-way) and lists partial files it holds.
Everything listens on loopback with an OS-chosen port; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from aiohttp import web

MSH10_LENGTH = 20
"""MSH-10 (message control id) holds at most 20 characters up to HL7 v2.6; a sink may put the
first 20 characters of an idempotency key there."""
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", "~")
"""File name endings that mark a file still being written."""


class Receiver(Protocol):
    """What the contract tests need of a receiver."""

    kind: str
    counts_arrivals: bool
    """True when every delivery is a new arrival (network); a folder may overwrite a file."""

    def bodies(self) -> list[bytes]:
        """Every message or file received, in arrival (or name) order."""
        ...

    def saw(self, key: str) -> int:
        """How many of the received messages or files carry the idempotency key."""
        ...

    def pending(self) -> int:
        """Requests held unanswered right now (see :meth:`hold`)."""
        ...

    def hold(self) -> None:
        """Keep answering back until :meth:`release` (no-op for a folder)."""
        ...

    def release(self) -> None:
        """Answer held and later requests again."""
        ...

    def fail(self, failing: bool) -> None:
        """Answer as a partner that is down (503, ``AE``, an unwritable folder) or recover."""
        ...

    def leftovers(self) -> list[str]:
        """Names of partial or temporary files left behind (always empty for a network)."""
        ...


ReceiverFactory = Callable[[Path], AbstractAsyncContextManager[Receiver]]
"""Opens a receiver given a scratch folder (for a custom receiver in a sink contract)."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """One HTTP request as the receiver got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"<Arrival {self.method} {self.path} {len(self.body)} bytes>"


@dataclass
class _Gate:
    """Hold/release and failing state shared by the network receivers."""

    open: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0
    failing: bool = False

    def __post_init__(self) -> None:
        self.open.set()

    async def wait(self, seconds: float = 30.0) -> None:
        """Wait while held (bounded: a forgotten hold never hangs a test run)."""
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.open.wait(), seconds)
        finally:
            self.waiting -= 1


class _GatedReceiver:
    """Hold, release and failure switches shared by the network receivers.

    While failing, the HTTP receiver answers 503 (``Retry-After: 1``) and the MLLP receiver
    ``AE`` (application error: retry).
    """

    _gate: _Gate

    def pending(self) -> int:
        """Requests or messages held unanswered."""
        return self._gate.waiting

    def hold(self) -> None:
        """Hold answers back."""
        self._gate.open.clear()

    def release(self) -> None:
        """Answer again."""
        self._gate.open.set()

    def fail(self, failing: bool) -> None:
        """Answer with a retryable failure while ``failing``."""
        self._gate.failing = failing

    def leftovers(self) -> list[str]:
        """Nothing is ever left half-written on a network receiver's side."""
        return []


class HttpReceiver(_GatedReceiver):
    """An HTTP server on 127.0.0.1 that accepts any method on any path."""

    kind = "http"
    counts_arrivals = True
    key_headers = ("Idempotency-Key", "X-Request-Id")
    """Headers that may carry an idempotency key."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.url = ""
        self._gate = _Gate()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on an OS-chosen loopback port; ``url`` is then ``http://127.0.0.1:<port>/``."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/"
        self._runner = runner

    async def close(self) -> None:
        """Release held requests and stop the server."""
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrivals.append(Arrival(request.method, request.path, dict(request.headers), body))
        await self._gate.wait()
        if self._gate.failing:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(status=200, body=b"{}", content_type="application/json")

    def bodies(self) -> list[bytes]:
        """Every request body, in arrival order."""
        return [a.body for a in self.arrivals]

    def saw(self, key: str) -> int:
        """Requests whose key header (any case) equals ``key`` or whose body contains it."""
        needle = key.encode("utf-8")
        wanted = {h.lower() for h in self.key_headers}
        count = 0
        for a in self.arrivals:
            keys = {v for k, v in a.headers.items() if k.lower() in wanted}
            if key in keys or needle in a.body:
                count += 1
        return count


# ---- MLLP --------------------------------------------------------------------------------

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"


def control_id(message: bytes) -> str:
    """MSH-10 of an HL7 v2 message ('' when it cannot be read)."""
    text = message.decode("utf-8", "replace").lstrip("\ufeff\r\n ")
    first = text.replace("\n", "\r").split("\r", 1)[0]
    if not first.startswith("MSH") or len(first) < 4:
        return ""
    fields = first.split(first[3])
    return fields[9].strip() if len(fields) > 9 else ""


def ack_for(message: bytes, code: str) -> bytes:
    """A framed ``ACK`` answering a message: MSA-1 ``code``, MSA-2 its MSH-10."""
    cid = control_id(message)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    text = f"MSH|^~\\&|KIT|KIT|||{stamp}||ACK|{cid[:16]}-ACK|P|2.5.1\rMSA|{code}|{cid}\r"
    return START_BLOCK + text.encode("utf-8") + END_BLOCK


class MllpReceiver(_GatedReceiver):
    """An MLLP listener on 127.0.0.1 that acknowledges every message."""

    kind = "mllp"
    counts_arrivals = True

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._gate = _Gate()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on an OS-chosen loopback port (``host``, ``port``)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Release held messages, drop connections and stop listening."""
        self.release()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        buffer = b""
        try:
            while True:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    return
                buffer += chunk
                while True:
                    start = buffer.find(START_BLOCK)
                    end = buffer.find(END_BLOCK, start + 1)
                    if start < 0 or end < 0:
                        break
                    message = buffer[start + 1 : end]
                    buffer = buffer[end + len(END_BLOCK) :]
                    self.messages.append(message)
                    await self._gate.wait()
                    writer.write(ack_for(message, "AE" if self._gate.failing else "AA"))
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    def bodies(self) -> list[bytes]:
        """Every message, in arrival order."""
        return list(self.messages)

    def saw(self, key: str) -> int:
        """Messages whose MSH-10 is the key (or its first 20 characters, HL7's limit)."""
        count = 0
        for message in self.messages:
            cid = control_id(message)
            if cid and (cid == key or (len(cid) >= MSH10_LENGTH and key.startswith(cid))):
                count += 1
        return count


# ---- a folder ----------------------------------------------------------------------------


def is_temporary(name: str) -> bool:
    """Whether a file name marks a file still being written (hidden, ``.tmp`` …)."""
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


class FolderReceiver:
    """A folder a file sink writes into."""

    kind = "folder"
    counts_arrivals = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._parked: Path | None = None

    def _files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.rglob("*") if p.is_file())

    def bodies(self) -> list[bytes]:
        """The bytes of every finished file, by name."""
        return [p.read_bytes() for p in self._files() if not is_temporary(p.name)]

    def saw(self, key: str) -> int:
        """Finished files that contain the key."""
        needle = key.encode("utf-8")
        return sum(1 for body in self.bodies() if needle in body)

    def pending(self) -> int:
        """A folder never holds a writer back."""
        return 0

    def hold(self) -> None:
        """Nothing to hold: file writes do not wait for an answer."""

    def release(self) -> None:
        """Nothing to release."""

    def fail(self, failing: bool) -> None:
        """Put a plain file where the folder was (nothing can be written) or put it back."""
        if failing and self._parked is None:
            self._parked = self.path.with_name(self.path.name + ".parked")
            if self.path.exists():
                self.path.rename(self._parked)
            else:
                self._parked.mkdir(parents=True)
            self.path.write_bytes(b"")
        elif not failing and self._parked is not None:
            if self.path.is_file():
                self.path.unlink()
            elif self.path.is_dir():
                shutil.rmtree(self.path)
            self._parked.rename(self.path)
            self._parked = None

    def leftovers(self) -> list[str]:
        """Hidden or temporary files (a writer that was stopped half-way)."""
        return [p.name for p in self._files() if is_temporary(p.name)]


# ---- opening one -------------------------------------------------------------------------


@asynccontextmanager
async def http_receiver(_scratch: Path | None = None) -> AsyncIterator[HttpReceiver]:
    """A running :class:`HttpReceiver`, stopped on exit."""
    receiver = HttpReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.close()


@asynccontextmanager
async def mllp_receiver(_scratch: Path | None = None) -> AsyncIterator[MllpReceiver]:
    """A running :class:`MllpReceiver`, stopped on exit."""
    receiver = MllpReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.close()


@asynccontextmanager
async def folder_receiver(scratch: Path) -> AsyncIterator[FolderReceiver]:
    """A :class:`FolderReceiver` on ``scratch/received`` (created empty)."""
    path = scratch / "received"
    path.mkdir(parents=True, exist_ok=True)
    receiver = FolderReceiver(path)
    try:
        yield receiver
    finally:
        receiver.fail(False)


RECEIVERS: dict[str, ReceiverFactory] = {
    "http": http_receiver,
    "mllp": mllp_receiver,
    "folder": folder_receiver,
}
"""The kit's receivers by name (a sink contract's ``receiver``)."""


def open_receiver(
    kind: str | ReceiverFactory, scratch: Path
) -> AbstractAsyncContextManager[Receiver]:
    """Open a receiver by name (``http``, ``mllp``, ``folder``) or with a custom factory."""
    if callable(kind):
        return kind(scratch)
    try:
        factory = RECEIVERS[kind]
    except KeyError:
        known = ", ".join(sorted(RECEIVERS))
        raise ValueError(f"unknown receiver {kind!r} (known: {known})") from None
    return factory(scratch)
