"""Whole numbers read from text that came from outside (URLs, headers, HL7 fields)."""

from __future__ import annotations

MAX_DIGITS = 18
"""Digits a whole number may have by default: every such value fits a signed 64-bit column."""


def whole_number(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of ``text`` when it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit`` is also true of ``²`` (which ``int`` refuses) and of other scripts'
    digits (which ``int`` reads), and a long enough number overflows a store's integer:
    text from outside is a number only when it is plain, bounded ASCII digits.
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None
