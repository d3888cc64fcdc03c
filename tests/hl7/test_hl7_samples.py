"""The shared real-world samples sent by the real ``mllp_send`` CLI (PyPI ``hl7``) to a real
hub's listener. Skipped when ``../shared`` (or ``HUB_SHARED_DIR``) is absent.

The samples use ``\\n`` line ends and no MLLP framing, so they are sent with ``--loose``
(which splits a file on ``MSH|^~\\&|`` and turns line ends into ``\\r``).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.context import HubContext
from plugins.hl7.framing import Frame, MllpDecoder
from plugins.hl7.listener import MllpListener
from tests.hl7.conftest import SAMPLES, msa, segment

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared HL7 samples not present")

MLLP_SEND = shutil.which("mllp_send", path=str(Path(sys.executable).parent)) or shutil.which(
    "mllp_send"
)
ADT_SAMPLES = ["ADT-A01-01", "ADT-A03-01", "ADT-A04-01", "ADT-A08-01", "ADT-A28-01", "ADT-A31-01"]


async def mllp_send(port: int, path: Path) -> list[str]:
    """Run ``mllp_send --loose`` and return the ACK texts it printed."""
    if MLLP_SEND is None:
        pytest.skip("mllp_send (PyPI hl7) is not installed")
    proc = await asyncio.create_subprocess_exec(
        MLLP_SEND,
        "--loose",
        "--port",
        str(port),
        "--file",
        str(path),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    except TimeoutError:
        proc.kill()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-500:]
    return [e.data.decode() for e in MllpDecoder().feed(out) if isinstance(e, Frame)]


async def rows(ctx: HubContext, kind: str) -> list[Any]:
    found: list[Any] = []
    async for batch in ctx.store.iter_records(kind):
        found += batch
    return found


@pytest.mark.parametrize("name", [*ADT_SAMPLES, "REF-I12-01"])
async def test_supported_sample_is_accepted_and_stored(
    name: str, listener: MllpListener, hl7_hub: HubContext
) -> None:
    (ack,) = await mllp_send(listener.port, SAMPLES / f"{name}.hl7")
    assert msa(ack)[1] == "AA", ack
    assert segment(ack, "ERR") is None
    clients = await rows(hl7_hub, "client")
    assert [(c.source, c.source_id, c.owner) for c in clients] == [
        ("hl7:GHHSFacility", "PATID1234", "hospital-x")
    ]
    assert clients[0].person_id is not None
    assert clients[0].restricted is (name != "REF-I12-01")  # the ADT samples carry ARV DEM
    kind = {"REF-I12-01": "referral", "ADT-A28-01": None, "ADT-A31-01": None}.get(name, "encounter")
    if kind is not None:
        (record,) = await rows(hl7_hub, kind)
        async with hl7_hub.store.transaction() as tx:
            linked = await tx.records_of_person(clients[0].person_id)
        assert {r.kind for r in linked} == {"client", kind}
        assert record.source_id == {"referral": "226839"}.get(kind, "40007716")


async def test_oru_sample_is_refused_naming_its_type(
    listener: MllpListener, hl7_hub: HubContext
) -> None:
    (ack,) = await mllp_send(listener.port, SAMPLES / "ORU-R01-01.hl7")
    # An unsupported type is an application reject (AR) in either acknowledgement mode, so
    # the sender neither retries nor waits for an application ACK that never comes.
    assert msa(ack)[1] == "AR"
    assert msa(ack)[2] == "2.16.840.1.114222.4.3.3.5.1.2-20120314235954.325"
    err = segment(ack, "ERR")
    assert err is not None and err[3].startswith("200^Unsupported message type")
    assert "message type ORU event R01" in err[8]
    assert await rows(hl7_hub, "client") == []


async def test_all_samples_in_one_stream(
    tmp_path: Path, listener: MllpListener, hl7_hub: HubContext
) -> None:
    names = [*ADT_SAMPLES, "ORU-R01-01", "REF-I12-01"]
    stream = tmp_path / "all.hl7"
    stream.write_bytes(b"\n".join((SAMPLES / f"{n}.hl7").read_bytes() for n in names))
    acks = await mllp_send(listener.port, stream)
    assert [msa(a)[1] for a in acks] == ["AA"] * 6 + ["AR", "AA"]
    assert len(await rows(hl7_hub, "client")) == 1  # one patient, updated by each event
    (encounter,) = await rows(hl7_hub, "encounter")
    assert encounter.source_id == "40007716"
    assert len(await rows(hl7_hub, "referral")) == 1


async def test_resent_sample_gets_the_same_ack_and_no_second_record(
    listener: MllpListener, hl7_hub: HubContext
) -> None:
    first = await mllp_send(listener.port, SAMPLES / "REF-I12-01.hl7")
    again = await mllp_send(listener.port, SAMPLES / "REF-I12-01.hl7")
    assert again == first
    assert len(await rows(hl7_hub, "referral")) == 1
    assert hl7_hub.metrics.records_in.labels("referral", "duplicate")._value.get() == 1


async def test_unlisted_sender_sample_gets_ar(tmp_path: Path, listener: MllpListener) -> None:
    text = (SAMPLES / "ADT-A01-01.hl7").read_text().replace("GHHSFacility", "UNLISTED")
    path = tmp_path / "unlisted.hl7"
    path.write_text(text)
    (ack,) = await mllp_send(listener.port, path)
    assert msa(ack)[1] == "AR"
    err = segment(ack, "ERR")
    assert err is not None and err[5] == "UNKNOWN_SENDER^^L"
