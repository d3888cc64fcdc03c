"""Validation of consent records (CONSENT.md JSON) into ``ConsentRecord`` values.

Record indexes are 0-based positions in the file (blank JSON Lines are not counted).
Error messages name the record and the field; they never contain a client identifier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta
from typing import NoReturn

from consent.categories import GIVEN_BY, METHODS, NETWORKS, PURPOSES, SENSITIVE_CATEGORIES
from consent.model import (
    DEFAULT_NETWORKS,
    DEFAULT_PURPOSES,
    Agency,
    ClientRef,
    ConsentPolicy,
    ConsentRecord,
)

_FIELDS = frozenset(
    {
        "id",
        "client",
        "signed_on",
        "expires_on",
        "method",
        "given_by",
        "networks",
        "exclude_agencies",
        "sensitive",
        "part2_recipients",
        "purposes",
        "revoked_on",
        "recorded_by",
    }
)
_CLIENT_FIELDS = frozenset({"system", "value"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""What ends a JSON Lines record. Not ``str.splitlines``: it also breaks at U+2028,
U+2029 and U+0085, which JSON allows unescaped inside a string."""
_NETWORKS = frozenset(NETWORKS)
_PURPOSES = frozenset(PURPOSES)
_TOO_DEEP = "nested too deeply"
_TOO_LONG = "a number has too many digits"
_NOT_TEXT = "not valid Unicode text (a lone surrogate)"


class ConsentValidationError(ValueError):
    """A consent record, or a consent file, that cannot be accepted.

    ``record_index`` is -1 when the file as a whole is unreadable.
    """

    def __init__(self, record_index: int, record_id: str | None, field: str, problem: str):
        self.record_index = record_index
        self.record_id = record_id
        self.field = field
        self.problem = problem
        where = "file" if record_index < 0 else f"record {record_index}"
        if record_id is not None:
            where = f"{where} (id {record_id})"
        super().__init__(f"{where}: field {field!r}: {problem}")


class _JsonObject(dict[str, object]):
    """A decoded JSON object that remembers keys that appeared more than once."""

    duplicate_keys: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, object]]) -> _JsonObject:
    """``json`` object hook: keep the keys, note duplicates instead of silently dropping."""
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        obj.duplicate_keys = tuple(duplicates)
    return obj


def _is_text(value: str) -> bool:
    """Whether ``value`` can be stored and printed: no lone surrogate (JSON lets an
    escape such as ``\\ud800`` through, UTF-8 cannot encode it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: object) -> str:
    """A short printable form of a (non-client) value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Reader:
    """Reads the fields of one record, raising ``ConsentValidationError`` on the first fault."""

    def __init__(self, data: Mapping[str, object], index: int, record_id: str | None):
        self.data = data
        self.index = index
        self.record_id = record_id

    def fail(self, field: str, problem: str) -> NoReturn:
        """Raise the error for ``field`` of this record."""
        raise ConsentValidationError(self.index, self.record_id, field, problem)

    def day(self, field: str) -> date | None:
        """An ISO ``YYYY-MM-DD`` date, or None when absent or null."""
        value = self.data.get(field)
        if value is None:
            return None
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            self.fail(field, f"not a date YYYY-MM-DD: {_show(value)}")
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(field, f"impossible date {_show(value)}")

    def required_day(self, field: str) -> date:
        """Like ``day``, but the field must be present."""
        found = self.day(field)
        if found is None:
            self.fail(field, "required, a date YYYY-MM-DD")
        return found

    def choice(self, field: str, default: str, allowed: Iterable[str]) -> str:
        """A string that must be one of ``allowed``."""
        value = self.data.get(field, default)
        if not isinstance(value, str) or value not in allowed:
            self.fail(field, f"unknown {field.replace('_', ' ')} {_show(value)}")
        return value

    def names(
        self,
        field: str,
        what: str,
        default: frozenset[str],
        allowed: Mapping[str, object] | frozenset[str] | None,
    ) -> frozenset[str]:
        """A list of strings, each one of (a key of) ``allowed`` (any string when None);
        ``what`` names one."""
        value = self.data.get(field, default)
        if value is default:
            return default
        if not isinstance(value, list):
            self.fail(field, "must be a list of strings")
        for item in value:
            if not isinstance(item, str):
                self.fail(field, f"must be a list of strings, found {_show(item)}")
            if allowed is not None and item not in allowed:
                self.fail(field, f"unknown {what} {_show(item)}")
        return frozenset(value)


def _client(reader: _Reader) -> ClientRef:
    """The ``client`` object; its values are never echoed in errors."""
    value = reader.data.get("client")
    if not isinstance(value, Mapping):
        reader.fail("client", "required, an object with 'value'")
    for key in value:
        if key not in _CLIENT_FIELDS:
            reader.fail(f"client.{key}", "unknown field")
    for key in getattr(value, "duplicate_keys", ()):
        reader.fail(f"client.{key}", "given more than once")
    ident = value.get("value")
    if not isinstance(ident, str) or not ident.strip():
        reader.fail("client.value", "required, a non-empty string")
    if not _is_text(ident):
        reader.fail("client.value", _NOT_TEXT)
    system = value.get("system")
    if system is not None and (not isinstance(system, str) or not system.strip()):
        reader.fail("client.system", "must be a non-empty string or null")
    if system is not None and not _is_text(system):
        reader.fail("client.system", _NOT_TEXT)
    return ClientRef(system=system, value=ident)


