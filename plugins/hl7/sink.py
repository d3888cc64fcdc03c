"""The ``hl7-mllp`` sink: renders deliveries as HL7 v2 and sends them over MLLP.

Feed options: ``host``, ``port`` (required), ``timeout_seconds`` (connect and ACK wait,
default 10), ``idle_reconnect_seconds`` (a kept connection unused this long is replaced
before the next send, default 60), ``tls`` (``true`` or a table, see
:func:`plugins.hl7.tls.client_context`), and the envelope options of
:class:`plugins.hl7.render.Envelope` plus ``client_event``. A record's consent sensitivity
travels as ARV segments (:func:`plugins.hl7.codec.with_arv`), so the partner keeps the
label the gate released the record under.

Outcome per delivery, by the partner's ACK (MSA-1): ``AA``/``CA`` → delivered; ``AE``/``CE``
→ retry; ``AR``/``CR`` → not retried (dead letter, a re-send would be refused again); no
answer, a timeout, a refused or broken connection → retry. One connection per destination
is kept open and reused; it is dropped after any failure and opened again on the next send.
When a reused connection turns out to be closed by the partner, the message is sent once more
at once on a new connection (same MSH-10 and content, so the partner can de-duplicate it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.plugin_api import Delivery, DeliveryOutcome, Record
from plugins.hl7.codec import with_arv
from plugins.hl7.framing import Frame, MllpDecoder, encode_frame
from plugins.hl7.parser import Hl7ParseError, Segment, decode_bytes, normalise, parse_msh
from plugins.hl7.render import Envelope, RenderError, render_record
from plugins.hl7.tls import TlsConfigError, client_context

log = logging.getLogger("hub.hl7")

DEFAULT_TIMEOUT = 10.0
DEFAULT_IDLE_RECONNECT = 60.0
"""Seconds a kept connection may sit unused before the next send opens a new one: a
firewall or load balancer may have dropped it without a word, and a send on such a socket
would only find out after a whole ACK timeout."""
MAX_ACK_BYTES = 1 << 20
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,19}")


class AckTimeout(Exception):
    """The partner did not answer in time."""


@dataclass(frozen=True, slots=True)
class Ack:
    """What a partner answered: MSA-1, MSA-2 and the ERR-3 code (no free text kept)."""

    code: str
    control_id: str
    error_code: str = ""


def read_ack(payload: bytes) -> Ack | None:
    """The acknowledgement in a frame, or None when it is not an ACK.

    Only the MSH delimiters, MSA and ERR are read: an ACK with an empty MSH-10 or a segment
    the inbound parser would refuse still answers the message (a partner that accepted it
    must not be sent it again and again).
    """
    text = normalise(decode_bytes(payload))
    try:
        enc, _msh = parse_msh(text)
    except Hl7ParseError:
        return None
    lines = text.split("\r")

    def first(segment_id: str) -> Segment | None:
        prefix = segment_id + enc.field
        line = next((x for x in lines if x.startswith(prefix)), None)
        return None if line is None else Segment(line, enc)

    msa = first("MSA")
    if msa is None:
        return None
    err = first("ERR")
    error_code = ""
    if err is not None:
        error_code = _code(err.get(3)) or _code(err.get(1, 4))
    return Ack(_code(msa.get(1)).upper(), msa.get(2).strip(), error_code)


def _code(value: str) -> str:
    """A partner's code as written, or '' when it is free text: it goes into logs and the
    delivery's error, and a partner's free text may name the patient."""
    value = value.strip()
    return value if _CODE.fullmatch(value) else ""


class MllpClient:
    """One MLLP connection that sends a message and waits for the ACK that answers it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = MllpDecoder(MAX_ACK_BYTES)
        self._pending: list[bytes] = []
        self.last_used = asyncio.get_running_loop().time()
        """When a message was last answered on it (the event loop's clock)."""

    @classmethod
    async def connect(
        cls, host: str, port: int, *, seconds: float, ssl_context: ssl.SSLContext | None = None
    ) -> MllpClient:
        """Open a connection within ``seconds`` (raises OSError or TimeoutError)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl_context), seconds
        )
        return cls(reader, writer)

    async def _next_frame(self, deadline: float) -> bytes:
        loop = asyncio.get_running_loop()
        while not self._pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AckTimeout
            try:
                data = await asyncio.wait_for(self.reader.read(1 << 16), remaining)
            except TimeoutError:
                raise AckTimeout from None
            if not data:
                raise ConnectionResetError("partner closed the connection")
            self._pending += [e.data for e in self.decoder.feed(data) if isinstance(e, Frame)]
        return self._pending.pop(0)

    @property
    def is_open(self) -> bool:
        """Whether the partner may still read from this connection (it has not closed it)."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    async def send(self, message: bytes, control_id: str, seconds: float) -> Ack:
        """Send one message and wait up to ``seconds`` for its ACK (ACKs answering other
        control ids, e.g. late ones, are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self.writer.write(encode_frame(message))
        await asyncio.wait_for(self.writer.drain(), seconds)
        while True:
            ack = read_ack(await self._next_frame(deadline))
            if ack is not None and ack.control_id == control_id:
                self.last_used = loop.time()
                return ack

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


def outcome_of(ack: Ack) -> DeliveryOutcome:
    """The delivery outcome an ACK code means."""
    detail = f"partner answered {ack.code}"
    if ack.error_code:
        detail += f" (error {ack.error_code})"
    if ack.code in ("AA", "CA"):
        return DeliveryOutcome(ok=True)
    if ack.code in ("AR", "CR"):
        return DeliveryOutcome(ok=False, retry=False, error=detail)
    if ack.code in ("AE", "CE"):
        return DeliveryOutcome(ok=False, retry=True, error=detail)
    return DeliveryOutcome(
        ok=False, retry=True, error=f"unrecognised acknowledgement code {ack.code!r}"
    )


@dataclass(frozen=True, slots=True)
class _Target:
    key: tuple[Any, ...]
    host: str
    port: int
    ssl_context: ssl.SSLContext | None
    seconds: float
    idle_reconnect: float = DEFAULT_IDLE_RECONNECT


class MllpSink:
    """Delivers records to partners as HL7 v2 over MLLP (the ``hl7-mllp`` connector)."""

    name = "hl7-mllp"

    def __init__(self, resolve: Callable[[str], Path] = Path) -> None:
        self.resolve = resolve
        self._clients: dict[tuple[Any, ...], MllpClient] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Send each delivery in order; one outcome each, never raising for a partner's fault."""
        outcomes: list[DeliveryOutcome] = []
        for delivery in deliveries:
            try:
                outcomes.append(await self._deliver_one(delivery))
            except Exception as exc:  # a bug must not take down the worker's batch
                log.error(
                    "hl7 delivery failed unexpectedly",
                    extra={"outbox_id": delivery.outbox_id, "error_type": type(exc).__name__},
                )
                outcomes.append(DeliveryOutcome(ok=False, retry=True, error="internal error"))
        return outcomes

    async def _deliver_one(self, delivery: Delivery) -> DeliveryOutcome:
        options = delivery.options or {}
        host = options.get("host")
        port = options.get("port")
        if not isinstance(host, str) or not host or not isinstance(port, int):
            return DeliveryOutcome(
                ok=False, retry=False, error="feed options need host (string) and port (integer)"
            )
        timeout = float(options.get("timeout_seconds", DEFAULT_TIMEOUT))
        idle = float(options.get("idle_reconnect_seconds", DEFAULT_IDLE_RECONNECT))
        record = delivery.record
        if not isinstance(record, Record):
            return DeliveryOutcome(ok=False, retry=False, error="delivery carries no record")
        control_id = delivery.idempotency_key[:20]
        envelope = Envelope.from_options(options, control_id, delivery.recipient)
        try:
            text = with_arv(render_record(record, envelope, options), record)
            ssl_context = client_context(options, self.resolve)
        except (RenderError, TlsConfigError) as exc:
            return DeliveryOutcome(ok=False, retry=False, error=str(exc))
        key = (host, port, repr(options.get("tls")))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            target = _Target(key, host, port, ssl_context, timeout, idle)
            return await self._send(target, text, control_id, delivery.outbox_id)

    async def _send(
        self, target: _Target, text: str, control_id: str, outbox_id: int
    ) -> DeliveryOutcome:
        key, host, port = target.key, target.host, target.port
        client = self._clients.get(key)
        idle_for = asyncio.get_running_loop().time() - client.last_used if client else 0.0
        if client is not None and (not client.is_open or idle_for > target.idle_reconnect):
            # Partners close idle connections (the hub's own listener after 30 s), and a
            # firewall may drop one without a word: connect again rather than fail this
            # delivery on a socket the partner has left.
            await self._drop(key)
            client = None
        message = text.encode("utf-8")
        try:
            try:
                ack = await self._exchange(target, client, message, control_id)
            except ConnectionError:
                if client is None:
                    raise
                # The reused connection turns out closed by the partner (its close was still
                # queued behind a late frame, or lost in a race): send once more on a new one.
                await self._drop(key)
                ack = await self._exchange(target, None, message, control_id)
        except AckTimeout:
            await self._drop(key)
            log.warning("hl7 partner did not acknowledge in time", extra={"outbox_id": outbox_id})
            return DeliveryOutcome(ok=False, retry=True, error=f"no ACK within {target.seconds:g}s")
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            await self._drop(key)
            log.warning(
                "hl7 partner unreachable",
                extra={"outbox_id": outbox_id, "error_type": type(exc).__name__},
            )
            return DeliveryOutcome(
                ok=False, retry=True, error=f"cannot reach {host}:{port} ({type(exc).__name__})"
            )
        outcome = outcome_of(ack)
        if not outcome.ok:
            log.warning(
                "hl7 partner refused a message",
                extra={"outbox_id": outbox_id, "ack": ack.code, "hl7_error": ack.error_code},
            )
        return outcome

    async def _exchange(
        self, target: _Target, client: MllpClient | None, message: bytes, control_id: str
    ) -> Ack:
        """Send on ``client`` (or on a new connection, kept for the next sends); the ACK."""
        if client is None:
            client = await MllpClient.connect(
                target.host, target.port, seconds=target.seconds, ssl_context=target.ssl_context
            )
            self._clients[target.key] = client
        return await client.send(message, control_id, target.seconds)

    async def _drop(self, key: tuple[Any, ...]) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            await client.close()

    async def close(self) -> None:
        """Close every open connection."""
        for key in list(self._clients):
            await self._drop(key)
