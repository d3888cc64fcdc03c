"""Search parameters, their matching, and searchset Bundles with paging.

Supported per type (see :data:`SEARCH_PARAMS`); every type also takes ``_id``,
``_lastUpdated`` (prefixes eq, ne, gt, lt, ge, le, sa, eb), ``_count`` (page size),
``_offset`` (where the page starts; the hub writes it into ``next`` links) and ``_sort``
(``_lastUpdated`` or ``-_lastUpdated``; default: oldest change first). A comma in a value
means OR; a repeated parameter means AND. Unknown parameters are ignored (and left out of
the ``self`` link) unless the request says ``Prefer: handling=strict``, then they are a 400.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from hub.core.numbers import whole_number
from plugins.fhir.access import references
from plugins.fhir.outcome import FhirError
from plugins.fhir.systems import canonical_system

RESULT_PARAMS = frozenset(
    {"_count", "_offset", "_sort", "_format", "_pretty", "_totalMethod", "_purpose"}
)
_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
_FHIR_DATETIME = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed search: criteria (name → list of AND-ed values), paging and sort."""

    criteria: tuple[tuple[str, str], ...]
    count: int
    offset: int
    descending: bool

    def values(self, name: str) -> list[str]:
        """Every value given for a parameter (one per occurrence)."""
        return [v for n, v in self.criteria if n == name]


def parse_query(
    params: Iterable[tuple[str, str]],
    allowed: Iterable[str],
    *,
    default_count: int,
    max_count: int,
    strict: bool,
) -> Query:
    """Check and split the query parameters of a search."""
    allowed_set = set(allowed) | {"_id", "_lastUpdated"}
    criteria: list[tuple[str, str]] = []
    count, offset, descending = default_count, 0, False
    for name, value in params:
        base = name.split(":", 1)[0]
        if name == "_count":
            count = _int(value, "_count", 0, max_count)
        elif name == "_offset":
            offset = _int(value, "_offset", 0, 10**9)
        elif name == "_sort":
            if value not in ("_lastUpdated", "-_lastUpdated"):
                raise FhirError.of(400, "not-supported", "_sort: only _lastUpdated is supported")
            descending = value.startswith("-")
        elif name in RESULT_PARAMS:
            continue
        elif base in allowed_set and name == base:
            if not value:
                raise FhirError.of(400, "invalid", f"{name}: empty value")
            criteria.append((name, value))
        elif strict:
            raise FhirError.of(400, "not-supported", f"search parameter {name!r} is not supported")
    return Query(tuple(criteria), count, offset, descending)


def _int(value: str, name: str, low: int, high: int) -> int:
    number = whole_number(value)
    if number is None:
        raise FhirError.of(400, "invalid", f"{name}: expected a whole number")
    return min(max(number, low), high)


# ---- value matching ------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case without accents, for string search."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def token(value: str) -> tuple[str | None, str]:
    """(system or None, code) of a token search value (``system|code``, ``|code``, ``code``)."""
    system, sep, code = value.partition("|")
    if not sep:
        return None, value
    return system, code


def identifier_matches(identifiers: Any, value: str) -> bool:
    """Whether any Identifier matches a token (system compared in FHIR and canonical form)."""
    system, code = token(value)
    for ident in identifiers or ():
        if not isinstance(ident, Mapping) or ident.get("value") != code:
            continue
        if system is None:
            return True
        got = str(ident.get("system") or "")
        if got == system or canonical_system(got) == canonical_system(system):
            return True
    return False


def reference_matches(ref: Any, value: str, resource_type: str) -> bool:
    """Whether a Reference (or list of them) points at ``value`` (``Type/id``, id or URL)."""
    wanted = value.rstrip("/").split("/")[-1]
    return wanted in references(ref, resource_type)


