"""MPA consent records (``consent.ConsentRecord``) ↔ FHIR R4 Consent resources.

How an MPA consent is written as a Consent:

* ``status`` active (``inactive`` once revoked; the date in extension ``consent-revoked-on``),
  ``scope`` consentscope#patient-privacy, ``category`` LOINC 59284-0, ``policyRule`` OPTIN;
* ``patient`` a logical reference by the client's identifier (``Reference.identifier``);
* ``dateTime`` = ``signed_on``; ``provision.period`` = signed_on … expires_on;
* the root provision permits, its ``actor`` lists the trust networks (role IRCP, reference
  identifier ``urn:cie-hub:network|<network>``), its ``purpose`` the purposes
  (:data:`plugins.fhir.codes.PURPOSE_TO_CODE`: coordination→COC, treatment→TREAT,
  payment→HPAYMT, operations→HOPERAT, eligibility→ELIGDTRM, research→HRESCH,
  marketing→HMARKT, referral→``urn:cie-hub:purpose#referral``);
* nested deny provisions (exceptions): one whose ``actor`` lists the excluded agencies as
  ``Organization/<agency id>``, one whose ``securityLabel`` lists the sensitive categories
  *not* opted in (ETH substance_use, HIV hiv, PSY behavioral_health, SDV dv);
* ``organization`` = ``Organization/<recorded_by>``; ``method``, ``given_by`` and
  ``part2_recipients`` in the hub's extensions; the consent id in ``identifier``
  (``urn:cie-hub:consent``).

A consent that shares with no network, or for no purpose, is written as a plain deny
(policyRule OPTOUT, root provision type deny); its other settings have no effect and are not
written. Reading a partner's Consent accepts this shape and the usual LEAP shapes (a root
permit or OPTIN with deny exceptions for organisations or security labels; a plain deny or
OPTOUT). What the MPA cannot express — another scope, a draft, a root limited to
organisations, exceptions on data classes or codes, time-limited exceptions — raises
:class:`ConsentMappingError` naming the element; such a Consent can still be stored and
evaluated LEAP-style, but the gate cannot enforce it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from consent import Agency, ConsentPolicy, ConsentRecord, ConsentValidationError, parse_consent
from consent.categories import NETWORKS, PURPOSES, SENSITIVE_CATEGORIES
from plugins.fhir import codes
from plugins.fhir.systems import canonical_system, fhir_system

Json = dict[str, Any]

_IRCP = {"coding": [{"system": codes.V3_PARTICIPATION, "code": "IRCP"}]}
_PURPOSE_ORDER = {p: i for i, p in enumerate(PURPOSES)}


class ConsentMappingError(ValueError):
    """A FHIR Consent that the MPA cannot express; ``element`` names the FHIR element."""

    def __init__(self, element: str, problem: str) -> None:
        super().__init__(f"Consent.{element}: {problem}")
        self.element = element
        self.problem = problem


def _deny_all(record: ConsentRecord) -> bool:
    return not record.networks or not record.purposes


def consent_to_fhir(record: ConsentRecord) -> Json:
    """A FHIR R4 Consent (plain dict) for an MPA consent record."""
    out: Json = {"resourceType": "Consent"}
    extensions: list[Json] = [
        {"url": codes.EXT_CONSENT_METHOD, "valueCode": record.method},
        {"url": codes.EXT_CONSENT_GIVEN_BY, "valueCode": record.given_by},
    ]
    if record.revoked_on is not None:
        extensions.append(
            {"url": codes.EXT_CONSENT_REVOKED_ON, "valueDate": record.revoked_on.isoformat()}
        )
    extensions.extend(
        {"url": codes.EXT_PART2_RECIPIENT, "valueReference": {"reference": f"Organization/{a}"}}
        for a in sorted(record.part2_recipients)
    )
    out["extension"] = extensions
    out["identifier"] = [{"system": codes.CONSENT_ID_SYSTEM, "value": record.id}]
    out["status"] = "inactive" if record.revoked_on is not None else "active"
    out["scope"] = {"coding": [{"system": codes.CONSENT_SCOPE, "code": "patient-privacy"}]}
    out["category"] = [{"coding": [{"system": codes.LOINC, "code": "59284-0"}]}]
    ident: Json = {"value": record.client.value}
    if record.client.system:
        ident = {"system": fhir_system(record.client.system), "value": record.client.value}
    out["patient"] = {"identifier": ident}
    out["dateTime"] = record.signed_on.isoformat()
    if record.recorded_by:
        out["organization"] = [{"reference": f"Organization/{record.recorded_by}"}]
    period = {"start": record.signed_on.isoformat(), "end": record.expires_on.isoformat()}
    if _deny_all(record):
        out["policyRule"] = {"coding": [{"system": codes.V3_ACT_CODE, "code": "OPTOUT"}]}
        out["provision"] = {"type": "deny", "period": period}
        return out
    out["policyRule"] = {"coding": [{"system": codes.V3_ACT_CODE, "code": "OPTIN"}]}
    provision: Json = {"type": "permit", "period": period}
    provision["actor"] = [
        {
            "role": _IRCP,
            "reference": {
                "identifier": {"system": codes.NETWORK_SYSTEM, "value": n},
                "display": f"{n} network",
            },
        }
        for n in sorted(record.networks)
    ]
    provision["purpose"] = [
        {"system": codes.PURPOSE_TO_CODE[p][0], "code": codes.PURPOSE_TO_CODE[p][1]}
        for p in sorted(record.purposes, key=_PURPOSE_ORDER.__getitem__)
    ]
    exceptions: list[Json] = []
    if record.exclude_agencies:
        exceptions.append(
            {
                "type": "deny",
                "actor": [
                    {"role": _IRCP, "reference": {"reference": f"Organization/{a}"}}
                    for a in sorted(record.exclude_agencies)
                ],
            }
        )
    withheld = sorted(SENSITIVE_CATEGORIES - record.sensitive)
    if withheld:
        exceptions.append(
            {
                "type": "deny",
                "securityLabel": [
                    {"system": codes.V3_ACT_CODE, "code": codes.CATEGORY_TO_LABEL[c]}
                    for c in withheld
                ],
            }
        )
    if exceptions:
        provision["provision"] = exceptions
    out["provision"] = provision
    return out


# ---- reading -----------------------------------------------------------------------------


def _codings(value: Any) -> list[tuple[str | None, str]]:
    items = value if isinstance(value, list) else [value]
    out: list[tuple[str | None, str]] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        for coding in item.get("coding") or [item]:
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                system = coding.get("system")
                out.append((system if isinstance(system, str) else None, coding["code"]))
    return out


def _date_of(value: Any, element: str) -> date:
    if not isinstance(value, str) or len(value) < 10:
        raise ConsentMappingError(element, "needs a full date (YYYY-MM-DD)")
    try:
        if "T" in value:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ConsentMappingError(element, "not a valid date") from None


def _ext(resource: Mapping[str, Any], url: str) -> list[Mapping[str, Any]]:
    return [
        e for e in resource.get("extension") or () if isinstance(e, Mapping) and e.get("url") == url
    ]


def _agency_of(ref: Any, agencies: Mapping[str, Agency], element: str) -> str | None:
    """The agency a Reference names (None: an organisation the hub does not know)."""
    if not isinstance(ref, Mapping):
        raise ConsentMappingError(element, "not a Reference")
    literal = ref.get("reference")
    if isinstance(literal, str) and literal:
        kind, _, target = literal.rpartition("/")
        if not kind.endswith("Organization"):
            raise ConsentMappingError(element, "only organisations can be named")
        return target if target in agencies else None
    logical = ref.get("identifier")
    if isinstance(logical, Mapping):
        pair = (str(logical.get("system", "")), str(logical.get("value", "")))
        for agency in agencies.values():
            if pair == (codes.AGENCY_SYSTEM, agency.id) or pair in agency.identifiers:
                return agency.id
        return None
    raise ConsentMappingError(element, "needs a reference or an identifier")


def _client_ref(resource: Mapping[str, Any]) -> dict[str, str]:
    patient = resource.get("patient")
    ident = patient.get("identifier") if isinstance(patient, Mapping) else None
    if not isinstance(ident, Mapping) or not isinstance(ident.get("value"), str):
        raise ConsentMappingError("patient", "needs the client's identifier (Reference.identifier)")
    out = {"value": ident["value"]}
    system = ident.get("system")
    if isinstance(system, str) and system:
        out["system"] = canonical_system(system)
    return out


def _base_type(resource: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    kind = root.get("type")
    if kind in ("permit", "deny"):
        return str(kind)
    for system, code in _codings(resource.get("policyRule")):
        if system in (None, codes.V3_ACT_CODE) and code in ("OPTIN", "OPTOUT"):
            return "permit" if code == "OPTIN" else "deny"
    raise ConsentMappingError("provision.type", "needs permit or deny (or policyRule OPTIN/OPTOUT)")


_UNSUPPORTED_ROOT = ("securityLabel", "class", "code", "data", "dataPeriod")
_UNSUPPORTED_NESTED = ("purpose", "class", "code", "data", "dataPeriod", "period", "provision")


def _networks(root: Mapping[str, Any]) -> list[str]:
    actors = root.get("actor") or []
    if not actors:
        return list(NETWORKS)
    found: list[str] = []
    for i, actor in enumerate(actors):
        ref = actor.get("reference") if isinstance(actor, Mapping) else None
        ident = ref.get("identifier") if isinstance(ref, Mapping) else None
        if (
            not isinstance(ident, Mapping)
            or ident.get("system") != codes.NETWORK_SYSTEM
            or ident.get("value") not in NETWORKS
        ):
            raise ConsentMappingError(
                f"provision.actor[{i}]", "only trust networks can be named on the root provision"
            )
        found.append(str(ident["value"]))
    return found


def _purposes(root: Mapping[str, Any]) -> list[str]:
    codings = root.get("purpose") or []
    if not codings:
        return list(PURPOSES)
    found: list[str] = []
    for i, coding in enumerate(codings):
        code = coding.get("code") if isinstance(coding, Mapping) else None
        purpose = codes.CODE_TO_PURPOSE.get(str(code).upper())
        if purpose is None:
            raise ConsentMappingError(f"provision.purpose[{i}]", "unknown purpose of use")
        found.append(purpose)
    return found


def _exceptions(
    root: Mapping[str, Any], agencies: Mapping[str, Agency]
) -> tuple[list[str], set[str]]:
    """(excluded agencies, sensitive categories withheld) from the nested deny provisions."""
    excluded: list[str] = []
    withheld: set[str] = set()
    for i, child in enumerate(root.get("provision") or ()):
        path = f"provision.provision[{i}]"
        if not isinstance(child, Mapping):
            raise ConsentMappingError(path, "not a provision")
        if child.get("type") not in (None, "deny"):
            raise ConsentMappingError(f"{path}.type", "an exception to a permit must deny")
        for name in _UNSUPPORTED_NESTED:
            if child.get(name):
                raise ConsentMappingError(f"{path}.{name}", "the MPA cannot express this")
        actors = child.get("actor") or ()
        labels = child.get("securityLabel") or ()
        if bool(actors) == bool(labels):
            raise ConsentMappingError(path, "an exception names either actors or security labels")
        for j, actor in enumerate(actors):
            ref = actor.get("reference") if isinstance(actor, Mapping) else None
            agency = _agency_of(ref, agencies, f"{path}.actor[{j}].reference")
            if agency is not None:
                excluded.append(agency)
        for j, label in enumerate(labels):
            code = label.get("code") if isinstance(label, Mapping) else None
            category = codes.LABEL_TO_CATEGORY.get(str(code))
            if category is None:
                raise ConsentMappingError(
                    f"{path}.securityLabel[{j}]", "only ETH, HIV, PSY and SDV can be withheld"
                )
            withheld.add(category)
    return excluded, withheld


def consent_from_fhir(
    resource: Mapping[str, Any],
    *,
    agencies: Mapping[str, Agency],
    policy: ConsentPolicy,
    client: Mapping[str, str] | None = None,
    consent_id: str | None = None,
    recorded_by: str | None = None,
) -> ConsentRecord:
    """The MPA consent record a FHIR R4 Consent expresses (inverse of
    :func:`consent_to_fhir`).

    ``client`` ({system, value}) replaces ``Consent.patient`` when the caller resolved a
    literal ``Patient/<id>`` reference; ``consent_id`` is used when the Consent carries no
    hub consent identifier; ``recorded_by`` when it names no known organisation.
    """
    status = resource.get("status")
    if status not in ("active", "inactive"):
        raise ConsentMappingError("status", "only an active or inactive consent can be enforced")
    if not any(
        code == "patient-privacy" and system in (None, codes.CONSENT_SCOPE)
        for system, code in _codings(resource.get("scope"))
    ):
        raise ConsentMappingError("scope", "only patient-privacy consents are MPA consents")
    root = resource.get("provision") or {}
    if not isinstance(root, Mapping):
        raise ConsentMappingError("provision", "not a provision")
    period = root.get("period") if isinstance(root.get("period"), Mapping) else {}
    assert isinstance(period, Mapping)
    # The MPA's consent is in force from ``signed_on``: a provision whose period starts after
    # the consent was given permits nothing before that start (LEAP: not yet valid).
    starts = [
        _date_of(value, element)
        for value, element in (
            (resource.get("dateTime"), "dateTime"),
            (period.get("start"), "provision.period.start"),
        )
        if value
    ]
    if not starts:
        raise ConsentMappingError("dateTime", "needs the date the consent was given")
    signed_on = max(starts)
    data: Json = {
        "id": _consent_id(resource, consent_id),
        "client": dict(client) if client else _client_ref(resource),
        "signed_on": signed_on.isoformat(),
    }
    if period.get("end"):
        data["expires_on"] = _date_of(period["end"], "provision.period.end").isoformat()
    if status == "inactive":
        revoked = _ext(resource, codes.EXT_CONSENT_REVOKED_ON)
        when = revoked[0].get("valueDate") if revoked else None
        data["revoked_on"] = _date_of(when, "extension").isoformat() if when else data["signed_on"]
    for url, key in (
        (codes.EXT_CONSENT_METHOD, "method"),
        (codes.EXT_CONSENT_GIVEN_BY, "given_by"),
    ):
        found = _ext(resource, url)
        if found:
            data[key] = found[0].get("valueCode")
    part2: list[str] = []
    for ext in _ext(resource, codes.EXT_PART2_RECIPIENT):
        agency = _agency_of(ext.get("valueReference"), agencies, "extension.valueReference")
        if agency is not None:
            part2.append(agency)
    data["part2_recipients"] = sorted(set(part2))
    orgs = resource.get("organization") or ()
    custodian = _agency_of(orgs[0], agencies, "organization[0]") if orgs else None
    if custodian or recorded_by:
        data["recorded_by"] = custodian or recorded_by
    if _base_type(resource, root) == "deny":
        for name in ("actor", "purpose", "provision", *_UNSUPPORTED_ROOT):
            if root.get(name):
                raise ConsentMappingError(
                    f"provision.{name}", "a partial deny cannot be expressed as an MPA"
                )
        data["networks"] = []
    else:
        for name in _UNSUPPORTED_ROOT:
            if root.get(name):
                raise ConsentMappingError(f"provision.{name}", "the MPA cannot express this")
        data["networks"] = sorted(set(_networks(root)))
        data["purposes"] = sorted(set(_purposes(root)))
        excluded, withheld = _exceptions(root, agencies)
        data["exclude_agencies"] = sorted(set(excluded))
        data["sensitive"] = sorted(SENSITIVE_CATEGORIES - withheld)
    try:
        return parse_consent(data, agencies=agencies, policy=policy)
    except ConsentValidationError as exc:
        raise ConsentMappingError(_ELEMENT_OF.get(exc.field, exc.field), exc.problem) from None


_ELEMENT_OF = {
    "client.value": "patient.identifier.value",
    "client.system": "patient.identifier.system",
    "signed_on": "dateTime",
    "expires_on": "provision.period.end",
    "revoked_on": "extension",
    "method": "extension",
    "given_by": "extension",
    "recorded_by": "organization",
    "id": "identifier",
}


def _consent_id(resource: Mapping[str, Any], fallback: str | None) -> str:
    for ident in resource.get("identifier") or ():
        if (
            isinstance(ident, Mapping)
            and ident.get("system") == codes.CONSENT_ID_SYSTEM
            and isinstance(ident.get("value"), str)
        ):
            return str(ident["value"])
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return rid
    if fallback:
        return fallback
    raise ConsentMappingError("id", "the consent has no id")


MIRROR_PREFIX = "fhir:"
"""Id prefix of the MPA consent the gate enforces for a posted FHIR Consent."""


def mirror_id(resource_id: str) -> str:
    """The id of the MPA consent a posted FHIR Consent is enforced as."""
    return f"{MIRROR_PREFIX}{resource_id}"


def consent_patient_identifiers(resource: Mapping[str, Any]) -> Sequence[tuple[str, str]]:
    """The (canonical system, value) the Consent's ``patient`` names by identifier, if any."""
    patient = resource.get("patient")
    ident = patient.get("identifier") if isinstance(patient, Mapping) else None
    if not isinstance(ident, Mapping) or not isinstance(ident.get("value"), str):
        return ()
    return ((canonical_system(str(ident.get("system") or "")), ident["value"]),)