def _default_expiry(reader: _Reader, signed_on: date, policy: ConsentPolicy) -> date:
    """``signed_on`` plus the default term; a term that ends past 9999-12-31 is refused."""
    try:
        return signed_on + timedelta(days=policy.default_term_days)
    except OverflowError:
        reader.fail(
            "signed_on",
            f"impossible date {_show(signed_on.isoformat())}: its default term of "
            f"{policy.default_term_days} days ends after 9999-12-31",
        )


def parse_consent(
    data: Mapping[str, object],
    *,
    agencies: Mapping[str, Agency],
    policy: ConsentPolicy,
    index: int = 0,
    known_agencies: bool = True,
) -> ConsentRecord:
    """Validate one consent record (a decoded JSON object) against the known agencies.

    Missing fields take the CONSENT.md defaults; a null or missing ``expires_on`` becomes
    ``signed_on + policy.default_term_days``. With ``known_agencies=False`` the agencies it
    names need not be configured: a stored consent, checked when it was imported, still
    stands after an agency it names has left the network (it recorded the consent, or
    the client excluded it).
    """
    if not isinstance(data, Mapping):
        raise ConsentValidationError(index, None, "<record>", "must be a JSON object")
    raw_id = data.get("id")
    record_id = raw_id if isinstance(raw_id, str) and raw_id.strip() else None
    if record_id is not None and not _is_text(record_id):
        _Reader(data, index, None).fail("id", _NOT_TEXT)
    r = _Reader(data, index, record_id)
    for key in data:
        if key not in _FIELDS:
            r.fail(key, "unknown field")
    for key in getattr(data, "duplicate_keys", ()):
        r.fail(key, "given more than once")
    if record_id is None:
        r.fail("id", "required, a non-empty string")
    client = _client(r)
    signed_on = r.required_day("signed_on")
    expires_on = r.day("expires_on")
    if expires_on is None:
        expires_on = _default_expiry(r, signed_on, policy)
    elif expires_on < signed_on:
        r.fail("expires_on", "before signed_on")
    revoked_on = r.day("revoked_on")
    if revoked_on is not None and revoked_on < signed_on:
        r.fail("revoked_on", "before signed_on")
    method = r.choice("method", "written", METHODS)
    given_by = r.choice("given_by", "client", GIVEN_BY)
    networks = r.names("networks", "network", DEFAULT_NETWORKS, _NETWORKS)
    known = agencies if known_agencies else None
    exclude = r.names("exclude_agencies", "agency", frozenset(), known)
    sensitive = r.names("sensitive", "sensitive category", frozenset(), SENSITIVE_CATEGORIES)
    part2 = r.names("part2_recipients", "agency", frozenset(), known)
    purposes = r.names("purposes", "purpose", DEFAULT_PURPOSES, _PURPOSES)
    recorded_by = data.get("recorded_by")
    if recorded_by is None:
        recorded_by = ""
    elif not isinstance(recorded_by, str) or (known is not None and recorded_by not in known):
        r.fail("recorded_by", f"unknown agency {_show(recorded_by)}")
    return ConsentRecord(
        id=record_id,
        client=client,
        signed_on=signed_on,
        expires_on=expires_on,
        method=method,
        given_by=given_by,
        networks=networks,
        exclude_agencies=exclude,
        sensitive=sensitive,
        part2_recipients=part2,
        purposes=purposes,
        revoked_on=revoked_on,
        recorded_by=recorded_by,
    )


def _decoded(text: str) -> Iterator[tuple[int, object]]:
    """The records of a JSON array or of JSON Lines, with their 0-based indexes."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text, object_pairs_hook=_object_pairs)
        except json.JSONDecodeError as exc:
            raise ConsentValidationError(
                -1,
                None,
                "<file>",
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            ) from None
        except RecursionError:
            raise ConsentValidationError(-1, None, "<file>", f"invalid JSON: {_TOO_DEEP}") from None
        except ValueError:  # an integer past the interpreter's digit limit
            raise ConsentValidationError(-1, None, "<file>", f"invalid JSON: {_TOO_LONG}") from None
        yield from enumerate(items)
        return
    index = 0
    for lineno, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, object_pairs_hook=_object_pairs)
        except json.JSONDecodeError as exc:
            raise ConsentValidationError(
                index,
                None,
                "<json>",
                f"invalid JSON on line {lineno} column {exc.colno}: {exc.msg}",
            ) from None
        except RecursionError:
            raise ConsentValidationError(
                index, None, "<json>", f"invalid JSON on line {lineno}: {_TOO_DEEP}"
            ) from None
        except ValueError:  # an integer past the interpreter's digit limit
            raise ConsentValidationError(
                index, None, "<json>", f"invalid JSON on line {lineno}: {_TOO_LONG}"
            ) from None
        yield index, item
        index += 1


def parse_consent_file(
    text: str, *, agencies: Mapping[str, Agency], policy: ConsentPolicy
) -> list[ConsentRecord]:
    """Validate a whole file (JSON array or JSON Lines); all-or-nothing.

    The first bad record raises ``ConsentValidationError``; ids must be unique in the file.
    """
    records: list[ConsentRecord] = []
    first_index: dict[str, int] = {}
    for index, item in _decoded(text):
        if not isinstance(item, Mapping):
            raise ConsentValidationError(index, None, "<record>", "must be a JSON object")
        record = parse_consent(item, agencies=agencies, policy=policy, index=index)
        earlier = first_index.setdefault(record.id, index)
        if earlier != index:
            raise ConsentValidationError(
                index, record.id, "id", f"duplicate id (also record {earlier})"
            )
        records.append(record)
    return records
