"""Canonical Client ↔ FHIR R4 Patient (plain dicts; US Core race/ethnicity)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hub.core.partial_dates import iso_cut, parse_iso
from plugins.fhir import codes
from plugins.fhir.fhirjson import (
    DATE,
    DATETIME,
    Json,
    dedupe,
    ext,
    ext_value,
    ext_values,
    get_code,
    identifier_type,
    put_code,
)
from plugins.fhir.systems import canonical_system, fhir_system

# ---- Client ↔ Patient --------------------------------------------------------------------

_SEX_TO_GENDER = {
    "F": "female",
    "M": "male",
    "O": "other",
    "U": "unknown",
    "0": "female",
    "1": "male",
    "8": "unknown",
    "9": "unknown",
    "99": "unknown",
    "female": "female",
    "male": "male",
    "other": "other",
    "unknown": "unknown",
}
_GENDER_TO_SEX = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}
"""FHIR ``gender`` → canonical ``Client.sex`` (the same words, as HL7 and HUD CSV give)."""

_RACE_TO_OMB = {
    "AmIndAKNative": "1002-5",
    "Asian": "2028-9",
    "BlackAfAmerican": "2054-5",
    "NativeHIPacific": "2076-8",
    "NativeHIOPacific": "2076-8",
    "White": "2106-3",
}
_OMB_RACE_DISPLAY = {
    "1002-5": "American Indian or Alaska Native",
    "2028-9": "Asian",
    "2054-5": "Black or African American",
    "2076-8": "Native Hawaiian or Other Pacific Islander",
    "2106-3": "White",
}
_ETHNICITY_TO_OMB = {
    "1": "2135-2",
    "H": "2135-2",
    "Hispanic": "2135-2",
    "HispanicLatinaeo": "2135-2",
    "2135-2": "2135-2",
    "0": "2186-5",
    "N": "2186-5",
    "NonHispanic": "2186-5",
    "2186-5": "2186-5",
}
_OMB_ETHNICITY_DISPLAY = {"2135-2": "Hispanic or Latino", "2186-5": "Not Hispanic or Latino"}


def _identifier_to_fhir(ident: Mapping[str, Any]) -> Json:
    out: Json = {}
    system = str(ident.get("system", ""))
    if system:
        out["system"] = fhir_system(system)
    type_code = str(ident.get("type", ""))
    if type_code:
        out["type"] = {"coding": [{"system": codes.V2_0203, "code": type_code}]}
    value = str(ident.get("value", ""))
    if value:
        out["value"] = value
    return out


def _identifier_from_fhir(ident: Mapping[str, Any]) -> Json:
    out: Json = {
        "system": canonical_system(str(ident.get("system", ""))),
        "value": str(ident.get("value", "")),
    }
    if "type" in ident:
        type_code = identifier_type(ident)
        if type_code:
            out["type"] = type_code
    return out


def _name_to_fhir(name: Mapping[str, Any]) -> Json:
    out: Json = {}
    put_code(out, "use", str(name.get("use", "")), codes.NAME_USES)
    if name.get("family"):
        out["family"] = name["family"]
    if name.get("given"):
        out["given"] = list(name["given"])
    if name.get("prefix"):
        out["prefix"] = [name["prefix"]]
    if name.get("suffix"):
        out["suffix"] = [name["suffix"]]
    return out


def _plain_code(obj: Mapping[str, Any], element: str) -> str:
    """:func:`get_code`, quicker when the element carries no extension (the usual case)."""
    if obj.get("extension"):
        return get_code(obj, element)
    value = obj.get(element)
    return value if isinstance(value, str) else ""


def _name_from_fhir(name: Mapping[str, Any]) -> Json:
    out: Json = {}
    family = name.get("family")
    if family:
        out["family"] = str(family)
    given = name.get("given")
    if given:
        given = [str(g) for g in given]
        if given:
            out["given"] = given
    for part in ("prefix", "suffix"):
        values = name.get(part)
        if values:
            joined = " ".join([str(v) for v in values])
            if joined:  # as the record keeps it: an empty part is no part
                out[part] = joined
    use = _plain_code(name, "use")
    if use:
        out["use"] = use
    return out


def _telecom_to_fhir(cp: Mapping[str, Any]) -> Json:
    out: Json = {}
    put_code(out, "system", str(cp.get("system", "")), codes.TELECOM_SYSTEMS, "other")
    if cp.get("value"):
        out["value"] = cp["value"]
    put_code(out, "use", str(cp.get("use", "")), codes.TELECOM_USES)
    return out


def _telecom_from_fhir(cp: Mapping[str, Any]) -> Json:
    out: Json = {"system": _plain_code(cp, "system"), "value": str(cp.get("value", ""))}
    use = _plain_code(cp, "use")
    if use:
        out["use"] = use
    return out


_ADDRESS_FIELDS = (("city", "city"), ("state", "state"), ("postal_code", "postalCode"))
_ADDRESS_FIELDS_ALL = (*_ADDRESS_FIELDS, ("country", "country"))


def _address_to_fhir(addr: Mapping[str, Any]) -> Json:
    out: Json = {}
    put_code(out, "use", str(addr.get("use", "")), codes.ADDRESS_USES)
    if addr.get("lines"):
        out["line"] = list(addr["lines"])
    for canonical, element in _ADDRESS_FIELDS_ALL:
        if addr.get(canonical):
            out[element] = addr[canonical]
    return out


def _address_from_fhir(addr: Mapping[str, Any]) -> Json:
    out: Json = {}
    lines = addr.get("line")
    if lines:
        lines = [str(v) for v in lines]
        if lines:
            out["lines"] = lines
    for canonical, element in _ADDRESS_FIELDS_ALL:
        value = addr.get(element)
        if value:
            out[canonical] = str(value)
    use = _plain_code(addr, "use")
    if use:
        out["use"] = use
    return out


def _race_extension(race: Sequence[str]) -> Json:
    subs: list[Json] = []
    for value in race:
        code = _RACE_TO_OMB.get(value) or (value if value in _OMB_RACE_DISPLAY else None)
        if code is not None:
            subs.append(
                {
                    "url": "ombCategory",
                    "valueCoding": {
                        "system": codes.OMB_RACE_ETHNICITY,
                        "code": code,
                        "display": _OMB_RACE_DISPLAY[code],
                    },
                }
            )
    subs.append({"url": "text", "valueString": ", ".join(race)})
    return {"url": codes.US_CORE_RACE, "extension": subs}


def _ethnicity_extension(ethnicity: str) -> Json:
    subs: list[Json] = []
    code = _ETHNICITY_TO_OMB.get(ethnicity)
    if code is not None:
        subs.append(
            {
                "url": "ombCategory",
                "valueCoding": {
                    "system": codes.OMB_RACE_ETHNICITY,
                    "code": code,
                    "display": _OMB_ETHNICITY_DISPLAY[code],
                },
            }
        )
    subs.append({"url": "text", "valueString": ethnicity})
    return {"url": codes.US_CORE_ETHNICITY, "extension": subs}


def _us_core(patient: Mapping[str, Any], url: str) -> tuple[list[str], str | None]:
    """(ombCategory codes, text) of a US Core race or ethnicity extension."""
    for item in patient.get("extension") or ():
        if isinstance(item, Mapping) and item.get("url") == url:
            found: list[str] = []
            text: str | None = None
            for sub in item.get("extension") or ():
                if not isinstance(sub, Mapping):
                    continue
                if sub.get("url") == "ombCategory" and isinstance(sub.get("valueCoding"), Mapping):
                    found.append(str(sub["valueCoding"].get("code", "")))
                elif sub.get("url") == "text" and isinstance(sub.get("valueString"), str):
                    text = sub["valueString"]
            return found, text
    return [], None


def _ethnicity_from_fhir(omb: Sequence[str], text: str | None) -> str:
    """The canonical ethnicity of a US Core ethnicity extension: its OMB code (the CDC code
    the other connectors use, e.g. ``2135-2``), unless its text is the source value the hub
    wrote beside that code (``1``, ``H`` …: :func:`_ethnicity_extension`). A partner's text
    is a display (US Core requires one, "Hispanic or Latino"), not a code: taking it would
    lose the ethnicity in every export that expects a code."""
    code = next((c for c in omb if c), "")
    if code and (not text or _ETHNICITY_TO_OMB.get(text) != code):
        return code
    return text or ""


def _deceased_to_fhir(value: str, out: Json) -> None:
    if value in ("true", "false"):
        out["deceasedBoolean"] = value == "true"
    elif value in ("Y", "N"):  # as hubs stored it before the canonical words: kept as given
        out["deceasedBoolean"] = value == "Y"
        out.setdefault("extension", []).append(ext(codes.EXT_DECEASED_SOURCE, value))
    elif DATE.fullmatch(value) or DATETIME.fullmatch(value):
        out["deceasedDateTime"] = value
    else:
        out.setdefault("extension", []).append(ext(codes.EXT_DECEASED_SOURCE, value))


def _deceased_from_fhir(patient: Mapping[str, Any]) -> str:
    source = ext_value(patient, codes.EXT_DECEASED_SOURCE)
    if source is not None:
        return source
    flag = patient.get("deceasedBoolean")
    if isinstance(flag, bool):
        return "true" if flag else "false"
    when = patient.get("deceasedDateTime")
    return when if isinstance(when, str) else ""


def client_to_patient(
    payload: Mapping[str, Any],
    *,
    patient_id: str | None = None,
    managing_organization: str | None = None,
    extra_identifiers: Sequence[Mapping[str, str]] = (),
) -> Json:
    """A FHIR R4 Patient (plain dict) from a canonical Client payload.

    ``patient_id`` becomes ``Patient.id`` (the hub answers with the person id);
    ``managing_organization`` is an agency id; ``extra_identifiers`` are FHIR Identifier
    dicts appended as they are (e.g. the hub's stable record identifier on push).
    """
    out: Json = {"resourceType": "Patient"}
    if patient_id:
        out["id"] = patient_id
    extensions: list[Json] = []
    race = payload.get("race")
    if race:
        extensions.append(_race_extension(race))
        extensions.extend(ext(codes.EXT_RACE_SOURCE, r) for r in race)
    ethnicity = payload.get("ethnicity")
    if ethnicity:
        extensions.append(_ethnicity_extension(ethnicity))
    sex = payload.get("sex", "")
    if sex and sex not in _GENDER_TO_SEX.values():
        extensions.append(ext(codes.EXT_SEX, sex))
    extensions.extend(ext(codes.EXT_GENDER_IDENTITY, g) for g in payload.get("gender") or ())
    for field, url in (
        ("veteran_status", codes.EXT_VETERAN_STATUS),
        ("name_quality", codes.EXT_NAME_QUALITY),
        ("ssn_quality", codes.EXT_SSN_QUALITY),
        ("birth_date_quality", codes.EXT_DOB_QUALITY),
    ):
        if payload.get(field):
            extensions.append(ext(url, payload[field]))
    if extensions:
        out["extension"] = extensions
    identifiers = [_identifier_to_fhir(i) for i in payload.get("identifiers") or ()]
    if payload.get("ssn"):
        identifiers.append(
            {
                "system": codes.US_SSN,
                "type": {"coding": [{"system": codes.V2_0203, "code": "SS"}]},
                "value": payload["ssn"],
            }
        )
    identifiers.extend(dict(i) for i in extra_identifiers)
    if identifiers:
        out["identifier"] = identifiers
    if payload.get("names"):
        out["name"] = [_name_to_fhir(n) for n in payload["names"]]
    if payload.get("telecom"):
        out["telecom"] = [_telecom_to_fhir(t) for t in payload["telecom"]]
    if sex:
        out["gender"] = _SEX_TO_GENDER.get(sex, "unknown")
    if payload.get("birth_date"):
        # At the precision known: a birth year stays "1980", never "1980-01-01".
        out["birthDate"] = iso_cut(
            str(payload["birth_date"]), str(payload.get("birth_date_precision", ""))
        )
    if payload.get("deceased"):
        _deceased_to_fhir(payload["deceased"], out)
    if payload.get("addresses"):
        out["address"] = [_address_to_fhir(a) for a in payload["addresses"]]
    if managing_organization:
        out["managingOrganization"] = {"reference": f"Organization/{managing_organization}"}
    return out


_QUALITY_EXTENSIONS = (
    ("veteran_status", codes.EXT_VETERAN_STATUS),
    ("name_quality", codes.EXT_NAME_QUALITY),
    ("ssn_quality", codes.EXT_SSN_QUALITY),
    ("birth_date_quality", codes.EXT_DOB_QUALITY),
)


_LISTS: tuple[tuple[str, str, Callable[[Mapping[str, Any]], Json]], ...] = (
    ("name", "names", _name_from_fhir),
    ("telecom", "telecom", _telecom_from_fhir),
    ("address", "addresses", _address_from_fhir),
)
"""Patient list elements mapped item by item: (element, payload field, mapping)."""


def patient_to_client(patient: Mapping[str, Any]) -> Json:
    """A canonical Client payload from a FHIR R4 Patient (inverse of
    :func:`client_to_patient`; the hub's record identifiers are dropped).

    This runs once per Patient of an ingested Bundle, so it reads each element once and
    skips the extension look-ups when the Patient has no extensions."""
    out: Json = {}
    idents = patient.get("identifier")
    if idents:
        identifiers: list[Json] = []
        ssn: str | None = None
        for ident in idents:
            if not isinstance(ident, Mapping):
                continue
            system = ident.get("system")
            if system == codes.RECORD_SYSTEM:
                continue
            if system == codes.US_SSN and ident.get("value"):
                ssn = str(ident["value"])
                continue
            identifiers.append(_identifier_from_fhir(ident))
        if identifiers:
            out["identifiers"] = identifiers
        if ssn:
            out["ssn"] = ssn
    for element, field, convert in _LISTS:
        items = patient.get(element)
        if items:
            mapped = [convert(item) for item in items if isinstance(item, Mapping)]
            if mapped:
                out[field] = mapped
    birth = patient.get("birthDate")
    if birth:
        # FHIR date: YYYY, YYYY-MM or YYYY-MM-DD; a partial one is kept as its first day
        # and its precision. A value that is no date is no birth date.
        parsed = parse_iso(str(birth))
        if parsed is not None:
            out["birth_date"] = parsed[0].isoformat()
            if parsed[1]:
                out["birth_date_precision"] = parsed[1]
    if not patient.get("extension"):
        sex = _GENDER_TO_SEX.get(str(patient.get("gender", "")), "")
        if sex:
            out["sex"] = sex
        flag = patient.get("deceasedBoolean")
        if isinstance(flag, bool):
            out["deceased"] = "true" if flag else "false"
        else:
            when = patient.get("deceasedDateTime")
            if when and isinstance(when, str):
                out["deceased"] = when
        return out
    sex_ext = ext_value(patient, codes.EXT_SEX)
    sex = sex_ext if sex_ext is not None else _GENDER_TO_SEX.get(str(patient.get("gender", "")), "")
    if sex:
        out["sex"] = sex
    gender = ext_values(patient, codes.EXT_GENDER_IDENTITY)
    if gender:
        out["gender"] = gender
    race = ext_values(patient, codes.EXT_RACE_SOURCE)
    if not race:
        omb, _text = _us_core(patient, codes.US_CORE_RACE)
        race = [code for code in omb if code]  # canonical race: CDC codes, as OMB's are
    if race:
        out["race"] = race
    ethnicity = _ethnicity_from_fhir(*_us_core(patient, codes.US_CORE_ETHNICITY))
    if ethnicity:
        out["ethnicity"] = ethnicity
    for field, url in _QUALITY_EXTENSIONS:
        value = ext_value(patient, url)
        if value:
            out[field] = value
    deceased = _deceased_from_fhir(patient)
    if deceased:
        out["deceased"] = deceased
    return out


_LIST_FIELDS = ("identifiers", "names", "telecom", "addresses", "gender", "race")


def merge_client_payloads(payloads: Sequence[Mapping[str, Any]]) -> Json:
    """One person view from several sources' Client payloads: lists are united (first
    occurrence kept, in order), single values come from the first payload that has one
    (a birth date's precision from the payload whose birth date was taken)."""
    if len(payloads) == 1:
        return dict(payloads[0])
    out: Json = {}
    for name in _LIST_FIELDS:
        merged = dedupe(item for p in payloads for item in p.get(name) or ())
        if merged:
            out[name] = merged
    for p in payloads:
        for name, value in p.items():
            if (
                name not in _LIST_FIELDS
                and name != "birth_date_precision"
                and name not in out
                and value not in (None, "", [], {})
            ):
                out[name] = value
                if name == "birth_date" and p.get("birth_date_precision"):
                    out["birth_date_precision"] = p["birth_date_precision"]
    return out
