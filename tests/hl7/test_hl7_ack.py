"""ACKs: original and enhanced mode, ERR segments, never an ACK of an ACK; the intake's
answers for each kind of bad message (over a fake engine, no sockets)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from hub.plugin_api import InboundMessage, IngestResult, Record
from plugins.hl7.ack import AckError, ack_codes, build_ack, response_bytes
from plugins.hl7.framing import Frame, MllpDecoder
from plugins.hl7.intake import Hl7Intake
from plugins.hl7.parser import parse_message
from plugins.hl7.settings import Hl7Settings, SenderConfig
from tests.hl7.conftest import adt, msa, segment

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def frames(data: bytes) -> list[str]:
    return [e.data.decode() for e in MllpDecoder().feed(data) if isinstance(e, Frame)]


# ---- building ACKs ----------------------------------------------------------------------------


def test_original_mode_ack_swaps_parties_and_echoes_the_control_id() -> None:
    header = parse_message(adt("A04", "CTRL-1")).header
    text = build_ack(header, "AA", now=NOW, control_id="ACK1")
    msh = text.split("\r")[0].split("|")
    assert msh[2:6] == ["HUB", "CIE", "EPIC", "MERCY"]
    assert msh[6] == "20250301120000+0000"
    assert msh[8] == "ACK^A04^ACK"
    assert (msh[9], msh[10], msh[11]) == ("ACK1", "P", "2.5")
    assert msa(text)[1:3] == ["AA", "CTRL-1"]
    assert segment(text, "ERR") is None
    assert text.endswith("\r")


def test_v23_ack_uses_two_component_type_and_eld_err() -> None:
    header = parse_message(adt(version="2.3")).header
    text = build_ack(header, "AR", AckError("101", "PID-3 is empty", "PID", field=3))
    assert text.split("\r")[0].split("|")[8] == "ACK^A01"
    err = segment(text, "ERR")
    assert err == ["ERR", "PID^1^3^101&Required field missing&HL70357"]
    assert msa(text)[3] == "PID-3 is empty"


def test_v25_err_segment_has_location_code_severity_and_text() -> None:
    header = parse_message(adt(version="2.5.1")).header
    error = AckError(
        "207",
        "sending facility (MSH-4) is not a configured sender",
        "MSH",
        field=4,
        app_code="UNKNOWN_SENDER",
    )
    err = segment(build_ack(header, "AR", error), "ERR")
    assert err is not None
    assert err[2] == "MSH^1^4"
    assert err[3] == "207^Application internal error^HL70357"
    assert err[4] == "E"
    assert err[5] == "UNKNOWN_SENDER^^L"
    assert err[8] == "sending facility (MSH-4) is not a configured sender"


def test_v27_plus_leaves_msa3_empty() -> None:
    header = parse_message(adt(version="2.8")).header
    text = build_ack(header, "AR", AckError("200", "unsupported"))
    assert msa(text) == ["MSA", "AR", "C0001"]


def test_ack_text_is_escaped() -> None:
    header = parse_message(adt()).header
    err = segment(build_ack(header, "AE", AckError("207", "a|b^c")), "ERR")
    assert err is not None and err[8] == "a\\F\\b\\S\\c"


def test_ack_without_header_has_empty_msa2() -> None:
    text = build_ack(None, "AR", AckError("100", "no MSH"))
    assert msa(text)[1:3] == ["AR", ""]
    assert text.startswith("MSH|^~\\&|")


@pytest.mark.parametrize(
    ("accept", "app", "outcome", "codes"),
    [
        ("", "", "accept", ["AA"]),
        ("", "", "error", ["AE"]),
        ("", "", "reject", ["AR"]),
        ("AL", "AL", "accept", ["CA", "AA"]),
        ("AL", "NE", "accept", ["CA"]),
        ("NE", "AL", "accept", ["AA"]),
        ("ER", "ER", "accept", []),
        ("SU", "SU", "accept", ["CA", "AA"]),
        ("AL", "NE", "reject", ["CR"]),
        ("AL", "AL", "error", ["CE"]),
        ("NE", "AL", "reject", ["AR"]),
        ("NE", "ER", "error", ["AE"]),
        ("SU", "SU", "reject", []),
        ("NE", "NE", "reject", []),
        ("", "AL", "accept", ["AA"]),
        ("AL", "", "accept", ["CA"]),
    ],
)
def test_enhanced_mode_codes(accept: str, app: str, outcome: str, codes: list[str]) -> None:
    header = parse_message(adt(accept_ack=accept, app_ack=app)).header
    assert ack_codes(header, outcome) == codes  # type: ignore[arg-type]


def test_enhanced_mode_acks_do_not_ask_for_acks() -> None:
    header = parse_message(adt(accept_ack="AL", app_ack="AL")).header
    answered = frames(response_bytes(header, "accept"))
    assert [msa(t)[1] for t in answered] == ["CA", "AA"]
    for text in answered:
        assert text.split("\r")[0].split("|")[14:16] == ["NE", "NE"]  # MSH-15, MSH-16


# ---- the intake over a fake engine ------------------------------------------------------------


class FakeEngine:
    """Remembers messages like the real engine; can be told to fail."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.stored: list[Record] = []
        self.fail = False

    async def ingest(
        self,
        records: Sequence[Record],
        *,
        message: InboundMessage | None = None,
        response: bytes = b"",
    ) -> IngestResult:
        if self.fail:
            raise RuntimeError("database is locked")
        assert message is not None
        key = (message.sender, message.control_id)
        if key in self.seen and self.seen[key][0] == message.content_hash:
            return IngestResult(duplicate=True, response=self.seen[key][1])
        self.seen[key] = (message.content_hash, response)
        self.stored += records
        return IngestResult(outcomes=["inserted"] * len(records), response=response)


