"""The MLLP decoder: split frames, several per read, size limit, junk, cut-short frames."""

from __future__ import annotations

from plugins.hl7.framing import (
    Frame,
    Junk,
    MllpDecoder,
    Oversize,
    OversizeStarted,
    Truncated,
    encode_frame,
)

MSG = b"MSH|^~\\&|A|F|||20250101||ADT^A01|1|P|2.5\rPID|1||X\r"


def test_one_frame() -> None:
    assert MllpDecoder().feed(encode_frame(MSG)) == [Frame(MSG)]


def test_frame_split_across_every_byte() -> None:
    decoder = MllpDecoder()
    events = []
    for byte in encode_frame(MSG):
        events += decoder.feed(bytes([byte]))
        if not events:
            assert decoder.in_frame or byte == 0x0D
    assert events == [Frame(MSG)]
    assert not decoder.in_frame


def test_several_frames_in_one_read_and_a_partial_one() -> None:
    decoder = MllpDecoder()
    data = encode_frame(b"one") + encode_frame(b"two") + encode_frame(b"three")[:4]
    assert decoder.feed(data) == [Frame(b"one"), Frame(b"two")]
    assert decoder.in_frame
    assert decoder.feed(b"ee\x1c\r") == [Frame(b"three")]


def test_end_block_without_carriage_return_still_ends_the_frame() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bone\x1c") == [Frame(b"one")]
    assert decoder.feed(b"\r\x0btwo\x1c\r") == [Frame(b"two")]


def test_bytes_outside_frames_are_reported_as_junk() -> None:
    decoder = MllpDecoder()
    events = decoder.feed(b"garbage" + encode_frame(b"ok") + b"\r\n  ")
    assert events == [Junk(7), Frame(b"ok")]


def test_new_start_block_cuts_the_frame_short() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bhalf a frame\x0bwhole\x1c\r") == [Truncated(12), Frame(b"whole")]


def test_oversize_frame_is_skipped_not_buffered() -> None:
    decoder = MllpDecoder(max_frame_bytes=1024, head_bytes=64)
    events = decoder.feed(b"\x0b" + MSG)
    assert events == []
    chunk = b"x" * 10_000
    events = decoder.feed(chunk)
    assert len(events) == 1 and isinstance(events[0], OversizeStarted)
    assert events[0].head.startswith(b"MSH|")
    assert len(events[0].head) == 64
    for _ in range(100):  # a 1 MB frame: memory stays flat
        assert decoder.feed(chunk) == []
        assert decoder.buffered == 0
    events = decoder.feed(b"tail\x1c\r" + encode_frame(b"next"))
    assert isinstance(events[0], Oversize)
    assert events[0].size == len(MSG) + 101 * 10_000 + 4
    assert events[1] == Frame(b"next")


def test_frame_at_the_limit_is_accepted() -> None:
    decoder = MllpDecoder(max_frame_bytes=10)
    assert decoder.feed(encode_frame(b"0123456789")) == [Frame(b"0123456789")]
    events = decoder.feed(encode_frame(b"0123456789A"))
    assert isinstance(events[0], OversizeStarted) and isinstance(events[1], Oversize)
