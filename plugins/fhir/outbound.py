"""Rendering permitted records as transaction Bundle entries for a partner's FHIR server.

Each record becomes conditional updates keyed on the hub's opaque record identifier
(``urn:cie-hub:record|<token>``), so a re-delivery updates instead of duplicating and the
partner never sees a source id in clear. References between records use the same logical
identifiers. Plain dicts only (serialise with orjson): no pydantic on this path.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from hub.plugin_api import Record, SourceKey
from plugins.fhir import codes
from plugins.fhir.access import PATIENT_ELEMENT, reference_id
from plugins.fhir.mapping import client_to_patient, encounter_to_fhir, referral_to_fhir
from plugins.fhir.repo import STORED_TYPES, record_token

Entry = dict[str, Any]


class NotRenderable(ValueError):
    """A record the FHIR push cannot express (its kind, or nothing left after redaction)."""


def _ident(token: str) -> dict[str, str]:
    return {"system": codes.RECORD_SYSTEM, "value": token}


def _entry(resource: dict[str, Any], token: str, full_url: str | None = None) -> Entry:
    rtype = resource["resourceType"]
    resource.setdefault("identifier", []).append(_ident(token))
    return {
        "fullUrl": full_url or f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {
            "method": "PUT",
            "url": f"{rtype}?identifier={quote(codes.RECORD_SYSTEM, safe='')}|{token}",
        },
    }


def _patient_ref(client: Any) -> dict[str, Any] | None:
    if not isinstance(client, SourceKey):
        return None
    return {"identifier": _ident(record_token(client))}


def _logical(value: Any) -> Any:
    """Literal references to hub resources become logical (identifier) references."""
    if isinstance(value, list):
        return [_logical(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _logical(v) for k, v in value.items()}
    literal = out.get("reference")
    if isinstance(literal, str):
        kind, _, rid = literal.rpartition("/")
        if kind in STORED_TYPES and reference_id(out, kind) == rid:
            out.pop("reference")
            out["identifier"] = _ident(record_token(SourceKey("fhir", rid), f"fhir.{kind}"))
        elif kind == "Organization" and rid:
            out.pop("reference")
            out["identifier"] = {"system": codes.AGENCY_SYSTEM, "value": rid}
    return out


def render_record(record: Record, payload: Mapping[str, Any]) -> list[Entry]:
    """Transaction entries for one permitted record (``payload`` = what the gate released)."""
    kind = record.meta.kind
    key = record.meta.key
    client = getattr(record, "client", None)
    if kind == "client":
        patient = client_to_patient(payload)
        return [_entry(patient, record_token(key))]
    if kind == "encounter":
        encounter = encounter_to_fhir(payload)
        ref = _patient_ref(client)
        if ref is not None:
            encounter["subject"] = ref
        return [_entry(encounter, record_token(key, kind))]
    if kind == "referral":
        sr_url = f"urn:uuid:{uuid.uuid4()}"
        sr, task = referral_to_fhir(payload, service_request_id="sr", task_id="task")
        for resource in (sr, task):
            resource.pop("id", None)
        ref = _patient_ref(client)
        if ref is not None:
            sr["subject"] = ref
            task["for"] = dict(ref)
        task["focus"] = {"reference": sr_url}
        token = record_token(key, kind)
        return [_entry(_logical(sr), f"{token}-sr", sr_url), _entry(_logical(task), token)]
    if kind.startswith("fhir.") and kind[5:] in STORED_TYPES:
        fields = payload.get("fields")
        text = payload.get("resource") or (
            fields.get("resource") if isinstance(fields, Mapping) else None
        )
        if not text:
            raise NotRenderable(f"record {kind}/{key}: nothing released to send")
        resource = orjson.loads(text)
        for name in ("id", "meta", "text"):
            resource.pop(name, None)
        element = PATIENT_ELEMENT.get(kind[5:])
        ref = _patient_ref(client)
        if element is not None and ref is not None:
            resource[element] = ref
        resource = _logical(resource)
        resource["identifier"] = [
            i for i in resource.get("identifier") or () if i.get("system") != codes.RECORD_SYSTEM
        ]
        return [_entry(resource, record_token(key, kind))]
    raise NotRenderable(f"records of kind {kind} have no FHIR form")
