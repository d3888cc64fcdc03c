"""The FHIR R4 codec: Client, Encounter and Referral records to and from FHIR JSON.

Encoding writes one ``collection`` Bundle: a Patient per client, an Encounter per encounter,
a ServiceRequest and its Task per referral (Gravity style), with the mapping functions of
:mod:`plugins.fhir.mapping`. ``Resource.id`` is the record's id at its source, references
are ``Patient/<client id>``, ``meta.lastUpdated`` carries the record's version and
``meta.security`` its restrictions (v3 confidentiality ``R``; v3 act codes ``ETH``, ``HIV``,
``PSY`` and ``SDV`` for the sensitive categories).

Decoding reads such a Bundle (any type: its entries' resources), or one resource. A Task is
read together with the ServiceRequest it focuses; Patients, Encounters and ServiceRequests
become records keyed in the caller's ``source``; other resource types are left out. Nothing
is validated with fhir.resources here (plain dicts; the REST API validates at the boundary).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from hub.plugin_api import (
    CodecError,
    Provenance,
    Record,
    RecordMeta,
    SourceKey,
    payload_hash,
    record_from_payload,
    record_payload,
)
from plugins.fhir import codes
from plugins.fhir.canonical import client_record
from plugins.fhir.mapping import (
    client_to_patient,
    encounter_from_fhir,
    encounter_to_fhir,
    patient_to_client,
    referral_from_fhir,
    referral_to_fhir,
)

Json = dict[str, Any]

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SECURITY_CODES: dict[str, str] = {
    "substance_use": "ETH",
    "hiv": "HIV",
    "behavioral_health": "PSY",
    "dv": "SDV",
}
"""Sensitive consent category → v3 ActCode security label."""
CATEGORY_OF = {code: category for category, code in SECURITY_CODES.items()}
READ_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)
"""What the mapping functions raise on malformed (but parseable) JSON."""

_COMMON = frozenset({"key", "version", "restricted", "sensitivity"})


class FhirCodec:
    """Client, Encounter and Referral records as FHIR R4 JSON (codec ``fhir-r4``)."""

    name = "fhir-r4"
    kinds = frozenset({"client", "encounter", "referral"})
    carries: ClassVar[dict[str, frozenset[str]]] = {
        "client": _COMMON
        | {
            "identifiers",
            "names",
            "birth_date",
            "birth_date_precision",
            "ssn",
            "telecom",
            "addresses",
            "name_quality",
            "ssn_quality",
            "birth_date_quality",
            "sex",
            "gender",
            "race",
            "ethnicity",
            "veteran_status",
            "deceased",
        },
        "encounter": _COMMON
        | {
            "client",
            "event",
            "patient_class",
            "location",
            "visit_number",
            "admit_time",
            "discharge_time",
            "facility",
            "diagnoses",
        },
        "referral": _COMMON
        | {
            "client",
            "status",
            "priority",
            "requester",
            "performer",
            "service_codes",
            "reason",
            "diagnoses",
            "notes",
            "authored_on",
            "consent_ref",
            "outputs",
        },
    }

    # ---- encoding -----------------------------------------------------------------------

    def encode(self, records: Sequence[Record]) -> bytes:
        """A ``collection`` Bundle of the records' resources (see the module docstring).

        Raises :class:`CodecError` for a kind FHIR has no form for here, or a record id that
        is not a valid FHIR id.
        """
        entries: list[Json] = []
        for index, record in enumerate(records, start=1):
            for resource in self.resources(record, f"record {index}"):
                entries.append(
                    {
                        "fullUrl": f"{resource['resourceType']}/{resource['id']}",
                        "resource": resource,
                    }
                )
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        return orjson.dumps(bundle)

    def resources(self, record: Record, where: str) -> list[Json]:
        """The FHIR resources of one record."""
        rid = record.meta.key.id
        if not FHIR_ID.fullmatch(rid):
            raise CodecError("the record id is not a valid FHIR id", location=where)
        payload = record_payload(record)
        client = getattr(record, "client", None)
        patient = f"Patient/{client.id}" if isinstance(client, SourceKey) else None
        kind = record.meta.kind
        if kind == "client":
            resources = [client_to_patient(payload, patient_id=rid)]
        elif kind == "encounter":
            resources = [encounter_to_fhir(payload, encounter_id=rid, patient_ref=patient)]
        elif kind == "referral":
            sr, task = referral_to_fhir(
                payload, service_request_id=rid, task_id=f"{rid}-task", patient_ref=patient
            )
            resources = [sr, task]
        else:
            raise CodecError(f"records of kind {kind} have no FHIR form here", location=where)
        for resource in resources:
            _put_meta(resource, record.meta)
        return resources

    # ---- decoding -----------------------------------------------------------------------

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        """The records of a Bundle or of one resource (see the module docstring)."""
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise CodecError("not JSON", location="document") from None
        resources = _resources(document)
        tasks: dict[str, Mapping[str, Any]] = {}
        for _where, resource in resources:
            if resource.get("resourceType") == "Task":
                focus = resource.get("focus")
                ref = focus.get("reference") if isinstance(focus, Mapping) else None
                if isinstance(ref, str) and ref.startswith("ServiceRequest/"):
                    tasks[ref.removeprefix("ServiceRequest/")] = resource
        received = datetime.now(UTC)
        digest = payload_hash(data)
        records: list[Record] = []
        for where, resource in resources:
            rtype = resource.get("resourceType")
            if rtype not in ("Patient", "Encounter", "ServiceRequest"):
                continue
            try:
                records.append(
                    _record(resource, tasks, source=source, owner=owner, at=received, digest=digest)
                )
            except CodecError as exc:
                raise CodecError(exc.reason, location=f"{where} {exc.location}") from None
            except READ_ERRORS:
                raise CodecError(
                    f"this {rtype} cannot be read as a canonical record", location=where
                ) from None
        return records


def _put_meta(resource: Json, meta: RecordMeta) -> None:
    """``meta.lastUpdated`` from the version (when a date-time) and ``meta.security``."""
    out: Json = {}
    try:
        when = datetime.fromisoformat(meta.version)
    except ValueError:
        when = None
    if when is not None:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        out["lastUpdated"] = when.isoformat().replace("+00:00", "Z")
    security = [
        {"system": codes.V3_ACT_CODE, "code": SECURITY_CODES[c]}
        for c in sorted(meta.sensitivity)
        if c in SECURITY_CODES
    ]
    if meta.restricted:
        security.append({"system": V3_CONFIDENTIALITY, "code": "R"})
    if security:
        out["security"] = security
    if out:
        resource["meta"] = out


def _resources(document: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(location, resource) for each resource of a Bundle, or the one resource."""
    if not isinstance(document, Mapping):
        raise CodecError("expected a JSON object (a Bundle or a resource)", location="document")
    rtype = document.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise CodecError("resourceType is missing", location="resourceType")
    if rtype != "Bundle":
        return [(rtype, document)]
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        raise CodecError("expected a list of entries", location="Bundle.entry")
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            raise CodecError("the entry holds no resource", location=f"{where}.resource")
        kind = resource.get("resourceType")
        if not isinstance(kind, str) or not kind:
            raise CodecError("resourceType is missing", location=f"{where}.resource.resourceType")
        out.append((where, resource))
    return out


