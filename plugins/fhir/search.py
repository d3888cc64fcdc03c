"""Search parameters, their matching, and searchset Bundles with paging.

Supported per type (see :data:`SEARCH_PARAMS`); every type also takes ``_id``,
``_lastUpdated`` (prefixes eq, ne, gt, lt, ge, le, sa, eb), ``_count`` (page size),
``_offset`` (where the page starts) and ``_sort`` (``_lastUpdated`` or ``-_lastUpdated``;
default: oldest change first). A comma in a value
means OR; a repeated parameter means AND. Unknown parameters are ignored (and left out of
the ``self`` link) unless the request says ``Prefer: handling=strict``, then they are a 400.
A known parameter with a modifier (``name:exact``, ``status:not``) is always a 400: no
modifier is supported, and ignoring one would answer another question.

A search (not conditional criteria) also reads ``_include`` (one value each, checked
against the searched type by :mod:`plugins.fhir.reads`); ``_revinclude`` and modifiers of
``_include`` (``:iterate``) are always a 400, whatever ``Prefer: handling`` says.

Paging links name a position, not a count: ``next`` asks for what follows the sort key of
the page's last entry (``_after``), ``previous`` for what precedes its first (``_before``).
So a record created, changed or no longer visible between two pages neither hides another
record nor repeats one (in the default order a record changed meanwhile comes again, at its
new place; ``-_lastUpdated`` skips changes made after the first page, as a new poll finds
them). Links keep the criteria, ``_count``, ``_sort`` and ``_purpose`` of the request.
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
    {
        "_count",
        "_offset",
        "_after",
        "_before",
        "_sort",
        "_format",
        "_pretty",
        "_totalMethod",
        "_purpose",
    }
)
DATE_PARAMS = frozenset({"_lastUpdated", "birthdate"})
"""Date parameters: their values are checked as the query is read."""
_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
_FHIR_DATETIME = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


Key = tuple[str, ...]
"""Where a result stands in the order of a search (compared as a tuple)."""

_KEY_SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed search: criteria (name → list of AND-ed values), paging and sort."""

    criteria: tuple[tuple[str, str], ...]
    count: int
    offset: int
    descending: bool
    after: Key | None = None
    """``_after``: the page starts after this sort key (a ``next`` link)."""
    before: Key | None = None
    """``_before``: the page ends before this sort key (a ``previous`` link)."""
    carried: tuple[tuple[str, str], ...] = ()
    """Parameters that do not filter but change the answer (``_purpose``): kept in links."""
    includes: tuple[str, ...] = ()
    """``_include`` values, in the order given: kept in links."""

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
    includes: bool = False,
) -> Query:
    """Check and split the query parameters of a search (``includes``: read ``_include``
    and refuse ``_revinclude``; else both are unknown parameters, as in conditional
    criteria)."""
    allowed_set = set(allowed) | {"_id", "_lastUpdated"}
    criteria: list[tuple[str, str]] = []
    carried: list[tuple[str, str]] = []
    included: list[str] = []
    count, offset, descending = default_count, 0, False
    after: Key | None = None
    before: Key | None = None
    for name, value in params:
        base = name.split(":", 1)[0]
        if includes and base in ("_include", "_revinclude"):
            included.append(_include_value(name, value))
        elif name == "_count":
            count = _int(value, "_count", 0, max_count)
        elif name == "_offset":
            offset = _int(value, "_offset", 0, 10**9)
        elif name == "_after":
            after = tuple(value.split(_KEY_SEPARATOR))
        elif name == "_before":
            before = tuple(value.split(_KEY_SEPARATOR))
        elif name == "_purpose":
            carried = [(name, value)]
        elif name == "_sort":
            if value not in ("_lastUpdated", "-_lastUpdated"):
                raise FhirError.of(400, "not-supported", "_sort: only _lastUpdated is supported")
            descending = value.startswith("-")
        elif name in RESULT_PARAMS:
            continue
        elif base in allowed_set and name == base:
            if not value:
                raise FhirError.of(400, "invalid", f"{name}: empty value")
            if name in DATE_PARAMS:
                for part in value.split(","):
                    date_matches(None, part, name)  # a bad date is a 400 whatever is stored
            criteria.append((name, value))
        elif base in allowed_set:
            # Ignoring it would widen the search (``status:not=completed`` finding completed
            # Tasks): an unsupported modifier is always refused.
            raise FhirError.of(400, "not-supported", f"{base}: modifiers are not supported")
        elif strict:
            raise FhirError.of(400, "not-supported", f"search parameter {name!r} is not supported")
    return Query(
        tuple(criteria), count, offset, descending, after, before, tuple(carried), tuple(included)
    )


