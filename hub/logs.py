"""Logging without PII: structured records that carry ids only, and a filter that scrubs.

Call sites log ids (record keys, person ids, agency ids) and never client data. As a second
line of defence, :class:`PiiFilter` masks anything that looks like an SSN, a date of birth,
a phone number or an e-mail address in every message and extra field. An exception logged
by a library (aiohttp, asyncio …) is named by its type only: its text can quote the bytes a
caller sent (a request line or header aiohttp could not parse), which no pattern recognises
as a name.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson

_PATTERNS = [
    re.compile(r"\b\d{3}-?\d{2}-?\d{4}\b"),  # SSN
    re.compile(r"\b(19|20)\d{2}-\d{2}-\d{2}\b(?!T\d)"),  # a bare date (DOB)
    re.compile(r"\b\d{8}\b"),  # HL7 DTM date
    re.compile(r"\(?\b\d{3}\)?[-. ]?\d{3}[-. ]\d{4}\b"),  # phone
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),  # e-mail
]
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_OWN_LOGGERS = ("hub", "plugins", "consent")
"""Loggers whose exception texts are the hub's own (scrubbed, kept); other loggers' are not."""


def scrub(text: str) -> str:
    """Mask values that look like client identifiers."""
    for pattern in _PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class PiiFilter(logging.Filter):
    """Scrubs the formatted message and string extras of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if record.args:
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):
                record.msg = str(record.msg)
            record.args = None
        record.msg = scrub(str(record.msg))
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, scrub(value))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if _is_own(record.name):
                record.exc_text = f"{type(exc).__name__}: {scrub(str(exc))}"
            else:
                record.exc_text = type(exc).__name__
            record.exc_info = None
        return True


def _is_own(logger: str) -> bool:
    """Whether a logger is the hub's (or a plugin's) rather than a library's."""
    return logger.split(".", 1)[0] in _OWN_LOGGERS


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise a record."""
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_text:
            out["error"] = record.exc_text
        return orjson.dumps(out).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines with extra fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise a record."""
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: "
        base += record.getMessage()
        extras = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        ]
        if extras:
            base += " [" + " ".join(extras) + "]"
        if record.exc_text:
            base += f" ({record.exc_text})"
        return base


def configure_logging(level: str = "INFO", fmt: str = "text", stream: Any = None) -> None:
    """Install the PII filter and a formatter on the root logger."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(PiiFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_hub", False):
            root.removeHandler(h)
    handler._hub = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
