"""Strict validation of a sender's messages against the HL7 structures (hl7apy).

Used only for senders configured with ``validation = "strict"``: hl7apy takes milliseconds
per message, so it runs in a worker thread, off the event loop. Its finding is reduced to the
error kind and the element names it mentions (``ADT_A01.PV1``, ``PID_5``) — hl7apy messages
can quote field values, and a value is client data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ELEMENT = re.compile(r"\b[A-Z][A-Z0-9]{1,3}(?:_[A-Z0-9]+)+\b|\b[A-Z][A-Z0-9]{2}\b")
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("Missing required child", "missing required element", "101"),
    ("Child limit exceeded", "too many repetitions of", "100"),
    ("Invalid children detected", "unexpected element in", "100"),
    ("Unknown element found", "unknown element", "100"),
    ("Invalid element found", "invalid element", "100"),
    ("Datatype", "wrong data type for", "102"),
)


MAX_DIGIT_RUN = 64
"""Digits in a row a strictly validated message may hold. No HL7 number or date comes near
it, and hl7apy's date-time parsing takes time quadratic in such a run while holding the
GIL (30,000 digits: 9 s of a frozen event loop), so a longer run is refused unread."""
_DIGIT_RUN = re.compile(f"[0-9]{{{MAX_DIGIT_RUN + 1}}}")


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a message failed strict validation: table 0357 code and a text free of values."""

    code: str
    text: str


def _elements(text: str) -> list[str]:
    seen: list[str] = []
    for name in _ELEMENT.findall(text):
        if name not in seen:
            seen.append(name)
    return seen[:4]


def describe(exc: Exception) -> Finding:
    """A value-free description of an hl7apy exception."""
    message = str(exc)
    kind_name = type(exc).__name__
    for prefix, words, code in _KINDS:
        if message.startswith(prefix):
            names = " ".join(_elements(message))
            return Finding(code, f"strict validation: {words} {names}".strip())
    if kind_name == "MaxLengthReached":
        return Finding("104", "strict validation: a value exceeds its maximum length")
    if kind_name in ("MaxChildLimitReached", "ChildNotValid", "ChildNotFound", "InvalidName"):
        names = " ".join(_elements(message))
        return Finding("100", f"strict validation: element not allowed here {names}".strip())
    if kind_name == "OperationNotAllowed":
        return Finding("100", "strict validation: an element is not defined for this version")
    if kind_name == "UnsupportedVersion":
        return Finding("203", "strict validation: version not supported by the validator")
    return Finding("102", f"strict validation failed ({kind_name})")


def with_structure(text: str, structure: str) -> str:
    """The message with MSH-9.3 (message structure) filled in when the sender left it empty.

    hl7apy derives the structure from type and event otherwise (``ADT_A04``), which does not
    exist for events that share a structure.
    """
    end = text.find("\r")
    line = text if end < 0 else text[:end]
    fs = line[3:4]
    if not fs:
        return text
    fields = line.split(fs)
    if len(fields) <= 8:
        return text
    cs = fields[1][:1]
    parts = fields[8].split(cs)
    if len(parts) >= 3 and parts[2]:
        return text
    while len(parts) < 3:
        parts.append("")
    parts[2] = structure
    fields[8] = cs.join(parts)
    rebuilt = fs.join(fields)
    return rebuilt if end < 0 else rebuilt + text[end:]


def validate_strict(text: str, structure: str) -> Finding | None:
    """Parse and validate a message strictly with hl7apy; None when it conforms."""
    if _DIGIT_RUN.search(text):
        return Finding(
            "102", f"strict validation: a value has more than {MAX_DIGIT_RUN} digits in a row"
        )
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message as hl7apy_parse

    try:
        message = hl7apy_parse(
            with_structure(text, structure).rstrip("\r"),
            validation_level=VALIDATION_LEVEL.STRICT,
            find_groups=True,
        )
        message.validate()
    except Exception as exc:  # hl7apy raises many types, all meaning "does not conform"
        return describe(exc)
    return None
