"""Per-type rules of a write: references, ownership, immutable elements, Task statuses.

Each ``prepare_<type>(batch, resource, path, old)`` checks and normalises the resource in
place (``old`` is the stored version for an update, None for a create) and returns
(record owner, client record key, consent-gate note). Errors name the element under
``path`` (``Task`` or ``Bundle.entry[3].resource``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import orjson

from consent import ConsentRecord
from hub.plugin_api import SourceKey
from plugins.fhir import codes
from plugins.fhir.access import REFERRAL_PURPOSE, Released, reference_id
from plugins.fhir.consent_mapping import ConsentMappingError, consent_from_fhir, mirror_id
from plugins.fhir.outcome import FhirError
from plugins.fhir.patients import identifier_keys, persons_with
from plugins.fhir.repo import Stored
from plugins.fhir.systems import canonical_system, fhir_system
from plugins.fhir.workflow import check_initial, check_transition

if TYPE_CHECKING:
    from plugins.fhir.writes import Batch

Prepared = tuple[str, SourceKey | None, str]


def _org(agency: str) -> dict[str, str]:
    return {"reference": f"Organization/{agency}"}


async def prepare_task(
    batch: Batch, res: dict[str, Any], path: str, old: Stored | None
) -> Prepared:
    """A Task: requester is the caller, owner a known agency, focus the caller's request, a
    patient the gate releases; on update only status/output/notes move (status machine)."""
    if old is None:
        requester = (
            batch.agency_of(res["requester"], f"{path}.requester")
            if res.get("requester") is not None
            else batch.agency
        )
        if requester != batch.agency:
            raise FhirError.of(
                403,
                "forbidden",
                f"{path}.requester: must be the caller's organization",
                f"{path}.requester",
            )
        if res.get("owner") is None:
            raise FhirError.of(422, "required", f"{path}.owner: required", f"{path}.owner")
        owner = batch.agency_of(res["owner"], f"{path}.owner")
        if res.get("focus") is None:
            raise FhirError.of(422, "required", f"{path}.focus: required", f"{path}.focus")
        sr = await batch.readable("ServiceRequest", res["focus"], f"{path}.focus")
        if sr.owner != batch.agency:
            raise FhirError.of(
                422,
                "business-rule",
                f"{path}.focus: not a request of the caller",
                f"{path}.focus",
            )
        client: SourceKey | None
        client, _person = await batch.link_patient(res, "for", path, REFERRAL_PURPOSE)
        check_initial(str(res.get("status")), f"{path}.status")
        res["requester"], res["owner"] = _org(requester), _org(owner)
        res["focus"] = {"reference": f"ServiceRequest/{sr.id}"}
    else:
        requester, owner = _task_sides(old)
        is_owner, is_requester = batch.agency == owner, batch.agency == requester
        if not (is_owner or is_requester):
            raise FhirError.of(403, "forbidden", f"{path}: not a party of this Task")
        for element in ("requester", "owner", "focus"):
            given = res.get(element)
            if given is not None and _ref_text(given) != _ref_text(old.resource.get(element)):
                where = f"{path}.{element}"
                raise FhirError.of(422, "business-rule", f"{where}: cannot be changed", where)
            res[element] = old.resource.get(element)
        if res.get("intent") != old.resource.get("intent"):
            where = f"{path}.intent"
            raise FhirError.of(422, "business-rule", f"{where}: cannot be changed", where)
        await batch.keep_patient(res, old, "for", path)
        client = old.client
        check_transition(
            str(old.resource.get("status")),
            str(res.get("status")),
            is_owner=is_owner,
            is_requester=is_requester,
            where=f"{path}.status",
        )
    for i, item in enumerate(res.get("output") or ()):
        ref = item.get("valueReference") if isinstance(item, Mapping) else None
        if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str):
            where = f"{path}.output[{i}].valueReference"
            procedure = await batch.readable("Procedure", ref, where)
            item["valueReference"] = {"reference": f"Procedure/{procedure.id}"}
    return requester, client, ""


async def prepare_request(
    batch: Batch, res: dict[str, Any], path: str, old: Stored | None
) -> Prepared:
    """A ServiceRequest: requester is the caller; performers are agencies; consents in
    ``supportingInfo`` must exist and be visible; only the requester changes it."""
    if old is None:
        requester = (
            batch.agency_of(res["requester"], f"{path}.requester")
            if res.get("requester") is not None
            else batch.agency
        )
        if requester != batch.agency:
            raise FhirError.of(
                403,
                "forbidden",
                f"{path}.requester: must be the caller's organization",
                f"{path}.requester",
            )
        res["requester"] = _org(requester)
        client: SourceKey | None
        client, _person = await batch.link_patient(res, "subject", path, REFERRAL_PURPOSE)
    else:
        _only_owner(batch.agency, old, path)
        requester = old.owner
        given = res.get("requester")
        if given is not None and _ref_text(given) != _ref_text(old.resource.get("requester")):
            where = f"{path}.requester"
            raise FhirError.of(422, "business-rule", f"{where}: cannot be changed", where)
        res["requester"] = old.resource.get("requester")
        await batch.keep_patient(res, old, "subject", path)
        client = old.client
    performers = res.get("performer") or []
    res_performers: list[Any] = []
    for i, ref in enumerate(performers):
        literal = ref.get("reference") if isinstance(ref, Mapping) else None
        if isinstance(literal, str) and "Organization" not in literal:
            res_performers.append(ref)
            continue
        res_performers.append(_org(batch.agency_of(ref, f"{path}.performer[{i}]")))
    if performers:
        res["performer"] = res_performers
    for i, info in enumerate(res.get("supportingInfo") or ()):
        if reference_id(info, "Consent") is not None:
            consent = await batch.readable("Consent", info, f"{path}.supportingInfo[{i}]")
            res["supportingInfo"][i] = {"reference": f"Consent/{consent.id}"}
    return requester, client, ""


async def prepare_procedure(
    batch: Batch, res: dict[str, Any], path: str, old: Stored | None
) -> Prepared:
    """A Procedure: a patient the caller may see; ``basedOn`` requests must be visible;
    only its creator changes it."""
    client: SourceKey | None
    if old is None:
        client, _person = await batch.link_patient(res, "subject", path, REFERRAL_PURPOSE)
    else:
        _only_owner(batch.agency, old, path)
        await batch.keep_patient(res, old, "subject", path)
        client = old.client
    for i, ref in enumerate(res.get("basedOn") or ()):
        if reference_id(ref, "ServiceRequest") is not None:
            sr = await batch.readable("ServiceRequest", ref, f"{path}.basedOn[{i}]")
            res["basedOn"][i] = {"reference": f"ServiceRequest/{sr.id}"}
    return (old.owner if old else batch.agency), client, ""


async def prepare_consent(
    batch: Batch, res: dict[str, Any], path: str, old: Stored | None
) -> Prepared:
    """A Consent: its patient (literal or by identifier), the custodian organizations, and
    the MPA record the gate will enforce when the MPA can express it."""
    if old is not None:
        _only_owner(batch.agency, old, path)
    client, mpa_client = await _consent_patient(batch, res, path, old)
    orgs = res.get("organization") or []
    res["organization"] = [
        _org(batch.agency_of(o, f"{path}.organization[{i}]")) for i, o in enumerate(orgs)
    ] or [_org(batch.agency)]
    note = "applied"
    try:
        record = consent_from_fhir(
            res,
            agencies=batch.ctx.config.agencies,
            policy=batch.ctx.config.consent_policy,
            client=mpa_client,
            consent_id=str(res["id"]),
            recorded_by=batch.agency,
        )
    except ConsentMappingError as exc:
        note = f"not-applied; {exc.element}: {exc.problem}"
        if old is not None:
            withdrawn = await _withdrawn_mirror(batch, str(res["id"]))
            if withdrawn is not None:
                batch.consents.append(withdrawn)
                note += "; the earlier version is withdrawn"
    else:
        batch.consents.append(
            dataclasses.replace(record, id=mirror_id(res["id"]), recorded_by=batch.agency)
        )
    return batch.agency, client, note


async def _withdrawn_mirror(batch: Batch, resource_id: str) -> ConsentRecord | None:
    """The gate's copy of an earlier version of this Consent, revoked as of today; None when
    there is none in force.

    A Consent updated to what the MPA cannot express (entered-in-error, rejected, draft, a
    partial deny …) replaces the version the gate enforced: that version must stop
    permitting disclosures, or a withdrawn consent would go on sharing the client's data.
    """
    ctx = batch.ctx
    async with ctx.store.transaction() as tx:
        await ctx.gate.refresh(tx)
    wanted = mirror_id(resource_id)
    today = batch.now.date()
    for record in ctx.gate.all_consents():
        if record.id != wanted:
            continue
        if record.revoked_on is not None and record.revoked_on <= today:
            return None
        revoked_on: date = max(today, record.signed_on)
        withdrawn: ConsentRecord = dataclasses.replace(record, revoked_on=revoked_on)
        return withdrawn
    return None


async def _consent_patient(
    batch: Batch, res: dict[str, Any], path: str, old: Stored | None
) -> tuple[SourceKey | None, dict[str, str] | None]:
    """(client record key, MPA client reference) of a Consent's patient."""
    where = f"{path}.patient"
    ref = res.get("patient")
    if old is not None:
        await batch.keep_patient(res, old, "patient", path)
        ref = old.resource.get("patient")
        if old.client is None or not isinstance(ref, Mapping):
            return old.client, _identifier_ref(ref)
        ident = _identifier_ref(ref)
        if ident is not None:
            return old.client, ident
        person = await batch.viewer.person_of(old)
        released = await batch.viewer.released_clients(person) if person else []
        return old.client, _first_identifier(_payload_of(released, old.client))
    if not isinstance(ref, Mapping):
        raise FhirError.of(422, "required", f"{where}: required", where)
    ident = _identifier_ref(ref)
    literal = ref.get("reference")
    if ident is not None and not literal:
        return await _identified_patient(batch, ident, where)
    client, person = await batch.link_patient(res, "patient", path, batch.viewer.purpose)
    if person is not None:
        released = await batch.viewer.released_clients(person)
        if not _serves(batch, released):
            raise _not_served(where)
        mpa = _first_identifier(_payload_of(released, client))
    else:
        # a Patient created in this same transaction, by the caller itself
        mpa = _first_identifier(batch.patient_payloads.get(client))
    if mpa is not None:
        fhir_ident = {"value": mpa["value"]}
        if mpa.get("system"):
            fhir_ident = {"system": fhir_system(mpa["system"]), "value": mpa["value"]}
        res["patient"] = {**res["patient"], "identifier": fhir_ident}
    return client, mpa


