"""Fixtures of the HL7 v2 tests: a real hub with an ``[hl7]`` section, a started listener,
an MLLP test client and builders for small messages of our own (invented people)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from hub.config import load_config
from hub.context import HubContext, make_plugins, open_context
from hub.keys import KeyRing
from plugins.hl7.framing import Frame, MllpDecoder, encode_frame
from plugins.hl7.listener import MllpListener

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HUB_SHARED_DIR", REPO_ROOT.parent / "shared"))
SAMPLES = SHARED / "samples" / "hl7"

AGENCIES_TOML = """
[store]
url = "sqlite:///hub-data/hub.db"

[keys]
file = "hub-data/keys.json"

[[agencies]]
id = "hospital-x"
name = "Hospital X"
kind = "health"
networks = ["cie"]

[[agencies]]
id = "clinic-y"
name = "Clinic Y"
kind = "health"
networks = ["cie"]
identifiers = [{system = "urn:ietf:rfc:3986", value = "urn:oid:2.16.840.1.113883.3.999"},
               {system = "http://hl7.org/fhir/sid/us-npi", value = "1234567893"}]

[[agencies]]
id = "cie-211"
name = "211"
kind = "cie"
networks = ["cie"]
"""

HL7_TOML = """
[hl7]
port = 0
idle_timeout_seconds = 0.6
frame_timeout_seconds = 0.8
max_frame_bytes = 65536
stop_grace_seconds = 2

[[hl7.senders]]
facility = "GHHSFacility"
agency = "hospital-x"

[[hl7.senders]]
facility = "IA Public Health Lab"
agency = "cie-211"

[[hl7.senders]]
facility = "MERCY"
agency = "hospital-x"

