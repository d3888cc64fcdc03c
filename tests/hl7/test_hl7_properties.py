"""Property tests: escaping round-trips through render and parse; the framer survives any
bytes and recovers every frame."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.partial_dates import first_day
from hub.plugin_api import Address, Client, HumanName, Provenance, RecordMeta, SourceKey
from plugins.hl7.dtm import format_partial_date, parse_partial_date
from plugins.hl7.escaping import escape, unescape
from plugins.hl7.framing import Frame, MllpDecoder, encode_frame
from plugins.hl7.mapping import map_client
from plugins.hl7.parser import parse_message
from plugins.hl7.render import Envelope, render_client

# Any text without surrogates: delimiters, escape characters, line breaks, MLLP bytes, unicode.
TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from("|^~\\&#\r\n\x0b\x1c"),
    max_size=40,
)
# What survives the record mapping, which trims blanks and reads '""' as HL7 null.
VALUE = TEXT.map(str.strip).filter(lambda s: s != '""')


@settings(deadline=None)
@given(TEXT)
def test_unescape_inverts_escape(value: str) -> None:
    assert unescape(escape(value)) == value


@settings(deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=4))
def test_escaped_components_parse_back(values: list[str]) -> None:
    field = "^".join(escape(v) for v in values)
    text = f"MSH|^~\\&|A|F|||20250101||ADT^A01|1|P|2.5\rZZZ|{field}~{field}\r"
    seg = parse_message(text).first("ZZZ")
    assert seg is not None
    for rep in (0, 1):
        assert [seg.get(1, i + 1, rep=rep) for i in range(len(values))] == values


def _client(family: str, given_name: str, city: str) -> Client:
    meta = RecordMeta(
        "client",
        SourceKey("hl7:MERCY", "MRN-1"),
        "hospital-x",
        Provenance("test", datetime(2025, 1, 1, tzinfo=UTC), "0" * 64),
        "2025-01-01T00:00:00",
    )
    return Client(
        meta=meta,
        names=(HumanName(family=family, given=(given_name,) if given_name else ()),),
        addresses=(Address(lines=("1 Main St",), city=city),),
    )


@settings(max_examples=150, deadline=None)
@given(VALUE, VALUE, VALUE)
def test_render_then_parse_gives_the_values_back(family: str, given_name: str, city: str) -> None:
    client = _client(family, given_name, city)
    text = render_client(client, Envelope("CTRL1"))
    pid = parse_message(text.encode("utf-8")).first("PID")
    assert pid is not None
    parsed = map_client(pid, client.meta, [])
    if family or given_name:
        assert parsed.names[0].family == family
        assert parsed.names[0].given == ((given_name,) if given_name else ())
    assert parsed.addresses[0].city == city


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 4096))
def test_framer_never_crashes_on_random_bytes(chunks: list[bytes], limit: int) -> None:
    decoder = MllpDecoder(max_frame_bytes=limit, head_bytes=64)
    for chunk in chunks:
        for event in decoder.feed(chunk):
            if isinstance(event, Frame):
                assert len(event.data) <= limit
        assert decoder.buffered <= limit


@settings(max_examples=150, deadline=None)
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.sampled_from(["", "month", "year"]),
)
def test_a_birth_date_renders_and_parses_back_at_its_precision(day: date, precision: str) -> None:
    """PID-7 ``1980`` / ``198005`` / ``19800517`` → canonical → PID-7: the same text; and a
    canonical birth date survives render then parse with its precision."""
    text = format_partial_date(day, precision)
    assert len(text) == {"": 8, "month": 6, "year": 4}[precision]
    assert parse_partial_date(text) == (first_day(day, precision), precision)
    client = dataclasses.replace(
        _client("Doe", "Jo", "Town"),
        birth_date=first_day(day, precision),
        birth_date_precision=precision,
    )
    pid = parse_message(render_client(client, Envelope("CTRL1")).encode("utf-8")).first("PID")
    assert pid is not None
    assert pid.get(7) == text
    parsed = map_client(pid, client.meta, [])
    assert (parsed.birth_date, parsed.birth_date_precision) == (
        client.birth_date,
        client.birth_date_precision,
    )


@settings(deadline=None)
@given(
    st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))),
    st.binary(max_size=50).map(lambda b: b.replace(b"\x0b", b"")),
    st.integers(1, 64),
)
def test_framer_recovers_every_frame_however_the_stream_is_cut(
    payloads: list[bytes], junk: bytes, step: int
) -> None:
    stream = junk.replace(b"\x1c", b"") + b"".join(encode_frame(p) for p in payloads)
    decoder = MllpDecoder(max_frame_bytes=1 << 16)
    frames = []
    for i in range(0, len(stream), step):
        frames += [e.data for e in decoder.feed(stream[i : i + step]) if isinstance(e, Frame)]
    assert frames == payloads