async def _identified_patient(
    batch: Batch, ident: dict[str, str], where: str
) -> tuple[SourceKey, dict[str, str]]:
    """(client record key, MPA client reference) of a Consent naming its patient by
    identifier alone: a person the caller serves, else 403 (whoever else carries it).

    Only persons the caller serves are told apart, so the answer never reveals a person it
    does not serve: a value without a system that two of them carry is ambiguous (422); when
    only persons it does not serve share the value, the MPA reference takes the system of
    the caller's own record, so the gate applies the consent to that person alone.
    """
    token = f"{ident['system']}|{ident['value']}" if ident.get("system") else ident["value"]
    persons = await persons_with(batch.ctx, identifier_keys(batch.ctx.keys.blind, token))
    served: list[Released] = []
    for person in sorted(persons):
        released = await batch.viewer.released_clients(person)
        if _serves(batch, released):
            served.append(released)
    if not served:
        raise _not_served(where)
    if len(served) > 1 and not ident.get("system"):
        raise FhirError.of(
            422,
            "business-rule",
            f"{where}.identifier: names more than one person; add a system",
            f"{where}.identifier",
        )
    client = batch.viewer.choose_client(served[0])
    if len(persons) > 1 and not ident.get("system"):
        own = _identifier_with_value(_payload_of(served[0], client), ident["value"])
        return client, own or ident
    return client, ident


