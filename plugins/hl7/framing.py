"""MLLP framing: ``<VT 0x0B>`` message ``<FS 0x1C><CR 0x0D>``, decoded incrementally.

A read may hold half a frame or several frames; :class:`MllpDecoder` turns a byte stream into
events. It never holds more than ``max_frame_bytes`` of one frame: past that it keeps only the
first few KiB (enough to read the MSH and answer with a reject) and skips the rest until the
frame ends. Bytes outside frames are discarded and reported. A frame ends at ``<FS>``; the
``<CR>`` after it is expected but not required (some senders omit it).
"""

from __future__ import annotations

from dataclasses import dataclass

SB = 0x0B
EB = 0x1C
CR = 0x0D
_WHITESPACE = b"\r\n\t "
HEAD_BYTES = 4096
"""How much of an oversized frame is kept to identify the message."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete frame's payload (without the framing bytes)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class OversizeStarted:
    """A frame grew past the limit; ``head`` is its first bytes. The rest is being skipped."""

    head: bytes


@dataclass(frozen=True, slots=True)
class Oversize:
    """An oversized frame ended after ``size`` bytes; ``head`` is its first bytes."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Junk:
    """``size`` non-blank bytes arrived outside any frame and were discarded."""

    size: int


@dataclass(frozen=True, slots=True)
class Truncated:
    """A frame was cut short by a new start block after ``size`` bytes; it was discarded."""

    size: int


Event = Frame | OversizeStarted | Oversize | Junk | Truncated


class MllpDecoder:
    """Incremental MLLP decoder with a per-frame size limit."""

    def __init__(self, max_frame_bytes: int = 1 << 20, head_bytes: int = HEAD_BYTES) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self.max_frame_bytes = max_frame_bytes
        self.head_bytes = head_bytes
        self._buf = bytearray()
        self._in_frame = False
        self._skipping = False
        self._skipped = 0
        self._head = b""

    @property
    def in_frame(self) -> bool:
        """True between a start block and its end block (a frame is incomplete)."""
        return self._in_frame

    @property
    def buffered(self) -> int:
        """Bytes of the current frame held in memory."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        """Consume bytes; return the events they complete, in order."""
        events: list[Event] = []
        i = 0
        n = len(data)
        while i < n:
            if not self._in_frame:
                start = data.find(SB, i)
                stop = n if start < 0 else start
                if stop > i:
                    junk = len(data[i:stop].strip(_WHITESPACE))
                    if junk:
                        events.append(Junk(junk))
                if start < 0:
                    break
                self._begin()
                i = start + 1
                continue
            end = data.find(EB, i)
            restart = data.find(SB, i)
            if restart >= 0 and (end < 0 or restart < end):
                self._take(data, i, restart, events)
                events.append(Truncated(self._size()))
                self._begin()
                i = restart + 1
                continue
            if end < 0:
                self._take(data, i, n, events)
                break
            self._take(data, i, end, events)
            events.append(self._finish())
            i = end + 1
            if i < n and data[i] == CR:
                i += 1
        return events

    def _begin(self) -> None:
        self._in_frame = True
        self._skipping = False
        self._skipped = 0
        self._head = b""
        self._buf.clear()

    def _size(self) -> int:
        return self._skipped if self._skipping else len(self._buf)

    def _take(self, data: bytes, start: int, stop: int, events: list[Event]) -> None:
        count = stop - start
        if not count:
            return
        if self._skipping:
            self._skipped += count
            return
        if len(self._buf) + count <= self.max_frame_bytes:
            self._buf += data[start:stop]
            return
        room = max(self.head_bytes - len(self._buf), 0)
        self._head = bytes(self._buf[: self.head_bytes]) + data[start : start + room]
        self._skipped = len(self._buf) + count
        self._skipping = True
        self._buf = bytearray()
        events.append(OversizeStarted(self._head))

    def _finish(self) -> Event:
        self._in_frame = False
        if self._skipping:
            self._skipping = False
            return Oversize(self._head, self._skipped)
        payload = bytes(self._buf)
        self._buf.clear()
        return Frame(payload)


def encode_frame(payload: bytes) -> bytes:
    """Wrap a payload in MLLP framing."""
    return b"\x0b" + payload + b"\x1c\r"
