"""The fast parser: segments, fields, repetitions, components, escapes, line ends, versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from plugins.hl7.ack import AckError, build_ack
from plugins.hl7.dtm import format_dtm, parse_date, parse_dtm, sortable
from plugins.hl7.escaping import Encoding, escape, unescape
from plugins.hl7.parser import Hl7ParseError, parse_header, parse_message
from tests.hl7.conftest import adt


def test_header_fields_are_decoded() -> None:
    m = parse_message(adt("A04", "CTRL-9", accept_ack="AL", app_ack="NE"))
    h = m.header
    assert (h.sending_application, h.sending_facility) == ("EPIC", "MERCY")
    assert (h.receiving_application, h.receiving_facility) == ("HUB", "CIE")
    assert (h.message_type, h.trigger_event, h.structure) == ("ADT", "A04", "ADT_A01")
    assert (h.control_id, h.processing_id, h.version) == ("CTRL-9", "P", "2.5")
    assert (h.accept_ack_type, h.app_ack_type, h.enhanced) == ("AL", "NE", True)
    assert h.sender == "EPIC|MERCY"
    assert [s.id for s in m] == ["MSH", "EVN", "PID", "PV1"]


def test_msh_field_numbers_follow_the_standard() -> None:
    msh = parse_message(adt()).header.segment
    assert msh.raw(1) == "|"
    assert msh.raw(2) == "^~\\&"
    assert msh.get(9, 2) == "A01"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_ends_cr_lf_and_crlf_read_the_same(sep: str) -> None:
    m = parse_message(adt(sep=sep).encode())
    assert [s.id for s in m] == ["MSH", "EVN", "PID", "PV1"]
    assert m.first("PV1") is not None
    assert m.first("PV1").get(19) == "V100"  # type: ignore[union-attr]


def test_repetitions_components_and_subcomponents() -> None:
    text = (
        "MSH|^~\\&|A|F|||20250101||ADT^A01|1|P|2.5\r"
        "PID|1||X1^^^AUTH&1.2.3&ISO^MR~X2^^^^SS||Fam&Pre^Given^Mid~Alias^Al\r"
    )
    pid = parse_message(text).first("PID")
    assert pid is not None
    assert pid.reps(3) == ["X1^^^AUTH&1.2.3&ISO^MR", "X2^^^^SS"]
    assert [c.get(1) for c in pid.composites(3)] == ["X1", "X2"]
    assert pid.get(3, 4, 2) == "1.2.3"
    assert pid.get(3, 5, rep=1) == "SS"
    assert pid.get(5, 1, 1) == "Fam"
    assert pid.get(5, 1, 2) == "Pre"
    assert pid.get(5, 2, rep=1) == "Al"
    assert pid.get(5, 9) == ""
    assert pid.get(40) == ""
    assert pid.get(3, rep=5) == ""


def test_escape_sequences_are_decoded_in_values() -> None:
    text = (
        "MSH|^~\\&|A|F|||20250101||ADT^A01|1|P|2.5\r"
        "NTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X0D0A\\g\\.br\\h\\H\\bold\\N\\ \\Z99\\\r"
    )
    nte = parse_message(text).first("NTE")
    assert nte is not None
    assert nte.get(3) == "a|b^c&d~e\\f\r\ng\nhbold \\Z99\\"


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("plain", "plain"),
        ("\\E\\\\E\\", "\\\\"),
        ("tail\\", "tail\\"),
        ("\\X41\\", "A"),
        ("\\XC3A9\\", "é"),
        ("\\Xzz\\", "\\Xzz\\"),
        ("a\\.sp 2\\b", "a\n\nb"),
        ("a\\.sp 300000000\\b", "a" + "\n" * 100 + "b"),  # bounded, not 300 MB
        ("a\\.sp ²\\b", "a\nb"),  # a digit int() cannot read is no count
        ("a\\.sp 99999999999999999999\\b", "a\nb"),
        ("\\.in+4\\x", "x"),
        ("\\C2842\\x", "x"),
    ],
)
def test_unescape_cases(raw: str, decoded: str) -> None:
    assert unescape(raw) == decoded


def test_escape_covers_delimiters_and_control_characters() -> None:
    assert escape("a|b^c&d~e\\f") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"
    assert escape("x\ry\n\x0b\x1c") == "x\\X0D\\y\\X0A\\\\X0B\\\\X1C\\"
    assert escape("plain text") == "plain text"
    assert escape("a#b", Encoding(truncation="#")) == "a\\P\\b"


def test_custom_delimiters_are_honoured() -> None:
    text = "MSH*:~!&*APP*FAC*R*RF*20250101**ADT:A08*77*P*2.4\rPID*1**ID1:::AUTH:MR**Doe:Jane!F!x\r"
    m = parse_message(text)
    assert m.header.trigger_event == "A08"
    pid = m.first("PID")
    assert pid is not None
    assert pid.get(3, 4) == "AUTH"
    assert pid.get(5, 2) == "Jane*x"


def test_three_character_msh_2_has_no_subcomponents_so_ampersand_is_data() -> None:
    text = "MSH|^~\\|APP|FAC|||20250101||ADT^A08|7&7|P|2.3\rPID|1||ID&1^^^AUTH^MR||Doe & Roe^Jane\r"
    m = parse_message(text)
    assert m.header.control_id == "7&7"
    pid = m.first("PID")
    assert pid is not None
    assert (pid.get(3), pid.get(5), pid.get(5, 1, 2)) == ("ID&1", "Doe & Roe", "")
    assert pid.composite(5).get(1) == "Doe & Roe"
    assert pid.composite(5).subs(1) == ["Doe & Roe"]
    assert escape("a&b", m.enc) == "a&b"
    ack = build_ack(m.header, "AR", AckError("101", "missing", "PID", field=3))
    assert ack.startswith("MSH|^~\\|")  # the sender's own three delimiters
    assert "ERR|PID^1^3^101\r" in ack  # ERR-1.4 without subcomponents it cannot write
    assert [s.id for s in parse_message(ack).segments] == ["MSH", "MSA", "ERR"]


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"])
def test_versions_are_read(version: str) -> None:
    assert parse_message(adt(version=version)).header.version == version


def test_leading_bom_and_blank_lines_are_tolerated() -> None:
    m = parse_message(("\ufeff\r\n" + adt(sep="\r\n") + "\r\n\r\n").encode("utf-8"))
    assert len(m.segments) == 4


def test_latin1_bytes_are_read() -> None:
    data = adt().replace("Zebulon", "Zébulon").encode("latin-1")
    pid = parse_message(data).first("PID")
    assert pid is not None
    assert pid.get(5, 2) == "Zébulon"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "does not start with an MSH"),
        (b"PID|1||X\r", "does not start with an MSH"),
        (b"MSH|^|A|F\r", "MSH-2"),
        (b"MSH|^~\\&|A|F|||20250101||ADT^A01||P|2.5\r", "MSH-10"),
        (b"MSH|^~\\&|A|F|||20250101||ADT^A01|1|P|2.5\rthis is not a segment\r", "line 2"),
        (b"MSH|^~\\&|A|F|||20250101||ADT^A01|1|P|2.5\rMSH|^~\\&|A\r", "second MSH"),
    ],
)
def test_unreadable_messages_raise_with_a_location(data: bytes, reason: str) -> None:
    with pytest.raises(Hl7ParseError) as info:
        parse_message(data)
    assert reason in info.value.reason


def test_a_bad_body_still_yields_the_header_for_the_reject() -> None:
    data = b"MSH|^~\\&|A|F|||20250101||ADT^A01|CID7|P|2.5\rbroken line\r"
    with pytest.raises(Hl7ParseError) as info:
        parse_message(data)
    assert info.value.header is not None
    assert info.value.header.control_id == "CID7"
    assert parse_header(data) is not None
    assert parse_header(b"garbage") is None


def test_dtm_values() -> None:
    assert parse_dtm("20250301101500-0800") == datetime(
        2025, 3, 1, 10, 15, tzinfo=timezone(-timedelta(hours=8))
    )
    assert parse_dtm("2025") == datetime(2025, 1, 1)
    assert parse_dtm("20250301101500.1234") == datetime(2025, 3, 1, 10, 15, 0, 123400)
    assert parse_dtm("20251301") is None
    assert parse_dtm("garbage") is None
    assert parse_dtm("20250301+2500") is None
    assert parse_date("19610723") is not None
    assert parse_date("196107") is None


def test_sortable_versions_sort_like_instants() -> None:
    a = sortable(datetime(2025, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))))
    b = sortable(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    c = sortable(datetime(2025, 3, 1, 9, 0, 0, 500000, tzinfo=UTC))
    assert a == "2025-03-01T08:00:00"
    assert a < b < c
    assert c == "2025-03-01T09:00:00.5"


def test_format_dtm_round_trips() -> None:
    when = datetime(2025, 3, 1, 10, 15, 30, tzinfo=timezone(timedelta(hours=-7)))
    assert format_dtm(when) == "20250301101530-0700"
    assert parse_dtm(format_dtm(when)) == when
