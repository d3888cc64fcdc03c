"""Acknowledgements: which codes to answer (original and enhanced mode) and the ACK text.

Original mode (MSH-15 and MSH-16 empty): one ACK, ``AA`` accepted, ``AE`` error (a retry may
succeed), ``AR`` rejected (a retry will not help).

Enhanced mode (MSH-15 or MSH-16 valued; an empty one means ``NE``): a commit ACK once the
records are stored — ``CA``, or ``CE``/``CR`` when they could not be — sent when MSH-15 asks
for it (``AL`` always, ``ER`` on error only, ``SU`` on success only, ``NE`` never); then an
application ACK (``AA``) per MSH-16. A message refused before commit gets the commit-level
refusal (``CR``/``CE``) when MSH-15 asks for error ACKs, else the application-level one
(``AR``/``AE``) when MSH-16 does; never both, because nothing was committed to apply.

The ACK swaps sender and receiver, echoes MSH-10 in MSA-2, uses the message's own delimiters
and version, and explains an error in an ERR segment that names codes, segments and fields —
never client data. An ACK is never acknowledged.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hub.core.numbers import whole_number
from plugins.hl7.dtm import format_dtm
from plugins.hl7.escaping import DEFAULT_ENCODING, Encoding, escape
from plugins.hl7.framing import encode_frame
from plugins.hl7.parser import Header

Outcome = Literal["accept", "error", "reject", "unsupported"]

ERROR_NAMES: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
"""HL7 table 0357 (message error condition codes)."""

_WANTS_ERRORS = ("AL", "ER")
_WANTS_SUCCESS = ("AL", "SU")
_KNOWN_CONDITIONS = frozenset({"AL", "NE", "ER", "SU"})
# Control ids: a random per-process prefix and a counter seeded from the clock (in
# microseconds), so ids stay unique across restarts and at thousands of messages a second.
_PREFIX = os.urandom(1).hex().upper()
_COUNTER = itertools.count(time.time_ns() // 1000)


@dataclass(frozen=True, slots=True)
class AckError:
    """Why a message was not accepted: an HL7 error code and text without client data.

    ``segment``/``sequence``/``field`` locate the problem (ERR-2); ``app_code`` is a hub
    code for problems HL7 has no code for (``UNKNOWN_SENDER``, ``VALIDATION``).
    """

    code: str
    text: str
    segment: str = ""
    sequence: int = 1
    field: int = 0
    app_code: str = ""


def ack_codes(header: Header | None, outcome: Outcome) -> list[str]:
    """The acknowledgement codes to send, in order, for a message and its outcome."""
    if outcome == "unsupported":
        # The hub does not process this message at all (type, version or sender): an
        # application reject in either mode, so the sender stops retrying and logs it.
        return ["AR"]
    original = {"accept": "AA", "error": "AE", "reject": "AR"}[outcome]
    if header is None or not header.enhanced:
        return [original]
    accept = header.accept_ack_type or "NE"
    application = header.app_ack_type or "NE"
    if outcome == "accept":
        codes: list[str] = []
        if accept in _WANTS_SUCCESS or accept not in _KNOWN_CONDITIONS:
            codes.append("CA")
        if application in _WANTS_SUCCESS or application not in _KNOWN_CONDITIONS:
            codes.append("AA")
        return codes
    if accept in _WANTS_ERRORS or accept not in _KNOWN_CONDITIONS:
        return ["CE" if outcome == "error" else "CR"]
    if application in _WANTS_ERRORS or application not in _KNOWN_CONDITIONS:
        return [original]
    return []


def new_control_id() -> str:
    """A unique control id for a message the hub writes (20 characters at most)."""
    return f"{_PREFIX}{next(_COUNTER):018d}"


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for p in version.split("."):
        number = whole_number(p, 4)
        if number is None:
            break
        parts.append(number)
    return tuple(parts)


def _err_segment(error: AckError, version: tuple[int, ...], enc: Encoding) -> str:
    fs, cs, ss = enc.field, enc.component, enc.subcomponent
    name = ERROR_NAMES.get(error.code, "Application internal error")
    text = escape(error.text, enc)
    location = ""
    if error.segment:
        location = f"{error.segment}{cs}{error.sequence}"
        if error.field:
            location += f"{cs}{error.field}"
    if version and version < (2, 5):
        # ERR-1 (ELD): segment ^ sequence ^ field ^ code&text&table
        parts = [
            error.segment,
            str(error.sequence) if error.segment else "",
            str(error.field) if error.field else "",
            f"{error.code}{ss}{escape(name, enc)}{ss}HL70357" if ss else error.code,
        ]
        return f"ERR{fs}{cs.join(parts)}"
    coded = f"{error.code}{cs}{escape(name, enc)}{cs}HL70357"
    app = f"{escape(error.app_code, enc)}{cs}{cs}L" if error.app_code else ""
    fields = ["ERR", "", location, coded, "E", app, "", "", text]  # ERR-8 user message
    return fs.join(fields)


def build_ack(
    header: Header | None,
    code: str,
    error: AckError | None = None,
    *,
    now: datetime | None = None,
    control_id: str | None = None,
) -> str:
    """The text of one ACK message (segments ending in ``\\r``) answering ``header``.

    With no header (the message had no readable MSH) the ACK has an empty MSA-2 and uses
    version 2.5 and the default delimiters.
    """
    now = now or datetime.now(UTC)
    control_id = control_id or new_control_id()
    if header is not None:
        enc = header.segment.enc
        raw = header.segment.raw
        sending_app, sending_fac = raw(5), raw(6)
        receiving_app, receiving_fac = raw(3), raw(4)
        processing, version_field, charset = raw(11), raw(12), raw(18)
        version = header.version or "2.5"
        event = header.trigger_event
        echoed = raw(10)  # MSA-2 echoes MSH-10 exactly as sent (padding, components)
    else:
        enc = DEFAULT_ENCODING
        sending_app = sending_fac = receiving_app = receiving_fac = charset = ""
        processing, version_field, version, event, echoed = "P", "2.5", "2.5", "", ""
    vt = _version_tuple(version)
    cs = enc.component
    if event and vt and vt > (2, 3):
        message_type = f"ACK{cs}{escape(event, enc)}{cs}ACK"
    elif event:
        message_type = f"ACK{cs}{escape(event, enc)}"
    else:
        message_type = "ACK"
    enhanced = header is not None and header.enhanced
    msh = [
        "MSH",
        enc.msh2,
        sending_app,
        sending_fac,
        receiving_app,
        receiving_fac,
        format_dtm(now.astimezone(UTC)),
        "",
        message_type,
        escape(control_id, enc),
        processing or "P",
        version_field or version,
        "",
        "",
        "NE" if enhanced else "",
        "NE" if enhanced else "",
        "",
        charset,
    ]
    while msh and msh[-1] == "":
        msh.pop()
    fs = enc.field
    text_message = ""
    if error is not None and (not vt or vt < (2, 7)):
        text_message = escape(error.text, enc)
    msa = fs.join(["MSA", code, echoed, text_message]).rstrip(fs)
    segments = [fs.join(msh), msa]
    if error is not None:
        segments.append(_err_segment(error, vt, enc))
    return "\r".join(segments) + "\r"


def frame(text: str, encoding: str = "utf-8") -> bytes:
    """One MLLP frame: ``<VT>`` message ``<FS><CR>``."""
    return encode_frame(text.encode(encoding, errors="replace"))


def response_bytes(
    header: Header | None,
    outcome: Outcome,
    error: AckError | None = None,
    *,
    now: datetime | None = None,
) -> bytes:
    """Every ACK frame to write for a message's outcome (possibly none), concatenated."""
    codes = ack_codes(header, outcome)
    return b"".join(frame(build_ack(header, code, error, now=now)) for code in codes)
