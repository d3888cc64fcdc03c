"""The ``hl7-mllp`` sink delivering to a small MLLP partner started in the test, and to the
hub's own listener (hub to hub)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from hub.context import HubContext
from hub.plugin_api import Client, Delivery, HumanName, Provenance, RecordMeta, SourceKey
from plugins.hl7.framing import Frame, MllpDecoder, encode_frame
from plugins.hl7.listener import MllpListener
from plugins.hl7.parser import parse_message
from plugins.hl7.sink import MllpSink

CLIENT = Client(
    meta=RecordMeta(
        "client",
        SourceKey("hmis:IMPL-1", "P-100"),
        "shelter-a",
        Provenance("test", datetime(2025, 3, 1, tzinfo=UTC), "0" * 64),
        "2025-03-01T00:00:00",
    ),
    names=(HumanName("Quixtanova", ("Zebulon",)),),
    birth_date=date(1961, 7, 23),
)


def delivery(port: int, n: int = 1, **options: object) -> Delivery:
    return Delivery(
        outbox_id=n,
        feed="to-partner",
        recipient="clinic-y",
        idempotency_key=f"{n:02d}" + "ab" * 15,
        record=CLIENT,
        payload={},
        options={"host": "127.0.0.1", "port": port, "timeout_seconds": 0.5, **options},
    )


@dataclass
class Partner:
    """A tiny MLLP receiver: answers each message with the next scripted code (None: silence)."""

    script: list[str | None]
    received: list[str] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    wrong_first: bool = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        decoder = MllpDecoder()
        try:
            while data := await reader.read(65536):
                for event in decoder.feed(data):
                    if not isinstance(event, Frame):
                        continue
                    text = event.data.decode()
                    self.received.append(text)
                    code = self.script.pop(0) if self.script else "AA"
                    if code is None:
                        continue
                    control = parse_message(text).header.control_id
                    if self.wrong_first:  # a stale ACK for another message comes first
                        writer.write(encode_frame(self.ack("AA", "SOMETHING-ELSE")))
                    writer.write(encode_frame(self.ack(code, control)))
                    await writer.drain()
        finally:
            writer.close()

    @staticmethod
    def ack(code: str, control: str) -> bytes:
        return f"MSH|^~\\&|P|P|||20250301||ACK|A1|P|2.5\rMSA|{code}|{control}\r".encode()


@asynccontextmanager
async def partner(*script: str | None, wrong_first: bool = False) -> AsyncIterator[Partner]:
    p = Partner(list(script), wrong_first=wrong_first)
    server = await asyncio.start_server(p.handle, "127.0.0.1", 0)
    p.port = server.sockets[0].getsockname()[1]
    try:
        yield p
    finally:
        server.close()


async def deliver(sink: MllpSink, *items: Delivery) -> list[tuple[bool, bool, str]]:
    outcomes = await asyncio.wait_for(sink.deliver(list(items)), 5)
    return [(o.ok, o.retry, o.error) for o in outcomes]


async def test_aa_is_delivered_and_the_message_is_an_a31() -> None:
    sink = MllpSink()
    async with partner("AA") as p:
        assert await deliver(sink, delivery(p.port)) == [(True, True, "")]
    await sink.close()
    message = parse_message(p.received[0])
    assert message.header.type_name == "ADT^A31"
    assert message.header.control_id == "01abababababababababab"[:20]
    pid = message.first("PID")
    assert pid is not None and pid.get(5) == "Quixtanova"


async def test_ack_codes_decide_the_outcome() -> None:
    sink = MllpSink()
    async with partner("CA", "AE", "CE", "AR", "CR") as p:
        results = await deliver(sink, *(delivery(p.port, n) for n in range(1, 6)))
    await sink.close()
    assert [(ok, retry) for ok, retry, _ in results] == [
        (True, True),
        (False, True),
        (False, True),
        (False, False),
        (False, False),
    ]
    assert results[1][2] == "partner answered AE"
    assert p.connections == 1  # one connection reused for the batch


async def test_no_answer_is_a_retry_and_the_next_send_reconnects() -> None:
    sink = MllpSink()
    async with partner(None, "AA") as p:
        ((ok, retry, error),) = await deliver(sink, delivery(p.port, 1))
        assert (ok, retry) == (False, True)
        assert "no ACK within 0.5s" in error
        assert await deliver(sink, delivery(p.port, 2)) == [(True, True, "")]
    await sink.close()
    assert p.connections == 2


async def test_no_listener_is_a_retry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        ((ok, retry, error),) = await deliver(MllpSink(), delivery(port))
    assert (ok, retry) == (False, True)
    assert error.startswith(f"cannot reach 127.0.0.1:{port}")


async def test_acks_for_other_messages_are_skipped() -> None:
    sink = MllpSink()
    async with partner("AR", wrong_first=True) as p:
        ((ok, retry, _),) = await deliver(sink, delivery(p.port))
    await sink.close()
    assert (ok, retry) == (False, False)


async def test_bad_feed_options_are_not_retried() -> None:
    bad = Delivery(1, "f", "r", "k" * 32, CLIENT, {}, {"host": "127.0.0.1"})
    ((ok, retry, error),) = await deliver(MllpSink(), bad)
    assert (ok, retry) == (False, False)
    assert "port" in error


async def test_hub_to_hub_delivery_is_accepted_by_the_listener(
    hl7_hub: HubContext, listener: MllpListener
) -> None:
    sink = MllpSink()
    item = delivery(listener.port, sending_facility="MERCY", sending_application="CIEHUB")
    assert await deliver(sink, item) == [(True, True, "")]
    again = await deliver(sink, item)  # a re-delivery: same control id, de-duplicated
    await sink.close()
    assert again == [(True, True, "")]
    rows = [r async for batch in hl7_hub.store.iter_records("client") for r in batch]
    assert [(r.source, r.source_id) for r in rows] == [("hl7:MERCY", "P-100")]


async def test_sink_is_registered_by_the_plugin(hl7_hub: HubContext) -> None:
    sinks = [s for group in hl7_hub.plugins.hook.hub_sinks(ctx=hl7_hub) for s in group]
    assert "hl7-mllp" in [s.name for s in sinks]


async def test_a_connection_the_partner_closed_while_idle_is_not_reused() -> None:
    async def closes_when_idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MllpDecoder()
        try:
            while data := await asyncio.wait_for(reader.read(65536), 0.2):
                for event in decoder.feed(data):
                    if isinstance(event, Frame):
                        control = parse_message(event.data.decode()).header.control_id
                        writer.write(encode_frame(Partner.ack("AA", control)))
        except TimeoutError:
            pass  # 0.2 s without a message: the partner hangs up, as many do
        writer.close()

    server = await asyncio.start_server(closes_when_idle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = MllpSink()
    try:
        assert [o.ok for o in await sink.deliver([delivery(port, 1)])] == [True]
        await asyncio.sleep(0.5)
        again = await sink.deliver([delivery(port, 2)])
        assert [(o.ok, o.error) for o in again] == [(True, "")]
    finally:
        await sink.close()
        server.close()
        await server.wait_closed()


async def test_a_late_older_version_does_not_overwrite_the_newer_one_at_the_receiver(
    hl7_hub: HubContext, listener: MllpListener
) -> None:
    def version(stamp: str, family: str, n: int) -> Delivery:
        meta = dataclasses.replace(CLIENT.meta, version=stamp)
        record = dataclasses.replace(CLIENT, meta=meta, names=(HumanName(family, ("Zebulon",)),))
        item = delivery(listener.port, n, sending_facility="MERCY")
        return dataclasses.replace(item, record=record)

    sink = MllpSink()
    newer = version("2025-03-02T10:00:00", "Newname", 1)
    older = version("2025-03-01T10:00:00", "Oldname", 2)  # retried, arrives after the newer
    assert await deliver(sink, newer, older) == [(True, True, ""), (True, True, "")]
    await sink.close()
    rows = [r async for batch in hl7_hub.store.iter_records("client") for r in batch]
    assert len(rows) == 1
    assert rows[0].version == "2025-03-02T10:00:00"
    assert b"Newname" in rows[0].payload and b"Oldname" not in rows[0].payload


@pytest.mark.parametrize(
    "template",
    [
        "MSH|^~\\&|P|P|||20250301||ACK||P|2.5\rMSA|AA|{control}\r",  # empty MSH-10
        "MSH|^~\\&|P|P|||20250301||ACK|A1|P|2.5\rMSA|AA|{control}\rzak|1\r",  # odd segment
    ],
)
async def test_an_imperfect_ack_still_answers_the_message(template: str) -> None:
    received: list[bytes] = []

    async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MllpDecoder()
        while data := await reader.read(65536):
            for event in decoder.feed(data):
                if isinstance(event, Frame):
                    received.append(event.data)
                    control = parse_message(event.data).header.control_id
                    writer.write(encode_frame(template.format(control=control).encode()))
        writer.close()

    server = await asyncio.start_server(answers, "127.0.0.1", 0)
    sink = MllpSink()
    try:
        port = server.sockets[0].getsockname()[1]
        assert await deliver(sink, delivery(port)) == [(True, True, "")]
        assert len(received) == 1
    finally:
        await sink.close()
        server.close()
        await server.wait_closed()


async def test_sensitivity_travels_to_the_partner_as_arv(
    hl7_hub: HubContext, listener: MllpListener
) -> None:
    meta = dataclasses.replace(CLIENT.meta, sensitivity=frozenset({"substance_use"}))
    item = delivery(listener.port, sending_facility="MERCY")
    sink = MllpSink()
    record = dataclasses.replace(CLIENT, meta=meta)
    assert await deliver(sink, dataclasses.replace(item, record=record)) == [(True, True, "")]
    await sink.close()
    rows = [r async for batch in hl7_hub.store.iter_records("client") for r in batch]
    assert [r.sensitivity for r in rows] == ["substance_use"]


async def test_a_closed_connection_with_a_late_frame_still_queued_is_replaced() -> None:
    """An enhanced-mode partner answers CA, then AA a moment later, and hangs up when idle:
    the close is queued behind the late AA, so the connection still looks open."""
    received: list[str] = []

    async def late_aa_then_idle_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        decoder = MllpDecoder()
        try:
            while data := await asyncio.wait_for(reader.read(65536), 0.2):
                for event in decoder.feed(data):
                    if isinstance(event, Frame):
                        control = parse_message(event.data).header.control_id
                        received.append(control)
                        writer.write(encode_frame(Partner.ack("CA", control)))
                        await asyncio.sleep(0.05)
                        writer.write(encode_frame(Partner.ack("AA", control)))
        except TimeoutError:
            pass
        writer.close()

    server = await asyncio.start_server(late_aa_then_idle_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = MllpSink()
    try:
        assert await deliver(sink, delivery(port, 1)) == [(True, True, "")]
        await asyncio.sleep(0.5)
        assert await deliver(sink, delivery(port, 2)) == [(True, True, "")]
        assert len(received) == 2
    finally:
        await sink.close()
        server.close()
        await server.wait_closed()


async def test_free_text_in_a_partners_err_stays_out_of_the_error_and_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def answers_with_a_name(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        decoder = MllpDecoder()
        while data := await reader.read(65536):
            for event in decoder.feed(data):
                if isinstance(event, Frame):
                    control = parse_message(event.data).header.control_id
                    err = b"ERR|||Patient QUIXTANOVA ZEBULON not found|E\r"
                    writer.write(encode_frame(Partner.ack("AE", control) + err))
        writer.close()

    server = await asyncio.start_server(answers_with_a_name, "127.0.0.1", 0)
    sink = MllpSink()
    try:
        with caplog.at_level("DEBUG", logger="hub.hl7"):
            port = server.sockets[0].getsockname()[1]
            assert await deliver(sink, delivery(port)) == [(False, True, "partner answered AE")]
        logged = " ".join(str(vars(r)) for r in caplog.records)
        assert "QUIXTANOVA" not in logged
    finally:
        await sink.close()
        server.close()
        await server.wait_closed()


async def test_a_connection_idle_too_long_is_replaced_before_the_next_send() -> None:
    """A firewall that drops an idle connection says nothing: the old socket looks open and a
    send on it would wait the whole ACK timeout. Past ``idle_reconnect_seconds`` the sink
    opens a new connection instead."""
    connections: list[int] = []

    async def answers_once_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connections.append(len(connections) + 1)
        decoder = MllpDecoder()
        answered = False
        try:
            while data := await reader.read(65536):
                for event in decoder.feed(data):
                    if isinstance(event, Frame) and not answered:  # later frames: lost
                        control = parse_message(event.data).header.control_id
                        writer.write(encode_frame(Partner.ack("AA", control)))
                        await writer.drain()
                        answered = True
        finally:
            writer.close()

    server = await asyncio.start_server(answers_once_per_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = MllpSink()
    try:
        idle = {"idle_reconnect_seconds": 0.1}
        assert await deliver(sink, delivery(port, 1, **idle)) == [(True, True, "")]
        await asyncio.sleep(0.3)
        assert await deliver(sink, delivery(port, 2, **idle)) == [(True, True, "")]
        assert connections == [1, 2]
    finally:
        await sink.close()
        server.close()
        await server.wait_closed()