def _span(value: str, name: str) -> tuple[datetime, datetime]:
    match = _FHIR_DATETIME.fullmatch(value)
    if match is None:
        raise FhirError.of(400, "invalid", f"{name}: not a FHIR date or dateTime")
    try:
        year = int(match["y"])
        if match["m"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            return start, start.replace(year=year + 1)
        month = int(match["m"])
        if match["d"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            return start, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        if match["time"] is None:
            start = datetime(year, month, int(match["d"]), tzinfo=UTC)
            return start, start + timedelta(days=1)
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError.of(400, "invalid", f"{name}: impossible date") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    precision = timedelta(seconds=1) if match["time"].count(":") == 2 else timedelta(minutes=1)
    if "." in match["time"]:
        precision = timedelta(microseconds=1)
    return at, at + precision


def date_matches(target: str | None, value: str, name: str) -> bool:
    """Whether a date/dateTime/instant target satisfies a prefixed date search value."""
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    searched = value[2:] if value[:2] in _DATE_PREFIXES else value
    low, high = _span(searched, name)
    if not target:
        return False
    try:
        t_low, t_high = _span(target, name)
    except FhirError:
        return False
    if prefix == "eq":
        return low <= t_low and t_high <= high
    if prefix == "ne":
        return not (low <= t_low and t_high <= high)
    if prefix in ("gt", "sa"):
        return t_high > high if prefix == "gt" else t_low >= high
    if prefix in ("lt", "eb"):
        return t_low < low if prefix == "lt" else t_high <= low
    if prefix == "ge":
        return t_high > low
    return t_low < high  # le


def any_of(value: str, test: Callable[[str], bool]) -> bool:
    """A comma-separated search value: OR over its parts."""
    return any(test(part) for part in value.split(","))


# ---- per-type parameters ------------------------------------------------------------------

Matcher = Callable[[Mapping[str, Any], str], bool]


def _ref(element: str, resource_type: str) -> Matcher:
    return lambda r, v: reference_matches(r.get(element), v, resource_type)


def _code(element: str) -> Matcher:
    return lambda r, v: r.get(element) == v


def _task_output(r: Mapping[str, Any], v: str) -> bool:
    refs = [o.get("valueReference") for o in r.get("output") or () if isinstance(o, Mapping)]
    return reference_matches(refs, v, "Procedure")


_COMMON: dict[str, Matcher] = {
    "identifier": lambda r, v: identifier_matches(r.get("identifier"), v),
}

SEARCH_PARAMS: dict[str, dict[str, Matcher]] = {
    "Task": {
        **_COMMON,
        "status": _code("status"),
        "owner": _ref("owner", "Organization"),
        "requester": _ref("requester", "Organization"),
        "focus": _ref("focus", "ServiceRequest"),
        "output": _task_output,
        "intent": _code("intent"),
    },
    "ServiceRequest": {
        **_COMMON,
        "status": _code("status"),
        "requester": _ref("requester", "Organization"),
        "performer": _ref("performer", "Organization"),
        "owner": _ref("performer", "Organization"),
        "intent": _code("intent"),
    },
    "Procedure": {
        **_COMMON,
        "status": _code("status"),
        "based-on": _ref("basedOn", "ServiceRequest"),
    },
    "Consent": {
        **_COMMON,
        "status": _code("status"),
        "organization": _ref("organization", "Organization"),
    },
}
"""Parameters on stored resources (``patient`` is matched on the person, see the API)."""

PARAM_DOCS: dict[str, dict[str, tuple[str, str]]] = {
    "Task": {
        "identifier": ("token", "Task.identifier"),
        "status": ("token", "Task.status"),
        "owner": ("reference", "Task.owner (Organization/<agency id>)"),
        "requester": ("reference", "Task.requester (Organization/<agency id>)"),
        "focus": ("reference", "Task.focus (ServiceRequest)"),
        "output": ("reference", "Task.output.valueReference (Procedure)"),
        "intent": ("token", "Task.intent"),
        "patient": ("reference", "Task.for (Patient)"),
    },
    "ServiceRequest": {
        "identifier": ("token", "ServiceRequest.identifier"),
        "status": ("token", "ServiceRequest.status"),
        "requester": ("reference", "ServiceRequest.requester"),
        "performer": ("reference", "ServiceRequest.performer"),
        "owner": ("reference", "ServiceRequest.performer (alias of performer)"),
        "intent": ("token", "ServiceRequest.intent"),
        "patient": ("reference", "ServiceRequest.subject (Patient)"),
    },
    "Procedure": {
        "identifier": ("token", "Procedure.identifier"),
        "status": ("token", "Procedure.status"),
        "based-on": ("reference", "Procedure.basedOn (ServiceRequest)"),
        "patient": ("reference", "Procedure.subject (Patient)"),
    },
    "Consent": {
        "identifier": ("token", "Consent.identifier"),
        "status": ("token", "Consent.status"),
        "organization": ("reference", "Consent.organization"),
        "patient": ("reference", "Consent.patient (Patient)"),
    },
}


def resource_matches(resource: Mapping[str, Any], resource_type: str, query: Query) -> bool:
    """Whether a stored resource meets every criterion but ``patient`` (AND over params)."""
    matchers = SEARCH_PARAMS[resource_type]
    for name, value in query.criteria:
        if name == "patient":
            continue
        if name == "_id":
            if not any_of(value, lambda v: v == resource.get("id")):
                return False
            continue
        if name == "_lastUpdated":
            meta = resource.get("meta")
            stamp = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
            if not date_matches(str(stamp) if stamp else None, value, name):
                return False
            continue
        matcher = matchers[name]
        if not any_of(value, lambda v, m=matcher: m(resource, v)):  # type: ignore[misc]
            return False
    return True


def patient_ids(query: Query) -> list[set[str]]:
    """The person ids each ``patient`` criterion allows (one set per occurrence)."""
    return [
        {part.rstrip("/").split("/")[-1] for part in value.split(",")}
        for value in query.values("patient")
    ]


# ---- searchset Bundles ----------------------------------------------------------------------


def searchset(
    base_url: str,
    resource_type: str,
    resources: Sequence[Mapping[str, Any]],
    query: Query,
) -> dict[str, Any]:
    """One page of a searchset Bundle with ``total`` and ``self``/``next``/``previous`` links."""
    page = resources[query.offset : query.offset + query.count]

    def link(offset: int) -> str:
        """The URL of the page starting at ``offset``."""
        params = [*query.criteria, ("_count", str(query.count))]
        if query.descending:
            params.append(("_sort", "-_lastUpdated"))
        if offset:
            params.append(("_offset", str(offset)))
        return f"{base_url}/{resource_type}?{urlencode(params)}"

    links = [{"relation": "self", "url": link(query.offset)}]
    if query.count and query.offset + query.count < len(resources):
        links.append({"relation": "next", "url": link(query.offset + query.count)})
    if query.offset > 0:
        links.append({"relation": "previous", "url": link(max(query.offset - query.count, 0))})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base_url}/{r.get('resourceType', resource_type)}/{r.get('id')}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in page
        ],
    }


def sort_key(resource: Mapping[str, Any]) -> tuple[str, str]:
    """Oldest change first, then id."""
    meta = resource.get("meta")
    stamp = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    return (str(stamp or ""), str(resource.get("id", "")))


def birthdate_matches(birth_date: str | None, value: str) -> bool:
    """A ``birthdate`` search value against a Patient.birthDate."""
    return any_of(value, lambda v: date_matches(birth_date, v, "birthdate"))