[[hl7.senders]]
facility = "STRICTFAC"
agency = "hospital-x"
validation = "strict"
"""

# Invented people only; these values are also needles of the repo-wide no-PII-in-logs check.
PID_ZEBULON = (
    "PID|1||MRN001^^^MERCY^MR~078051121^^^USSSA^SS||Quixtanova^Zebulon^Q^JR^^^L~"
    "Quix^Zeb^^^^^N||19610723|M||2106-3^White^CDCREC|4242 Hidden Lane^Apt 2^San Diego^CA^"
    "92101^USA^H||^PRN^PH^^1^619^5550100|^WPN^PH^^^619^5550199||||||||N"
)


def adt(
    event: str = "A01",
    control_id: str = "C0001",
    *,
    facility: str = "MERCY",
    application: str = "EPIC",
    version: str = "2.5",
    timestamp: str = "20250301101500-0800",
    accept_ack: str = "",
    app_ack: str = "",
    pid: str = PID_ZEBULON,
    extra: tuple[str, ...] = (),
    visit: str = "V100",
    sep: str = "\r",
) -> str:
    """A small ADT message of our own (segments joined by ``sep``)."""
    structure = {"A03": "ADT_A03", "A28": "ADT_A05", "A31": "ADT_A05"}.get(event, "ADT_A01")
    msh = (
        f"MSH|^~\\&|{application}|{facility}|HUB|CIE|{timestamp}||ADT^{event}^{structure}|"
        f"{control_id}|P|{version}|||{accept_ack}|{app_ack}"
    ).rstrip("|")
    evn_code = "" if version.startswith(("2.7", "2.8")) else event
    segments = [msh, f"EVN|{evn_code}|{timestamp}", pid]
    segments.append(
        f"PV1|1|I|ER^101^B^MERCY||||||||||||||||{visit}|||||||||||||||||||||||||"
        "20250301100000-0800|20250302120000-0800"
    )
    segments.extend(extra)
    return sep.join(segments) + sep


@pytest.fixture
def make_adt() -> Callable[..., str]:
    """``make_adt(event, control_id, facility=…, …)`` → message text."""
    return adt


def write_config(tmp_path: Path, extra_toml: str = HL7_TOML) -> Path:
    """hub.toml (agencies + ``extra_toml``) and a key file in ``tmp_path``."""
    path = tmp_path / "hub.toml"
    path.write_text(AGENCIES_TOML + extra_toml, encoding="utf-8")
    keys = tmp_path / "hub-data" / "keys.json"
    if not keys.exists():
        KeyRing.generate().write(keys)
    return path


def load_hub_config(path: Path) -> Any:
    """Load a config the way the CLI does: plugin-owned sections validated by their hooks."""
    pm = make_plugins()
    return load_config(
        path,
        owned_sections=pm.owned_sections(),
        validate_section=lambda s, v, a: [
            e for r in pm.hook.hub_validate_config(section=s, value=v, agencies=a) if r for e in r
        ],
    )


@asynccontextmanager
async def open_hub(tmp_path: Path, extra_toml: str = HL7_TOML) -> AsyncIterator[HubContext]:
    """A real hub on SQLite in ``tmp_path``."""
    cfg = load_hub_config(write_config(tmp_path, extra_toml))
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        yield ctx


@pytest.fixture
async def hl7_hub(tmp_path: Path) -> AsyncIterator[HubContext]:
    """A hub whose ``[hl7]`` section lists the test senders."""
    async with open_hub(tmp_path) as ctx:
        yield ctx


@pytest.fixture
async def listener(hl7_hub: HubContext) -> AsyncIterator[MllpListener]:
    """A started MLLP listener on 127.0.0.1, OS-chosen port."""
    service = MllpListener(hl7_hub, "127.0.0.1", 0)
    await service.start()
    try:
        yield service
    finally:
        await asyncio.wait_for(service.stop(), 5)


class MllpTestClient:
    """A raw MLLP connection for tests: send bytes, collect answered frames, see closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = MllpDecoder(1 << 22)
        self.frames: list[bytes] = []

    @classmethod
    async def open(cls, port: int, **kwargs: Any) -> MllpTestClient:
        """Connect to 127.0.0.1:port (kwargs go to ``asyncio.open_connection``)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, **kwargs), 2
        )
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), 2)

    async def send(self, message: str | bytes) -> None:
        """Write one framed message."""
        data = message.encode() if isinstance(message, str) else message
        await self.send_raw(encode_frame(data))

    async def receive(self, count: int = 1, seconds: float = 2.0) -> list[bytes]:
        """The next ``count`` answered frames (fails after ``seconds``)."""

        async def collect() -> list[bytes]:
            while len(self.frames) < count:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionResetError("closed by the listener")
                self.frames += [e.data for e in self.decoder.feed(data) if isinstance(e, Frame)]
            out, self.frames = self.frames[:count], self.frames[count:]
            return out

        return await asyncio.wait_for(collect(), seconds)

    async def request(self, message: str | bytes, seconds: float = 2.0) -> str:
        """Send one message and return the text of the one frame that answers it."""
        await self.send(message)
        return (await self.receive(1, seconds))[0].decode()

    async def closed_by_peer(self, seconds: float = 2.0) -> bool:
        """Whether the listener closes the connection within ``seconds``."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), seconds)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        with suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self.writer.wait_closed(), 1)


@pytest.fixture
def mllp() -> Callable[..., Any]:
    """``await mllp(port)`` → a connected :class:`MllpTestClient`."""
    return MllpTestClient.open


def msa(ack_text: str) -> list[str]:
    """The MSA fields of an ACK text (``["MSA", code, control id, …]``)."""
    for line in ack_text.split("\r"):
        if line.startswith("MSA|"):
            return line.split("|")
    raise AssertionError("no MSA segment in the answer")


def segment(ack_text: str, sid: str) -> list[str] | None:
    """The fields of the first segment with that id, or None."""
    for line in ack_text.split("\r"):
        if line.startswith(sid + "|"):
            return line.split("|")
    return None