def _include_value(name: str, value: str) -> str:
    """An ``_include`` value as given (a 400 for ``_revinclude`` or a modifier)."""
    if name.startswith("_revinclude"):
        raise FhirError.of(400, "not-supported", "_revinclude: not supported")
    if name != "_include":
        raise FhirError.of(
            400, "not-supported", "_include: modifiers (such as :iterate) are not supported"
        )
    if not value:
        raise FhirError.of(400, "invalid", "_include: empty value")
    return value


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

PERSON_PARAMS: dict[str, tuple[str, ...]] = {
    "Task": ("patient", "subject"),
    "ServiceRequest": ("patient", "subject"),
    "Procedure": ("patient", "subject"),
    "Consent": ("patient",),
}
"""The parameters of each stored type that name its patient (matched on the person the
resource is about now, not on the stored reference)."""


RefsOf = Callable[[Mapping[str, Any]], Any]


def _element(name: str) -> RefsOf:
    return lambda resource: resource.get(name)


def _task_outputs(resource: Mapping[str, Any]) -> list[Any]:
    return [o.get("valueReference") for o in resource.get("output") or () if isinstance(o, Mapping)]


INCLUDES: dict[str, dict[str, tuple[str, RefsOf]]] = {
    "Task": {
        "patient": ("Patient", _element("for")),
        "subject": ("Patient", _element("for")),
        "focus": ("ServiceRequest", _element("focus")),
        "owner": ("Organization", _element("owner")),
        "requester": ("Organization", _element("requester")),
        "output": ("Procedure", _task_outputs),
    },
    "ServiceRequest": {
        "patient": ("Patient", _element("subject")),
        "subject": ("Patient", _element("subject")),
        "requester": ("Organization", _element("requester")),
        "performer": ("Organization", _element("performer")),
        "owner": ("Organization", _element("performer")),
    },
    "Procedure": {
        "patient": ("Patient", _element("subject")),
        "subject": ("Patient", _element("subject")),
        "based-on": ("ServiceRequest", _element("basedOn")),
    },
    "Consent": {
        "patient": ("Patient", _element("patient")),
        "organization": ("Organization", _element("organization")),
    },
}
"""``_include`` per searched type: search parameter → (target type, the References it
follows in a resource as the API renders it — patient references name the current person)."""


def include_names(resource_type: str) -> list[str]:
    """The ``_include`` values a search of this type takes (``Type:param``)."""
    return [f"{resource_type}:{name}" for name in sorted(INCLUDES.get(resource_type, {}))]


