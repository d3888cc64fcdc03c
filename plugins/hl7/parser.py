"""A fast HL7 v2 (ER7) parser for the hot path: split-based, no object tree per value.

A message is a list of segments; a segment is its list of raw (still escaped) field strings.
Components, subcomponents and repetitions are split, and escape sequences decoded, only when
a value is read. Parsing a rich ADT takes tens of microseconds; hl7apy (milliseconds) is used
only for the optional strict validation of a sender's messages.

Segments may end with ``\\r`` (the standard), ``\\n`` or ``\\r\\n`` (files). Errors name the
segment and field, never a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from plugins.hl7.escaping import Encoding, EncodingCharsError, encoding_from_msh, unescape

SUPPORTED_VERSIONS: frozenset[str] = frozenset(
    {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"}
)
"""HL7 v2 versions the hub reads (MSH-12)."""


class Hl7ParseError(ValueError):
    """A message that cannot be read; ``code`` is an HL7 table 0357 error code.

    ``header`` is the message's MSH when it could be read (so the answer can echo MSH-10).
    The text names segment and field positions only, never client data.
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str = "100",
        segment: str = "",
        sequence: int = 1,
        field: int = 0,
        header: Header | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.segment = segment
        self.sequence = sequence
        self.field = field
        self.header = header


class Composite:
    """One repetition of a field: its components, each readable by position (1-based)."""

    __slots__ = ("enc", "parts")

    def __init__(self, raw: str, enc: Encoding) -> None:
        self.parts = raw.split(enc.component)
        self.enc = enc

    def raw(self, component: int) -> str:
        """The component as written (escape sequences and subcomponents intact)."""
        parts = self.parts
        return parts[component - 1] if component <= len(parts) else ""

    def get(self, component: int = 1, sub: int = 1) -> str:
        """One decoded subcomponent of a component ('' when absent)."""
        parts = self.parts
        if component > len(parts):
            return ""
        value = parts[component - 1]
        if not value:
            return value
        enc = self.enc
        sc = enc.subcomponent
        if sc and sc in value:
            subs = value.split(sc)
            value = subs[sub - 1] if sub <= len(subs) else ""
        elif sub > 1:
            return ""
        return unescape(value, enc) if enc.escape in value else value

    def subs(self, component: int) -> list[str]:
        """Every decoded subcomponent of a component."""
        raw, sc = self.raw(component), self.enc.subcomponent
        return [unescape(s, self.enc) for s in (raw.split(sc) if sc else [raw])]

    def __len__(self) -> int:
        return len(self.parts)


class Segment:
    """One segment: ``fields[n]`` is field n as written (``MSH-1`` is ``fields[1]``).

    The line is split into fields on first access, so segments nobody reads cost nothing.
    """

    __slots__ = ("_fields", "enc", "id", "line")

    def __init__(self, line: str, enc: Encoding, fields: list[str] | None = None) -> None:
        self.line = line
        self.enc = enc
        self.id = line[:3]
        self._fields = fields

    @property
    def fields(self) -> list[str]:
        """The raw fields; ``fields[0]`` is the segment id."""
        fields = self._fields
        if fields is None:
            fields = self._fields = self.line.split(self.enc.field)
        return fields

    def raw(self, n: int) -> str:
        """Field n as written ('' when absent)."""
        fields = self.fields
        return fields[n] if n < len(fields) else ""

    def reps(self, n: int) -> list[str]:
        """The repetitions of field n, as written."""
        value = self.raw(n)
        return value.split(self.enc.repetition) if value else []

    def composites(self, n: int) -> list[Composite]:
        """The repetitions of field n, each split into components."""
        return [Composite(r, self.enc) for r in self.reps(n)]

    def composite(self, n: int, rep: int = 0) -> Composite:
        """One repetition of field n, split into components (empty when absent)."""
        reps = self.reps(n)
        return Composite(reps[rep] if rep < len(reps) else "", self.enc)

    def get(self, n: int, component: int = 1, sub: int = 1, rep: int = 0) -> str:
        """One decoded value: field n, repetition ``rep``, component and subcomponent."""
        fields = self._fields if self._fields is not None else self.fields
        value = fields[n] if n < len(fields) else ""
        if not value:
            return ""
        enc = self.enc
        if enc.repetition in value:
            reps = value.split(enc.repetition)
            value = reps[rep] if rep < len(reps) else ""
        elif rep:
            return ""
        if enc.component in value or component > 1:
            parts = value.split(enc.component)
            value = parts[component - 1] if component <= len(parts) else ""
        sc = enc.subcomponent
        if sub > 1 or (sc and sc in value):
            subs = value.split(sc) if sc else [value]
            value = subs[sub - 1] if sub <= len(subs) else ""
        return unescape(value, enc) if enc.escape in value else value

    def __repr__(self) -> str:
        return f"<Segment {self.id} fields={len(self.fields) - 1}>"


