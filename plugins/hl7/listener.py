"""The MLLP listener: many concurrent connections, each answered in order, ACK after commit.

A connection reads, decodes frames (:mod:`plugins.hl7.framing`) and hands each frame to the
intake (:mod:`plugins.hl7.intake`), which never raises; the ACK bytes go back in order.
Connections are closed — with a logged reason, never client data — when they stay silent
past ``idle_timeout_seconds``, when a frame is not complete ``frame_timeout_seconds`` after
it began (a slow-loris sender), when an oversized frame has no readable MSH to reject, or
when too much arrives outside frames. One connection's trouble never touches another's.

``stop()`` is graceful: stop accepting, let connections that are processing a message
finish it and send its ACK (up to ``stop_grace_seconds``), close idle connections at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from hub.plugin_api import certificate_mapping
from plugins.hl7.ack import AckError, response_bytes
from plugins.hl7.directory import AgencyDirectory
from plugins.hl7.framing import (
    Frame,
    Junk,
    MllpDecoder,
    Oversize,
    OversizeStarted,
    Truncated,
)
from plugins.hl7.intake import UNMAPPED_CERTIFICATE, Hl7Intake
from plugins.hl7.parser import parse_header
from plugins.hl7.settings import Hl7Settings, load_settings
from plugins.hl7.tls import server_context

log = logging.getLogger("hub.hl7")

READ_SIZE = 1 << 16


@dataclass(slots=True)
class _Connection:
    peer: str
    busy: bool = False
    junk: int = 0
    agency: str | None = None


class _Close(Exception):
    """End this connection, with the reason logged and counted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class MllpListener:
    """An asyncio MLLP server for inbound HL7 v2 (a ``hub serve`` service).

    ``ctx`` is the hub context (engine, config, metrics); ``port`` 0 binds a free port, and
    :attr:`port` is the bound port after :meth:`start`. Keyword arguments override the
    ``[hl7]`` settings (tests and the benchmark use them).
    """

    name = "hl7-mllp-listener"

    def __init__(
        self,
        ctx: Any,
        host: str | None = None,
        port: int | None = None,
        *,
        settings: Hl7Settings | None = None,
        intake: Hl7Intake | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_frame_bytes: int | None = None,
        idle_timeout_seconds: float | None = None,
        frame_timeout_seconds: float | None = None,
        stop_grace_seconds: float | None = None,
    ) -> None:
        if settings is None:
            settings = (
                load_settings(ctx.config.section("hl7"), ctx.config.resolve)
                if ctx is not None
                else Hl7Settings()
            )
        overrides: dict[str, Any] = {
            k: v
            for k, v in {
                "host": host,
                "port": port,
                "max_frame_bytes": max_frame_bytes,
                "idle_timeout_seconds": idle_timeout_seconds,
                "frame_timeout_seconds": frame_timeout_seconds,
                "stop_grace_seconds": stop_grace_seconds,
            }.items()
            if v is not None
        }
        self.settings = dataclasses.replace(settings, **overrides)
        if intake is None:
            if ctx is None:
                raise ValueError("MllpListener needs a hub context or an intake")
            intake = Hl7Intake(
                ctx.engine.grouped,
                self.settings,
                directory=AgencyDirectory(ctx.config.agencies),
                metrics=ctx.metrics,
            )
        self.intake = intake
        self.certificates: tuple[Any, ...] = (
            tuple(ctx.config.auth.certificates) if ctx is not None else ()
        )
        if ssl_context is None and self.settings.tls is not None:
            ssl_context = server_context(self.settings.tls)
        self.ssl_context = ssl_context
        self.host = self.settings.host
        self.port = self.settings.port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], _Connection] = {}
        self._closing = False

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting; :attr:`port` is then the bound port."""
        self._closing = False
        self._server = await asyncio.start_server(
            self._serve,
            self.host,
            self.port,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.settings.idle_timeout_seconds if self.ssl_context else None,
            reuse_address=True,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info(
            "hl7 mllp listener started",
            extra={"host": self.host, "port": self.port, "tls": self.ssl_context is not None},
        )

    async def stop(self) -> None:
        """Stop accepting, finish in-flight messages (bounded by the grace time), close."""
        server = self._server
        if server is None:
            return
        self._closing = True
        server.close()
        for task, conn in list(self._connections.items()):
            if not conn.busy:
                task.cancel()
        pending = set(self._connections)
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=self.settings.stop_grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout=1.0)
        self._server = None
        log.info("hl7 mllp listener stopped", extra={"port": self.port})

    @property
    def connections(self) -> int:
        """Open connections right now."""
        return len(self._connections)

    # ---- one connection --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else "unknown"
        conn = _Connection(peer, agency=self._certificate_agency(writer))
        if conn.agency == UNMAPPED_CERTIFICATE:
            log.warning(
                "hl7 client certificate not mapped to an agency; its messages are refused",
                extra={"peer": peer},
            )
        self._connections[task] = conn
        try:
            await self._run(conn, reader, writer)
        except _Close as exc:
            log.warning(
                "hl7 connection closed",
                extra={"peer": peer, "reason": exc.reason, "detail": exc.detail},
            )
            self.intake.count_error(exc.reason)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("hl7 connection lost", extra={"peer": peer, "error_type": type(exc).__name__})
        except Exception as exc:  # a bug closes this connection, never the listener
            log.error(
                "hl7 connection failed", extra={"peer": peer, "error_type": type(exc).__name__}
            )
            self.intake.count_error("internal")
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # stop() ended the connection: end normally, because asyncio's stream callback
            # asks the task for its exception and a cancelled task raises there instead.
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    def _certificate_agency(self, writer: asyncio.StreamWriter) -> str | None:
        """The agency a verified client certificate is mapped to (``[[auth.certificates]]``);
        :data:`UNMAPPED_CERTIFICATE` for a certificate no entry maps while some are
        configured (its messages are refused); None without one, or with no entries (mutual
        TLS then vouches for the transport, and MSH-4 alone names the sender)."""
        ssl_object = writer.get_extra_info("ssl_object")
        mapping = certificate_mapping(ssl_object, self.certificates)
        if mapping is not None:
            return mapping.agency
        if self.certificates and ssl_object is not None and ssl_object.getpeercert(True):
            return UNMAPPED_CERTIFICATE
        return None

    async def _run(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        decoder = MllpDecoder(settings.max_frame_bytes)
        # Only frame traffic keeps a connection alive: bytes outside frames do not move the
        # idle deadline, and a frame must end by its own deadline however it trickles in.
        idle_deadline = loop.time() + settings.idle_timeout_seconds
        frame_deadline: float | None = None
        while not self._closing:
            deadline = (
                idle_deadline if frame_deadline is None else min(idle_deadline, frame_deadline)
            )
            try:
                async with asyncio.timeout_at(deadline):  # no task per read, unlike wait_for
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                raise self._timed_out(decoder, frame_deadline, loop.time()) from None
            if not data:
                if decoder.in_frame:
                    raise _Close("incomplete_frame", "peer closed in the middle of a frame")
                return
            events = decoder.feed(data)
            if decoder.in_frame:
                if frame_deadline is None or any(
                    isinstance(e, Frame | Oversize | Truncated) for e in events
                ):
                    frame_deadline = loop.time() + settings.frame_timeout_seconds
            else:
                frame_deadline = None
            if decoder.in_frame or any(not isinstance(e, Junk) for e in events):
                idle_deadline = loop.time() + settings.idle_timeout_seconds
            if not events:
                continue
            conn.busy = True
            try:
                for event in events:
                    await self._on_event(event, conn, writer)
            finally:
                conn.busy = False
            if not all(isinstance(e, Junk) for e in events):
                idle_deadline = loop.time() + settings.idle_timeout_seconds

    @staticmethod
    def _timed_out(decoder: MllpDecoder, frame_deadline: float | None, now: float) -> _Close:
        if frame_deadline is not None and now >= frame_deadline:
            return _Close("frame_timeout", "frame not completed in time")
        if decoder.in_frame:
            return _Close("idle_timeout", "idle with an incomplete frame")
        return _Close("idle_timeout", "no frame within the idle timeout")

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if not data:
            return
        writer.write(data)
        try:
            async with asyncio.timeout(self.settings.idle_timeout_seconds):
                await writer.drain()
        except TimeoutError:
            raise _Close("write_timeout", "peer does not read its acknowledgements") from None

    async def _on_event(self, event: Any, conn: _Connection, writer: asyncio.StreamWriter) -> None:
        if isinstance(event, Frame):
            if not event.data.strip():
                # An empty frame: some engines send one to keep an idle connection open.
                # It is activity, not a message, so it gets no answer (an AR would be logged
                # as an error at the sender every time).
                log.debug("hl7 empty frame (keep-alive)", extra={"peer": conn.peer})
                return
            await self._write(writer, await self.intake.handle(event.data, peer_agency=conn.agency))
        elif isinstance(event, OversizeStarted):
            if parse_header(event.head) is None:
                raise _Close("oversize", "frame exceeds max_frame_bytes and has no readable MSH")
            log.warning("hl7 frame exceeds max_frame_bytes; skipping it", extra={"peer": conn.peer})
        elif isinstance(event, Oversize):
            header = parse_header(event.head)
            self.intake.count_error("oversize")
            if header is not None and header.message_type != "ACK":
                log.warning(
                    "hl7 message rejected: frame too large",
                    extra={
                        "control_id": header.control_id,
                        "facility": header.sending_facility,
                        "size": event.size,
                    },
                )
                error = AckError(
                    "207",
                    f"message exceeds the maximum frame size of "
                    f"{self.settings.max_frame_bytes} bytes",
                    app_code="MESSAGE_TOO_LARGE",
                )
                await self._write(writer, response_bytes(header, "reject", error))
        elif isinstance(event, Junk):
            first = conn.junk == 0
            conn.junk += event.size
            self.intake.count_error("junk")
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "hl7 bytes outside an MLLP frame discarded",
                extra={"peer": conn.peer, "size": event.size},
            )
            if conn.junk > self.settings.max_frame_bytes:
                raise _Close("junk", "too much data outside MLLP frames")
        elif isinstance(event, Truncated):
            self.intake.count_error("truncated_frame")
            log.warning(
                "hl7 frame cut short by a new start block; discarded",
                extra={"peer": conn.peer, "size": event.size},
            )