def stored_params(resource_type: str) -> set[str]:
    """Every search parameter of a stored type."""
    return {*SEARCH_PARAMS[resource_type], *PERSON_PARAMS[resource_type]}


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
        "subject": ("reference", "Task.for (Patient)"),
    },
    "ServiceRequest": {
        "identifier": ("token", "ServiceRequest.identifier"),
        "status": ("token", "ServiceRequest.status"),
        "requester": ("reference", "ServiceRequest.requester"),
        "performer": ("reference", "ServiceRequest.performer"),
        "owner": ("reference", "ServiceRequest.performer (alias of performer)"),
        "intent": ("token", "ServiceRequest.intent"),
        "patient": ("reference", "ServiceRequest.subject (Patient)"),
        "subject": ("reference", "ServiceRequest.subject (Patient)"),
    },
    "Procedure": {
        "identifier": ("token", "Procedure.identifier"),
        "status": ("token", "Procedure.status"),
        "based-on": ("reference", "Procedure.basedOn (ServiceRequest)"),
        "patient": ("reference", "Procedure.subject (Patient)"),
        "subject": ("reference", "Procedure.subject (Patient)"),
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
        if name in PERSON_PARAMS[resource_type]:
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
    """The person ids each ``patient`` (or ``subject``) criterion allows (one set per
    occurrence)."""
    return [
        {part.rstrip("/").split("/")[-1] for part in value.split(",")}
        for name, value in query.criteria
        if name in ("patient", "subject")
    ]


# ---- searchset Bundles ----------------------------------------------------------------------


def page_bounds(keys: Sequence[Key], query: Query, descending: bool) -> tuple[int, int]:
    """``[start, end)`` of the page among results whose sort keys are ``keys`` (in the order
    of the search: ascending, or descending when ``descending``)."""

    def precedes(a: Key, b: Key) -> bool:
        return a > b if descending else a < b

    if query.after is not None:
        after = query.after
        start = next((i for i, k in enumerate(keys) if precedes(after, k)), len(keys))
    elif query.before is not None:
        before = query.before
        stop = next((i for i, k in enumerate(keys) if not precedes(k, before)), len(keys))
        return max(stop - query.count, 0), stop
    else:
        start = min(query.offset, len(keys))
    return start, min(start + query.count, len(keys))


def searchset(
    base_url: str,
    resource_type: str,
    resources: Sequence[Mapping[str, Any]],
    query: Query,
    *,
    key: Callable[[Mapping[str, Any]], Key] | None = None,
    descending: bool | None = None,
) -> dict[str, Any]:
    """One page of a searchset Bundle with ``total`` and ``self``/``next``/``previous`` links.

    ``resources`` are every match, ordered by ``key`` (default :func:`sort_key`), descending
    when ``descending`` (default: as the query asks).
    """
    key_of = key or sort_key
    down = query.descending if descending is None else descending
    keys = [key_of(r) for r in resources]
    start, end = page_bounds(keys, query, down)
    page = resources[start:end]

    def link(position: tuple[str, str] | None) -> str:
        """The URL of the page at ``position`` (a paging parameter), else the first."""
        params = [*query.criteria, ("_count", str(query.count)), *query.carried]
        params.extend(("_include", value) for value in query.includes)
        if query.descending:
            params.append(("_sort", "-_lastUpdated"))
        if position is not None:
            params.append(position)
        return f"{base_url}/{resource_type}?{urlencode(params)}"

    here: tuple[str, str] | None = None
    if query.after is not None:
        here = ("_after", _KEY_SEPARATOR.join(query.after))
    elif query.before is not None:
        here = ("_before", _KEY_SEPARATOR.join(query.before))
    elif query.offset:
        here = ("_offset", str(query.offset))
    links = [{"relation": "self", "url": link(here)}]
    if page and end < len(resources):
        links.append(
            {"relation": "next", "url": link(("_after", _KEY_SEPARATOR.join(keys[end - 1])))}
        )
    if start > 0:
        previous = (
            ("_before", _KEY_SEPARATOR.join(keys[start]))
            if page
            else ("_offset", str(max(start - query.count, 0)))
        )
        links.append({"relation": "previous", "url": link(previous)})
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


def id_key(resource: Mapping[str, Any]) -> Key:
    """By id (Patients, Organizations)."""
    return (str(resource.get("id", "")),)


def sort_key(resource: Mapping[str, Any]) -> Key:
    """Oldest change first, then id."""
    meta = resource.get("meta")
    stamp = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    return (str(stamp or ""), str(resource.get("id", "")))


def birthdate_matches(birth_date: str | None, value: str) -> bool:
    """A ``birthdate`` search value against a Patient.birthDate."""
    return any_of(value, lambda v: date_matches(birth_date, v, "birthdate"))