def _serves(batch: Batch, released: Any) -> bool:
    """Whether the caller holds a record of its own about the person (it served the client)."""
    return any(rec.meta.owner == batch.agency for rec, _payload in released)


def _not_served(where: str) -> FhirError:
    # The same answer whether the person does not exist or the caller never served them.
    return FhirError.of(
        403,
        "forbidden",
        f"{where}: a consent can only be recorded for a client the calling agency serves",
        where,
    )


def _ref_text(ref: Any) -> str | None:
    if not isinstance(ref, Mapping):
        return None
    literal = ref.get("reference")
    if isinstance(literal, str):
        parts = literal.rstrip("/").split("/")
        return "/".join(parts[-2:])
    return orjson.dumps(ref, option=orjson.OPT_SORT_KEYS).decode()


def _task_sides(task: Stored) -> tuple[str, str]:
    requester = reference_id(task.resource.get("requester"), "Organization") or task.owner
    owner = reference_id(task.resource.get("owner"), "Organization") or ""
    return requester, owner


def _only_owner(agency: str, old: Stored, path: str) -> None:
    if old.owner != agency:
        raise FhirError.of(
            403, "forbidden", f"{path}: only the organization that owns it may change it"
        )


def _identifier_ref(ref: Any) -> dict[str, str] | None:
    ident = ref.get("identifier") if isinstance(ref, Mapping) else None
    if not isinstance(ident, Mapping) or not isinstance(ident.get("value"), str):
        return None
    if ident.get("system") == codes.RECORD_SYSTEM:
        return None
    out = {"value": ident["value"]}
    if ident.get("system"):
        out["system"] = canonical_system(str(ident["system"]))
    return out


def _payload_of(released: Any, client: SourceKey | None) -> dict[str, Any] | None:
    for rec, payload in released or ():
        if rec.meta.key == client:
            return dict(payload)
    return None


def _first_identifier(payload: Mapping[str, Any] | None) -> dict[str, str] | None:
    for ident in (payload or {}).get("identifiers") or ():
        if ident.get("value"):
            out = {"value": str(ident["value"])}
            if ident.get("system"):
                out["system"] = str(ident["system"])
            return out
    return None


def _identifier_with_value(payload: Mapping[str, Any] | None, value: str) -> dict[str, str] | None:
    """The client's identifier with this value and a system, if it has one."""
    for ident in (payload or {}).get("identifiers") or ():
        if ident.get("value") == value and ident.get("system"):
            return {"system": str(ident["system"]), "value": value}
    return None


PREPARE: dict[str, Callable[[Batch, dict[str, Any], str, Stored | None], Awaitable[Prepared]]] = {
    "Task": prepare_task,
    "ServiceRequest": prepare_request,
    "Procedure": prepare_procedure,
    "Consent": prepare_consent,
}
