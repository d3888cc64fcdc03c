"""Finding client data where it must never be: log records, error messages, received bytes."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterable

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def forms(value: str) -> set[str]:
    """The value as text and as it looks inside JSON written with ASCII escapes."""
    escaped = json.dumps(value)[1:-1]
    return {value, escaped}


def found_in(text: str, tokens: Iterable[str]) -> list[str]:
    """The tokens that occur in ``text`` (in any of their :func:`forms`), sorted."""
    return sorted(t for t in tokens if any(f in text for f in forms(t)))


def found_in_bytes(data: bytes, tokens: Iterable[str]) -> list[str]:
    """The tokens that occur in ``data`` as UTF-8 (in any of their :func:`forms`), sorted."""
    return sorted(t for t in tokens if any(f.encode("utf-8") in data for f in forms(t)))


def log_texts(record: logging.LogRecord) -> list[str]:
    """Everything a log record would put in a log line: its message, every ``extra`` field,
    and any exception with its traceback."""
    try:
        texts = [record.getMessage()]
    except Exception:  # a bad format string still leaves its parts in the record
        texts = [str(record.msg), repr(record.args)]
    for name, value in vars(record).items():
        if name not in _STANDARD:
            texts.append(f"{name}={value!r}")
            texts.append(str(value))
    if record.exc_info and record.exc_info[1] is not None:
        texts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.exc_text:
        texts.append(record.exc_text)
    return texts


def leaks_in_logs(
    records: Iterable[logging.LogRecord], tokens: Iterable[str]
) -> list[tuple[str, str, list[str]]]:
    """(logger, level, tokens found) for every log record that carries client data."""
    wanted = list(tokens)
    found: list[tuple[str, str, list[str]]] = []
    for record in records:
        hits = sorted({t for text in log_texts(record) for t in found_in(text, wanted)})
        if hits:
            found.append((record.name, record.levelname, hits))
    return found
