"""The MLLP listener against a real hub (SQLite in tmp_path) over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hub.context import HubContext
from plugins.hl7.ack import build_ack
from plugins.hl7.listener import MllpListener
from plugins.hl7.parser import parse_message
from tests.hl7.conftest import MllpTestClient, adt, msa, segment

Open = Callable[..., Any]


async def stored(ctx: HubContext, kind: str) -> list[Any]:
    rows: list[Any] = []
    async for batch in ctx.store.iter_records(kind):
        rows += batch
    return rows


async def test_adt_is_stored_linked_and_acknowledged(
    listener: MllpListener, hl7_hub: HubContext, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    ack = await client.request(adt("A01", "C1"))
    await client.close()
    assert msa(ack)[1:3] == ["AA", "C1"]
    clients = await stored(hl7_hub, "client")
    encounters = await stored(hl7_hub, "encounter")
    assert [(r.source, r.source_id, r.owner) for r in clients] == [
        ("hl7:MERCY", "MRN001", "hospital-x")
    ]
    assert [r.source_id for r in encounters] == ["V100"]
    person = clients[0].person_id
    assert person is not None
    async with hl7_hub.store.transaction() as tx:
        kinds = sorted(r.kind for r in await tx.records_of_person(person))
    assert kinds == ["client", "encounter"]
    metric = hl7_hub.metrics.records_in.labels("client", "inserted")._value.get()
    assert metric == 1


async def test_resend_gets_the_same_ack_without_a_second_record(
    listener: MllpListener, hl7_hub: HubContext, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    first = await client.request(adt("A08", "C2"))
    await client.close()
    client = await mllp(listener.port)  # the sender reconnects and re-sends
    again = await client.request(adt("A08", "C2"))
    await client.close()
    assert again == first
    assert len(await stored(hl7_hub, "client")) == 1
    assert len(await stored(hl7_hub, "encounter")) == 1
    assert hl7_hub.metrics.records_in.labels("client", "duplicate")._value.get() == 1


async def test_pipelined_messages_are_answered_in_order(listener: MllpListener, mllp: Open) -> None:
    client: MllpTestClient = await mllp(listener.port)
    batch = b"".join(
        b"\x0b" + adt("A08", f"P{i}", pid=f"PID|1||M{i}^^^^MR||Doe^Pat{i}").encode() + b"\x1c\r"
        for i in range(5)
    )
    await client.send_raw(batch)
    acks = [a.decode() for a in await client.receive(5)]
    await client.close()
    assert [msa(a)[2] for a in acks] == [f"P{i}" for i in range(5)]
    assert {msa(a)[1] for a in acks} == {"AA"}


async def test_many_concurrent_connections(
    listener: MllpListener, hl7_hub: HubContext, mllp: Open
) -> None:
    async def sender(n: int) -> list[str]:
        client: MllpTestClient = await mllp(listener.port)
        codes = []
        for i in range(3):
            pid = f"PID|1||C{n}-{i}^^^^MR||Doe^Pat"
            codes.append(msa(await client.request(adt("A04", f"K{n}-{i}", pid=pid), 5))[1])
        await client.close()
        return codes

    results = await asyncio.wait_for(asyncio.gather(*(sender(n) for n in range(12))), 10)
    assert all(codes == ["AA"] * 3 for codes in results)
    assert len(await stored(hl7_hub, "client")) == 36


async def test_unlisted_sender_gets_ar(listener: MllpListener, mllp: Open) -> None:
    client: MllpTestClient = await mllp(listener.port)
    ack = await client.request(adt(facility="NOBODY"))
    assert msa(ack)[1] == "AR"
    # the connection stays usable
    assert msa(await client.request(adt("A01", "C9")))[1] == "AA"
    await client.close()


async def test_an_ack_sent_to_the_listener_is_not_answered(
    listener: MllpListener, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    await client.send(build_ack(parse_message(adt()).header, "AA"))
    ack = await client.request(adt("A01", "AFTER"))
    await client.close()
    assert msa(ack)[2] == "AFTER"  # the first answer is for the message after the ACK


async def test_an_empty_keep_alive_frame_gets_no_answer_and_keeps_the_connection(
    listener: MllpListener, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    await client.send_raw(b"\x0b\x1c\r\x0b\r\n\x1c\r")
    ack = await client.request(adt("A01", "AFTER-KEEPALIVE"))
    await client.close()
    assert msa(ack)[1:3] == ["AA", "AFTER-KEEPALIVE"]  # the first answer is this message's


async def test_garbage_and_missing_msh_do_not_stop_the_connection(
    listener: MllpListener, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    assert msa(await client.request(b"\x00\xff garbage \x10"))[1:3] == ["AR", ""]
    assert msa(await client.request("PID|1||X\rPV1|1|I\r"))[1:3] == ["AR", ""]
    await client.send_raw(b"junk outside any frame\r\n")
    assert msa(await client.request(adt("A01", "OK1")))[1:3] == ["AA", "OK1"]
    await client.close()


async def test_oversize_frame_gets_ar_and_the_connection_continues(
    listener: MllpListener, hl7_hub: HubContext, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    big = adt("A01", "BIG1", extra=("NTE|1||" + "x" * 200_000,))
    ack = await client.request(big, seconds=3)
    assert msa(ack)[1:3] == ["AR", "BIG1"]
    err = segment(ack, "ERR")
    assert err is not None and err[5] == "MESSAGE_TOO_LARGE^^L"
    assert msa(await client.request(adt("A01", "SMALL")))[1] == "AA"
    await client.close()
    assert [r.source_id for r in await stored(hl7_hub, "encounter")] == ["V100"]
    assert hl7_hub.metrics.errors.labels("hl7", "oversize")._value.get() == 1


async def test_oversize_frame_without_msh_closes_only_that_connection(
    listener: MllpListener, mllp: Open
) -> None:
    bad: MllpTestClient = await mllp(listener.port)
    good: MllpTestClient = await mllp(listener.port)
    await bad.send_raw(b"\x0b" + b"z" * 70_000)
    assert await bad.closed_by_peer(2)
    assert msa(await good.request(adt("A01", "G1")))[1] == "AA"
    await bad.close()
    await good.close()


async def test_idle_connection_is_closed_and_others_keep_working(
    listener: MllpListener, mllp: Open
) -> None:
    idle: MllpTestClient = await mllp(listener.port)
    assert await idle.closed_by_peer(2)  # idle_timeout_seconds = 0.6 in the test config
    other: MllpTestClient = await mllp(listener.port)
    assert msa(await other.request(adt("A01", "AFTER-IDLE")))[1] == "AA"
    await other.close()
    await idle.close()


async def test_frame_without_end_is_closed_at_timeout(
    listener: MllpListener, hl7_hub: HubContext, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    await client.send_raw(b"\x0b" + adt("A01", "NOEND").encode())
    assert await client.closed_by_peer(2)
    await client.close()
    assert await stored(hl7_hub, "client") == []


async def test_slow_loris_is_closed_by_the_frame_timeout(
    listener: MllpListener, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    data = b"\x0b" + adt("A01", "SLOW").encode()
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed = False
    for i in range(40):  # one byte every 0.1 s: never idle long enough for the idle timeout
        try:
            await client.send_raw(data[i : i + 1])
        except ConnectionError:
            closed = True
            break
        await asyncio.sleep(0.1)
        if client.reader.at_eof():
            closed = True
            break
    if not closed:
        closed = await client.closed_by_peer(1)
    assert closed
    assert loop.time() - started < 2.5  # frame_timeout_seconds = 0.8
    await client.close()


async def test_graceful_stop_finishes_in_flight_and_refuses_new(
    hl7_hub: HubContext, mllp: Open
) -> None:
    service = MllpListener(hl7_hub, "127.0.0.1", 0)
    await service.start()
    client: MllpTestClient = await mllp(service.port)
    idle: MllpTestClient = await mllp(service.port)
    await client.send(adt("A01", "INFLIGHT"))
    await asyncio.sleep(0)  # the message is on its way; stop while it is processed
    stopping = asyncio.create_task(service.stop())
    ack = (await client.receive(1, 3))[0].decode()
    await asyncio.wait_for(stopping, 5)
    assert msa(ack)[1:3] == ["AA", "INFLIGHT"]
    assert await idle.closed_by_peer(1)
    try:
        late: MllpTestClient = await mllp(service.port)
    except OSError:
        pass
    else:
        assert await late.closed_by_peer(1)
        await late.close()
    await client.close()
    await idle.close()


async def test_junk_trickle_does_not_keep_a_connection_alive(
    listener: MllpListener, mllp: Open, caplog: pytest.LogCaptureFixture
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed = False
    for _ in range(30):  # a junk byte every 0.1 s, never a frame
        try:
            await client.send_raw(b"x")
        except ConnectionError:
            closed = True
            break
        await asyncio.sleep(0.1)
        if client.reader.at_eof():
            closed = True
            break
    assert closed or await client.closed_by_peer(1)
    assert loop.time() - started < 2.0  # idle_timeout_seconds = 0.6
    await client.close()
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.name == "hub.hl7"]
    assert "idle_timeout" in reasons


async def test_a_50_mb_frame_is_refused_without_being_buffered(
    listener: MllpListener, mllp: Open
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    head = adt("A01", "HUGE").encode() + b"NTE|1||"
    chunk = b"y" * (1 << 20)

    async def send_all() -> None:
        await client.send_raw(b"\x0b" + head)
        for _ in range(50):
            client.writer.write(chunk)
            await client.writer.drain()
        await client.send_raw(b"\r\x1c\r")

    sending = asyncio.create_task(send_all())
    ack = (await client.receive(1, seconds=8))[0].decode()
    await asyncio.wait_for(sending, 8)
    assert msa(ack)[1:3] == ["AR", "HUGE"]
    assert msa(await client.request(adt("A01", "NEXT")))[1] == "AA"
    await client.close()


@pytest.mark.parametrize("count", ["²", "99999999999999999", "300000000"])
async def test_a_hostile_line_skip_count_costs_neither_the_connection_nor_memory(
    listener: MllpListener, hl7_hub: HubContext, mllp: Open, count: str
) -> None:
    # ``\.sp N\`` is HL7's "skip N lines": in MSH-3 it once broke the header read (no answer
    # for this message or the one behind it); in a name it once became N line breaks (the
    # bound is tested with ``unescape`` in test_hl7_parser).
    from plugins.hl7.framing import encode_frame

    pid = f"PID|1||MRN9^^^MERCY^MR||Doe\\.sp {count}\\^Jane||19800102|F"
    bad_header = adt("A01", "BAD1", application=f"EPIC\\.sp {count}\\")
    bad_name = adt("A01", "BAD2", pid=pid)
    good = adt("A01", "GOOD3")
    client: MllpTestClient = await mllp(listener.port)
    await client.send_raw(b"".join(encode_frame(m.encode()) for m in (bad_header, bad_name, good)))
    acks = [msa(a.decode())[1:3] for a in await client.receive(3, 5.0)]
    await client.close()
    assert acks == [["AA", "BAD1"], ["AA", "BAD2"], ["AA", "GOOD3"]]
    assert [r.source_id for r in await stored(hl7_hub, "client")].count("MRN9") == 1


@pytest.mark.parametrize("control_id", ["00042     ", "  42", "42^A", "4\\X32\\"])
async def test_msa_2_echoes_msh_10_exactly_as_sent(
    listener: MllpListener, mllp: Open, control_id: str
) -> None:
    client: MllpTestClient = await mllp(listener.port)
    ack = await client.request(adt("A08", control_id))
    await client.close()
    assert msa(ack)[1:3] == ["AA", control_id]


async def test_stopping_with_idle_senders_connected_reports_no_error(
    hl7_hub: HubContext, mllp: Open
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        listener = MllpListener(hl7_hub, "127.0.0.1", 0)
        await listener.start()
        clients = [await mllp(listener.port) for _ in range(3)]
        assert msa(await clients[0].request(adt("A01", "S1")))[1] == "AA"
        await listener.stop()
        await asyncio.sleep(0.05)
        for client in clients:
            await client.close()
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