def _security(resource: Mapping[str, Any]) -> tuple[frozenset[str], bool]:
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, Mapping) else None
    sensitivity: set[str] = set()
    restricted = False
    for label in labels if isinstance(labels, list) else ():
        if not isinstance(label, Mapping):
            continue
        code = label.get("code")
        if label.get("system") == V3_CONFIDENTIALITY and code in ("R", "V"):
            restricted = True
        elif isinstance(code, str) and code in CATEGORY_OF:
            sensitivity.add(CATEGORY_OF[code])
    return frozenset(sensitivity), restricted


def _version(resource: Mapping[str, Any], received: datetime) -> str:
    meta = resource.get("meta")
    stamp = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    when = received
    if isinstance(stamp, str):
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            raise CodecError("not a FHIR instant", location="meta.lastUpdated") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat()


def _client_ref(resource: Mapping[str, Any], element: str, source: str) -> dict[str, str] | None:
    ref = resource.get(element)
    literal = ref.get("reference") if isinstance(ref, Mapping) else None
    if isinstance(literal, str) and literal.startswith("Patient/"):
        return {"source": source, "id": literal.removeprefix("Patient/")}
    return None


def _record(
    resource: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    source: str,
    owner: str,
    at: datetime,
    digest: str,
) -> Record:
    rtype = str(resource["resourceType"])
    rid = resource.get("id")
    if not isinstance(rid, str) or not FHIR_ID.fullmatch(rid):
        raise CodecError("the resource has no valid id", location="id")
    kind = {"Patient": "client", "Encounter": "encounter", "ServiceRequest": "referral"}[rtype]
    sensitivity, restricted = _security(resource)
    meta = RecordMeta(
        kind=kind,
        key=SourceKey(source, rid),
        owner=owner,
        provenance=Provenance("fhir-r4", at, digest),
        version=_version(resource, at),
        sensitivity=sensitivity,
        restricted=restricted,
    )
    if kind == "client":
        return client_record(meta, patient_to_client(resource))
    if kind == "encounter":
        payload = encounter_from_fhir(resource, client=_client_ref(resource, "subject", source))
    else:
        task = tasks.get(rid, {})
        payload = referral_from_fhir(
            resource, task, client=_client_ref(resource, "subject", source)
        )
    return record_from_payload(meta, payload)


CODECS = (FhirCodec,)
"""The codec classes of this plugin (for ``hub_codecs``)."""
