"""HL7 v2 encoding characters and escape sequences (decode on read, encode on write).

A message names its own delimiters in MSH-1 and MSH-2; every decoded value goes through
:func:`unescape` and every value written goes through :func:`escape`, so a ``|`` or ``^`` in
a name never splits a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from hub.core.numbers import whole_number

MAX_LINE_SKIP = 100
"""The most line breaks one ``\\.sp N\\`` formatting command becomes."""

_CONTROL_CHARS = frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


@dataclass(frozen=True, slots=True)
class Encoding:
    """The delimiters of one message: MSH-1 and the characters of MSH-2.

    ``truncation`` is the v2.7+ fifth character (``#``); empty when the message has none.
    ``subcomponent`` is empty when MSH-2 has only three characters: such a message has no
    subcomponent separator, and an ``&`` in it is data.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @property
    def msh2(self) -> str:
        """The MSH-2 text of this encoding."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    def delimiters(self) -> str:
        """Every delimiter character, field separator included."""
        return self.field + self.msh2


DEFAULT_ENCODING = Encoding()
"""``|^~\\&``: what the hub writes and what nearly every sender uses."""


class EncodingCharsError(ValueError):
    """MSH-1/MSH-2 do not describe a usable set of delimiters."""


def encoding_from_msh(field_sep: str, msh2: str) -> Encoding:
    """The encoding a message declares; raise :class:`EncodingCharsError` when unusable."""
    chars = field_sep + msh2
    if not 3 <= len(msh2) <= 5:
        raise EncodingCharsError("MSH-2 must hold 3 to 5 encoding characters")
    if len(set(chars)) != len(chars):
        raise EncodingCharsError("MSH-1 and MSH-2 characters must all differ")
    if any(c.isalnum() or c in "\r\n " or c in _CONTROL_CHARS for c in chars):
        raise EncodingCharsError("encoding characters must be printable punctuation")
    return Encoding(
        field=field_sep,
        component=msh2[0],
        repetition=msh2[1],
        escape=msh2[2],
        subcomponent=msh2[3] if len(msh2) > 3 else "",
        truncation=msh2[4] if len(msh2) > 4 else "",
    )


# ---- decoding ------------------------------------------------------------------------------


def _decode_hex(hexdigits: str) -> str | None:
    if not hexdigits or len(hexdigits) % 2:
        return None
    try:
        data = bytes.fromhex(hexdigits)
    except ValueError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _formatting(seq: str) -> str | None:
    """Formatted-text commands (``\\.br\\``, ``\\.sp 2\\`` …) as plain text, None if unknown."""
    command, _, arg = seq[1:].partition(" ")
    if command in ("br", "ce"):
        return "\n"
    if command == "sp":
        # A sender's count is bounded: ``\.sp 300000000\`` must not become 300 MB of text.
        count = whole_number(arg.strip()) or 1
        return "\n" * min(count, MAX_LINE_SKIP)
    if command in ("fi", "nf", "in", "ti", "sk") or command.startswith(("in", "ti", "sk")):
        return ""
    return None


def _decode_sequence(seq: str, enc: Encoding) -> str | None:
    """The text an escape sequence (without its escape characters) stands for, or None."""
    if seq == "F":
        return enc.field
    if seq == "S":
        return enc.component
    if seq == "T":
        return enc.subcomponent or None
    if seq == "R":
        return enc.repetition
    if seq == "E":
        return enc.escape
    if seq == "P" and enc.truncation:
        return enc.truncation
    if seq in ("H", "N"):  # highlighting on/off: no plain-text meaning
        return ""
    head = seq[:1]
    if head == "X":
        return _decode_hex(seq[1:])
    if head == ".":
        return _formatting(seq)
    if head in ("C", "M") and len(seq) in (5, 7):  # character set switches
        return ""
    return None


def unescape(value: str, enc: Encoding = DEFAULT_ENCODING) -> str:
    """Decode the escape sequences of one leaf value; unknown sequences stay as written."""
    esc = enc.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        j = value.find(esc, i)
        if j < 0:
            out.append(value[i:])
            break
        out.append(value[i:j])
        k = value.find(esc, j + 1)
        if k < 0:
            out.append(value[j:])
            break
        decoded = _decode_sequence(value[j + 1 : k], enc)
        if decoded is None:
            out.append(value[j : k + 1])
        else:
            out.append(decoded)
        i = k + 1
    return "".join(out)


# ---- encoding ------------------------------------------------------------------------------


@cache
def _escape_table(enc: Encoding) -> dict[int, str]:
    e = enc.escape
    table: dict[int, str] = {ord(c): f"{e}X{ord(c):02X}{e}" for c in _CONTROL_CHARS}
    table[ord(enc.escape)] = f"{e}E{e}"
    table[ord(enc.field)] = f"{e}F{e}"
    table[ord(enc.component)] = f"{e}S{e}"
    if enc.subcomponent:
        table[ord(enc.subcomponent)] = f"{e}T{e}"
    table[ord(enc.repetition)] = f"{e}R{e}"
    if enc.truncation:
        table[ord(enc.truncation)] = f"{e}P{e}"
    return table


@cache
def _special(enc: Encoding) -> frozenset[str]:
    return frozenset(enc.delimiters()) | _CONTROL_CHARS


def escape(value: str, enc: Encoding = DEFAULT_ENCODING) -> str:
    """Escape a value for writing: delimiters become ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, control
    characters (line breaks, MLLP framing bytes) become ``\\Xhh\\``."""
    if _special(enc).isdisjoint(value):
        return value
    return value.translate(_escape_table(enc))