@dataclass(frozen=True, slots=True)
class Header:
    """The MSH fields the hub acts on, decoded (raw fields stay on :attr:`segment`)."""

    segment: Segment
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    timestamp: str
    message_type: str
    trigger_event: str
    structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str
    app_ack_type: str
    charset: str

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgement mode: MSH-15 or MSH-16 is valued."""
        return bool(self.accept_ack_type or self.app_ack_type)

    @property
    def sender(self) -> str:
        """``application|facility`` (MSH-3 and MSH-4 namespace ids): who sent the message."""
        return f"{self.sending_application}|{self.sending_facility}"

    @property
    def type_name(self) -> str:
        """``ADT^A01`` style name of the message type and event."""
        return (
            f"{self.message_type}^{self.trigger_event}"
            if self.trigger_event
            else (self.message_type)
        )


class Message:
    """A parsed message: segments in order, with lookup by segment id."""

    __slots__ = ("enc", "header", "segments", "text")

    def __init__(self, segments: list[Segment], enc: Encoding, header: Header, text: str) -> None:
        self.segments = segments
        self.enc = enc
        self.header = header
        self.text = text

    def first(self, segment_id: str) -> Segment | None:
        """The first segment with that id, or None."""
        for seg in self.segments:
            if seg.id == segment_id:
                return seg
        return None

    def all(self, segment_id: str) -> list[Segment]:
        """Every segment with that id, in order."""
        return [seg for seg in self.segments if seg.id == segment_id]

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def __repr__(self) -> str:
        h = self.header
        return f"<Message {h.type_name} control_id={h.control_id} segments={len(self.segments)}>"


def decode_bytes(data: bytes) -> str:
    """Message bytes as text: UTF-8, else ISO 8859-1 (every byte is a character there)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def normalise(text: str) -> str:
    """Segment ends as ``\\r``; leading byte-order mark and blank space removed."""
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text.lstrip("\ufeff\r\t \x0b")


def header_of(msh: Segment) -> Header:
    """The decoded header fields of an MSH segment."""

    def first(n: int) -> str:
        return msh.get(n).strip()

    event = msh.get(9, 2).strip()
    return Header(
        segment=msh,
        sending_application=first(3),
        sending_facility=first(4),
        receiving_application=first(5),
        receiving_facility=first(6),
        timestamp=first(7),
        message_type=msh.get(9, 1).strip().upper(),
        trigger_event=event.upper(),
        structure=msh.get(9, 3).strip().upper(),
        control_id=msh.get(10).strip(),
        processing_id=first(11),
        version=first(12),
        accept_ack_type=first(15).upper(),
        app_ack_type=first(16).upper(),
        charset=first(18),
    )


_SEEN_IDS: set[str] = set()


def _valid_segment_id(sid: str) -> bool:
    if sid in _SEEN_IDS:
        return True
    ok = len(sid) == 3 and sid.isascii() and sid.isalnum() and sid[0].isalpha() and sid.isupper()
    if ok:
        _SEEN_IDS.add(sid)  # at most 26*36*36 ids: a bounded cache
    return ok


def parse_msh(text: str) -> tuple[Encoding, Segment]:
    """Read the MSH segment at the start of normalised text."""
    if not text.startswith("MSH") or len(text) < 8:
        raise Hl7ParseError("message does not start with an MSH segment", segment="MSH")
    fs = text[3]
    end = text.find("\r")
    line = text if end < 0 else text[:end]
    second = line.find(fs, 4)
    msh2 = line[4:] if second < 0 else line[4:second]
    try:
        enc = encoding_from_msh(fs, msh2)
    except EncodingCharsError as exc:
        raise Hl7ParseError(str(exc), code="102", segment="MSH", field=2) from None
    fields = line.split(fs)
    fields[0] = "MSH"
    fields.insert(1, fs)
    return enc, Segment(line, enc, fields)


def parse_message(data: bytes | str) -> Message:
    """Parse one message (bytes are decoded as UTF-8, else ISO 8859-1).

    Raises :class:`Hl7ParseError` when there is no MSH, the delimiters are unusable, or a
    line is not a segment. Version and message type are checked by the caller.
    """
    text = normalise(decode_bytes(data) if isinstance(data, bytes) else data)
    enc, msh = parse_msh(text)
    header = header_of(msh)
    if not header.control_id:
        raise Hl7ParseError(
            "MSH-10 (message control id) is empty",
            code="101",
            segment="MSH",
            field=10,
            header=header,
        )
    segments = [msh]
    fs = enc.field
    lines = text.split("\r")
    for index in range(1, len(lines)):
        line = lines[index]
        if not line or line.isspace():
            continue
        sid = line[:3]
        if not _valid_segment_id(sid) or (len(line) > 3 and line[3] != fs):
            raise Hl7ParseError(
                f"line {index + 1} is not a segment (bad segment id)", header=header
            )
        if sid == "MSH":
            raise Hl7ParseError(
                f"line {index + 1}: a second MSH (one message per frame)", header=header
            )
        segments.append(Segment(line, enc))
    return Message(segments, enc, header, text)


def parse_header(data: bytes | str) -> Header | None:
    """The MSH of a message that may not parse further, when the MSH is readable and has a
    control id (so a reject can echo it); else None."""
    try:
        text = normalise(decode_bytes(data) if isinstance(data, bytes) else data)
        _enc, msh = parse_msh(text)
    except Hl7ParseError:
        return None
    try:
        header = header_of(msh)
    except Exception:  # the answer to a message that broke the parser must not break too
        return None
    return header if header.control_id else None