SETTINGS = Hl7Settings(
    senders={
        "MERCY": SenderConfig("MERCY", "hospital-x"),
        "STRICTFAC": SenderConfig("STRICTFAC", "hospital-x", "strict"),
    }
)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def intake(engine: FakeEngine) -> Hl7Intake:
    return Hl7Intake(engine, SETTINGS)


async def answer(intake: Hl7Intake, text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return frames(await intake.handle(data))


async def test_accepted_message_is_stored_then_acked(intake: Hl7Intake, engine: FakeEngine) -> None:
    (ack,) = await answer(intake, adt("A01", "C1"))
    assert msa(ack)[1:3] == ["AA", "C1"]
    assert [r.meta.kind for r in engine.stored] == ["client", "encounter"]


async def test_resend_gets_the_same_ack_and_no_second_record(
    intake: Hl7Intake, engine: FakeEngine
) -> None:
    first = await intake.handle(adt("A01", "C1").encode())
    again = await intake.handle(adt("A01", "C1", sep="\n").encode())  # same content, LF ends
    assert again == first
    assert len(engine.stored) == 2


async def test_reused_control_id_with_new_content_is_processed(
    intake: Hl7Intake, engine: FakeEngine
) -> None:
    await intake.handle(adt("A01", "C1").encode())
    (ack,) = await answer(intake, adt("A03", "C1"))
    assert msa(ack)[1] == "AA"
    assert len(engine.stored) == 4


async def test_an_ack_is_never_acknowledged(intake: Hl7Intake) -> None:
    ack = build_ack(parse_message(adt()).header, "AA")
    assert await intake.handle(ack.encode()) == b""


async def test_unsupported_type_is_rejected_naming_the_type(intake: Hl7Intake) -> None:
    text = adt().replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01")
    (ack,) = await answer(intake, text)
    assert msa(ack)[1] == "AR"
    err = segment(ack, "ERR")
    assert err is not None and err[3].startswith("200^")
    assert "message type ORU event R01" in err[8]


async def test_unsupported_adt_event_is_rejected_with_201(intake: Hl7Intake) -> None:
    (ack,) = await answer(intake, adt().replace("ADT^A01^ADT_A01", "ADT^A40^ADT_A39"))
    err = segment(ack, "ERR")
    assert msa(ack)[1] == "AR" and err is not None and err[3].startswith("201^")
    assert "message type ADT event A40" in err[8]


async def test_unsupported_type_in_enhanced_mode_is_an_application_reject(
    intake: Hl7Intake,
) -> None:
    text = adt(accept_ack="AL", app_ack="NE").replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01")
    (ack,) = await answer(intake, text)
    assert msa(ack)[1] == "AR"


@pytest.mark.parametrize("processing", ["T", "D", "T^A"])
async def test_a_test_or_debug_message_is_rejected_not_stored(
    intake: Hl7Intake, engine: FakeEngine, processing: str
) -> None:
    """MSH-11 T (training/test) or D (debugging) at a production hub: AR with error 202, so a
    sender's test patient never becomes a client record."""
    (ack,) = await answer(intake, adt().replace("|C0001|P|", f"|C0001|{processing}|"))
    assert msa(ack)[1:3] == ["AR", "C0001"]
    err = segment(ack, "ERR")
    assert err is not None and err[3].startswith("202^")
    assert "processing id" in err[8]
    assert engine.stored == []


async def test_a_hub_may_take_test_messages_when_configured(engine: FakeEngine) -> None:
    settings = Hl7Settings(senders=SETTINGS.senders, processing_ids=frozenset({"P", "T"}))
    test_hub = Hl7Intake(engine, settings)
    (ack,) = await answer(test_hub, adt().replace("|C0001|P|", "|C0001|T|"))
    assert msa(ack)[1] == "AA" and engine.stored


async def test_unlisted_sender_is_rejected(intake: Hl7Intake, engine: FakeEngine) -> None:
    (ack,) = await answer(intake, adt(facility="STRANGER"))
    assert msa(ack)[1:3] == ["AR", "C0001"]
    err = segment(ack, "ERR")
    assert err is not None and err[5] == "UNKNOWN_SENDER^^L"
    assert engine.stored == []


async def test_unknown_version_is_rejected_with_203(intake: Hl7Intake) -> None:
    (ack,) = await answer(intake, adt(version="2.2"))
    err = segment(ack, "ERR")  # answered in the sender's version: ERR-1 (ELD) before 2.5
    assert msa(ack)[1] == "AR" and err is not None and "203&Unsupported version id" in err[1]


async def test_missing_pid_is_rejected(intake: Hl7Intake) -> None:
    text = "\r".join(s for s in adt().split("\r") if not s.startswith("PID"))
    (ack,) = await answer(intake, text)
    err = segment(ack, "ERR")
    assert msa(ack)[1] == "AR" and err is not None and err[2] == "PID^1"


async def test_missing_msh_gets_a_reject_without_control_id(intake: Hl7Intake) -> None:
    (ack,) = await answer(intake, "PID|1||X\r")
    assert msa(ack)[1:3] == ["AR", ""]


async def test_garbage_gets_a_reject(intake: Hl7Intake) -> None:
    (ack,) = await answer(intake, bytes(range(256)))
    assert msa(ack)[1] == "AR"


async def test_bad_segment_after_msh_is_rejected_echoing_the_control_id(intake: Hl7Intake) -> None:
    (ack,) = await answer(intake, adt("A01", "C77") + "%%% not a segment\r")
    assert msa(ack)[1:3] == ["AR", "C77"]


async def test_store_failure_answers_ae_so_the_sender_retries(
    intake: Hl7Intake, engine: FakeEngine
) -> None:
    engine.fail = True
    (ack,) = await answer(intake, adt())
    assert msa(ack)[1] == "AE"
    err = segment(ack, "ERR")
    assert err is not None and "database" not in ack  # no internal detail leaks
    engine.fail = False
    (ack,) = await answer(intake, adt())
    assert msa(ack)[1] == "AA"


async def test_strict_sender_valid_message_is_accepted(intake: Hl7Intake) -> None:
    (ack,) = await answer(intake, adt(facility="STRICTFAC"))
    assert msa(ack)[1] == "AA"


async def test_strict_sender_invalid_message_is_rejected_with_the_finding(
    intake: Hl7Intake, engine: FakeEngine
) -> None:
    text = "\r".join(s for s in adt(facility="STRICTFAC").split("\r") if not s.startswith("EVN"))
    (ack,) = await answer(intake, text)
    err = segment(ack, "ERR")
    assert msa(ack)[1] == "AR"
    assert err is not None and err[5] == "VALIDATION^^L"
    assert "EVN" in err[8]
    assert engine.stored == []


async def test_a_long_digit_run_is_refused_before_strict_validation_reads_it(
    intake: Hl7Intake, engine: FakeEngine
) -> None:
    # hl7apy's date-time parsing is quadratic in a run of digits and holds the GIL: 30,000
    # of them froze the event loop for 9 s. The run is refused before hl7apy sees it.
    pid = "PID|1||M1^^^X^MR||Doe^Jane||" + "1" * 30_000 + "|F"
    started = time.perf_counter()
    (ack,) = await answer(intake, adt(facility="STRICTFAC", pid=pid))
    assert time.perf_counter() - started < 1.0
    err = segment(ack, "ERR")
    assert msa(ack)[1] == "AR"
    assert err is not None and err[5] == "VALIDATION^^L"
    assert "more than 64 digits in a row" in err[8]
    assert engine.stored == []


async def test_err_text_never_carries_client_data(intake: Hl7Intake) -> None:
    bad = adt(facility="STRICTFAC", pid="PID|1||MRN1^^^^MR||" + "Quixtanova" * 40)
    for text in (bad, adt(facility="STRANGER"), adt(version="9.9")):
        for ack in await answer(intake, text):
            assert "Quixtanova" not in ack and "Zebulon" not in ack and "19610723" not in ack


async def test_times_without_an_offset_are_read_in_the_senders_time_zone(
    engine: FakeEngine,
) -> None:
    """A San Diego hospital writes local times without an offset: its admit time is 10:00
    Pacific (18:00 UTC), not 10:00 UTC, and its MSH-7 orders against stamps with offsets."""
    from zoneinfo import ZoneInfo

    pacific = ZoneInfo("America/Los_Angeles")
    senders = {"MERCY": SenderConfig("MERCY", "hospital-x", zone=pacific)}
    local = Hl7Intake(engine, Hl7Settings(senders=senders))
    text = adt("A01", "TZ1", timestamp="20250301100000").replace(
        "20250301100000-0800|20250302120000-0800", "20250301100000|20250302120000"
    )
    (ack,) = await answer(local, text)
    assert msa(ack)[1] == "AA"
    client, encounter = engine.stored
    assert encounter.admit_time == datetime(2025, 3, 1, 18, 0, tzinfo=UTC)
    assert encounter.admit_time.utcoffset() is not None
    assert client.meta.version == "2025-03-01T18:00:00"  # MSH-7 in UTC, as offsets are


def test_a_time_zone_setting_must_name_a_zone() -> None:
    from plugins.hl7.settings import load_settings, validate_section

    agencies = frozenset({"hospital-x"})
    section = {
        "timezone": "Pacific/Nowhere",
        "senders": [{"facility": "A", "agency": "hospital-x", "timezone": "PST8PDT"}],
    }
    assert validate_section(section, agencies) == [
        "hl7.timezone: unknown time zone 'Pacific/Nowhere' (an IANA name such as "
        "'America/Los_Angeles')"
    ]
    settings = load_settings({**section, "timezone": "UTC"})
    sender = settings.sender("A")
    assert sender is not None and str(settings.zone_of(sender)) == "PST8PDT"
