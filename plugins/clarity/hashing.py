"""HashStatus 4 (SHA-256) as DOMAIN.md states it.

Names (first, middle, last, suffix) become the SHA-256 hex digest of their American Soundex
code; an SSN becomes its last four characters in clear followed by the SHA-256 hex digest of
the full SSN, missing digits written as lower-case ``x``. Dates of birth are not hashed.
"""

from __future__ import annotations

import hashlib

_CODES = {
    **dict.fromkeys("BFPV", "1"),
    **dict.fromkeys("CGJKQSXZ", "2"),
    **dict.fromkeys("DT", "3"),
    "L": "4",
    **dict.fromkeys("MN", "5"),
    "R": "6",
}


def soundex(name: str) -> str:
    """American Soundex (a letter and three digits); ``""`` for a name without letters."""
    letters = [ch for ch in name.upper() if "A" <= ch <= "Z"]
    if not letters:
        return ""
    first = letters[0]
    out = [first]
    last = _CODES.get(first, "")
    for ch in letters[1:]:
        code = _CODES.get(ch, "")
        if code and code != last:
            out.append(code)
            if len(out) == 4:
                break
        if ch not in "HW":
            last = code
    return "".join(out).ljust(4, "0")


def hash_name(name: str) -> str:
    """SHA-256 hex of a name's Soundex code (blank stays blank)."""
    code = soundex(name)
    return hashlib.sha256(code.encode()).hexdigest() if code else ""


def ssn_with_x(ssn: str) -> str:
    """The SSN as nine characters: digits, missing ones as ``x`` (a short SSN is taken as its
    last digits)."""
    chars = "".join(
        ch.lower() if ch.lower() == "x" else ch for ch in ssn if ch.isdigit() or ch.lower() == "x"
    )
    return chars[-9:].rjust(9, "x")


def hash_ssn(ssn: str) -> str:
    """Last four in clear + SHA-256 hex of the full SSN (missing digits as ``x``)."""
    if not ssn:
        return ""
    full = ssn_with_x(ssn)
    return full[-4:] + hashlib.sha256(full.encode()).hexdigest()
