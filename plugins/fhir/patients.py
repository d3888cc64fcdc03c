"""Patients: the person view a calling partner may see, and finding persons.

A Patient's id is the hub's person id. Its content is built from the Client records the
consent gate releases to the caller (:meth:`Viewer.released_clients`), merged over sources.
A person with nothing released is "not found", exactly like an id that does not exist.

Search: ``identifier`` (``system|value``, ``|value`` or ``value``) and ``_id`` find persons
through the blind index; a ``name`` of two or more words (or ``family`` with ``given``)
through the blind name keys (first given name and family name of a record's first name);
anything else (one-word names, ``birthdate`` alone) by reading the Client records. A search
without criteria finds nothing (the hub does not list every person); ``_lastUpdated`` (the
newest change among the released records) only narrows a search with other criteria.
Candidates are then filtered on what the gate released to the caller, so a search can never
match on a field the caller may not see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import permutations
from typing import Any

import orjson

from hub.core.identity import identifier_key, identifier_value_key, normalise_name
from hub.plugin_api import SourceKey
from plugins.fhir.access import FHIR_ID, Viewer, reference_id
from plugins.fhir.mapping import client_to_patient, merge_client_payloads
from plugins.fhir.outcome import FhirError
from plugins.fhir.search import (
    Query,
    any_of,
    birthdate_matches,
    date_matches,
    fold,
    identifier_matches,
)
from plugins.fhir.systems import canonical_system

PATIENT_PARAMS = ("identifier", "name", "family", "given", "birthdate")
_FILTERS = ("identifier", "_lastUpdated")
"""Criteria a scan of the stored Client records cannot test (matched on the released view)."""


async def patient_view(viewer: Viewer, person_id: str) -> dict[str, Any] | None:
    """The Patient the caller may see for a person, or None (nothing released)."""
    released = await viewer.released_clients(person_id)
    if not released:
        return None
    merged = merge_client_payloads([payload for _rec, payload in released])
    patient = client_to_patient(merged, patient_id=person_id)
    newest = max(rec.meta.provenance.received_at for rec, _ in released)
    patient["meta"] = {
        "lastUpdated": newest.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    }
    return patient


def identifier_keys(blind: Any, value: str) -> list[str]:
    """Blind keys for an identifier token (a system in FHIR or canonical form)."""
    system, sep, code = value.partition("|")
    if not sep:
        return [blind(identifier_value_key(value))]
    if not system:
        return [blind(identifier_value_key(code))]
    systems = {system, canonical_system(system)}
    return [blind(identifier_key(s, code)) for s in sorted(systems)]


async def persons_with(ctx: Any, keys: list[str]) -> set[str]:
    """Persons carrying any of these blind keys."""
    if not keys:
        return set()
    async with ctx.store.transaction() as tx:
        found = await tx.persons_with_keys(keys)
    return set().union(*found.values()) if found else set()


async def known_persons_with(viewer: Viewer, keys: list[str]) -> set[str]:
    """:func:`persons_with`, answered from what this request read ahead when it holds every
    key (see :func:`read_ahead_identifiers`)."""
    known = viewer.key_persons
    if keys and known and all(k in known for k in keys):
        return set().union(*(known[k] for k in keys))
    return await persons_with(viewer.ctx, keys)


async def read_ahead_identifiers(viewer: Viewer, tokens: Iterable[str]) -> None:
    """Look up the persons of many identifier tokens (``system|value``) in one query, for
    the conditional creates of one Bundle; later identifier searches of this request read
    them from :attr:`Viewer.key_persons` instead of querying once per entry."""
    blind = viewer.ctx.keys.blind
    keys = list(dict.fromkeys(k for t in tokens for k in identifier_keys(blind, t)))
    if not keys:
        return
    async with viewer.ctx.store.transaction() as tx:
        found = await tx.persons_with_keys(keys)
    for key in keys:
        viewer.key_persons[key] = found.get(key, set())


def _name_keys(blind: Any, words: list[str]) -> list[str]:
    """Blind name keys (first given + family, in either order of the words)."""
    keys: list[str] = []
    for given, family in permutations(words, 2):
        name = normalise_name(family, [given])
        if name:
            keys.append(blind(f"n:{name}"))
    return keys


async def _scan(ctx: Any, query: Query) -> set[str]:
    """Persons whose Client records match the name/birthdate criteria (read in batches)."""
    found: set[str] = set()
    async for rows in ctx.store.iter_records("client"):
        for row in rows:
            if row.deleted or row.person_id is None or row.person_id in found:
                continue
            payload = orjson.loads(row.payload)
            patient = client_to_patient(payload)
            if patient_matches(patient, query, ignore=_FILTERS):
                found.add(row.person_id)
    return found


async def candidate_persons(viewer: Viewer, query: Query) -> set[str]:
    """Persons that may match a Patient search (a superset; filter with
    :func:`patient_matches` on what the caller may see)."""
    blind = viewer.ctx.keys.blind
    sets: list[set[str]] = []
    for value in query.values("_id"):
        sets.append({v for v in value.split(",") if FHIR_ID.fullmatch(v)})
    for value in query.values("identifier"):
        keys = [k for part in value.split(",") for k in identifier_keys(blind, part)]
        sets.append(await known_persons_with(viewer, keys))
    if sets:
        return set.intersection(*sets)
    names = query.values("name")
    words = [w for v in names for w in v.replace(",", " ").split()]
    if not words:
        words = [w for n in ("family", "given") for v in query.values(n) for w in v.split()]
    if len(words) >= 2:
        return await persons_with(viewer.ctx, _name_keys(blind, words))
    if any(name != "_lastUpdated" for name, _value in query.criteria):
        return await _scan(viewer.ctx, query)
    return set()


def _name_parts(name: Mapping[str, Any]) -> list[str]:
    parts = [str(name.get("family", ""))]
    for element in ("given", "prefix", "suffix"):
        parts.extend(str(p) for p in name.get(element) or ())
    if name.get("text"):
        parts.extend(str(name["text"]).split())
    return [fold(p) for p in parts if p]


def _name_matches(names: Iterable[Mapping[str, Any]], value: str, element: str | None) -> bool:
    words = [fold(w) for w in value.split()]
    for name in names:
        if element == "family":
            parts = [fold(str(name.get("family", "")))]
        elif element == "given":
            parts = [fold(str(g)) for g in name.get("given") or ()]
        else:
            parts = _name_parts(name)
        if words and all(any(p.startswith(w) for p in parts) for w in words):
            return True
    return False


def patient_matches(patient: Mapping[str, Any], query: Query, ignore: Iterable[str] = ()) -> bool:
    """Whether a Patient meets every criterion of a Patient search."""
    skip = set(ignore)
    names = [n for n in patient.get("name") or () if isinstance(n, Mapping)]
    for param, value in query.criteria:
        if param in skip:
            continue
        if param == "_id":
            ok = any_of(value, lambda v: v == patient.get("id"))
        elif param == "identifier":
            ok = any_of(value, lambda v: identifier_matches(patient.get("identifier"), v))
        elif param in ("name", "family", "given"):
            element = None if param == "name" else param
            ok = any_of(value, lambda v, e=element: _name_matches(names, v, e))  # type: ignore[misc]
        elif param == "birthdate":
            ok = birthdate_matches(patient.get("birthDate"), value)
        elif param == "_lastUpdated":
            meta = patient.get("meta")
            stamp = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
            ok = date_matches(str(stamp) if stamp else None, value, param)
        else:
            ok = True
        if not ok:
            return False
    return True


async def search_patients(viewer: Viewer, query: Query) -> list[dict[str, Any]]:
    """The Patients the caller may see that match a search, ordered by id."""
    out: list[dict[str, Any]] = []
    for person in sorted(await candidate_persons(viewer, query)):
        patient = await patient_view(viewer, person)
        if patient is not None and patient_matches(patient, query):
            out.append(patient)
    return out


async def resolve_patient(
    viewer: Viewer, ref: Any, where: str, purpose: str
) -> tuple[str, SourceKey]:
    """(person id, client record key) a Patient reference names, if the caller may see it.

    A literal ``Patient/<id>`` or a logical reference by identifier; anything else — or a
    person the gate releases nothing of — is an unknown reference (422).
    """
    person = reference_id(ref, "Patient")
    if person is None and isinstance(ref, Mapping) and isinstance(ref.get("identifier"), Mapping):
        ident = ref["identifier"]
        value = str(ident.get("value", ""))
        system = str(ident.get("system", ""))
        token = f"{system}|{value}" if system else value
        persons = await persons_with(viewer.ctx, identifier_keys(viewer.ctx.keys.blind, token))
        visible = [p for p in sorted(persons) if await viewer.sees_person(p, purpose)]
        if len(visible) == 1:
            person = visible[0]
    if person is not None:
        released = await viewer.released_clients(person, purpose)
        if released:
            return person, viewer.choose_client(released)
    raise FhirError.of(422, "not-found", f"{where}: unknown reference", where)
