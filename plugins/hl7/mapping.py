"""ADT and REF^I12 messages → canonical Client, Encounter and Referral records.

Field choices follow the HL7 V2-to-FHIR mapping where it is clear:

* Client (PID): key ``hl7:<facility>/<MRN>`` — the first PID-3 of type MR, else the first
  PID-3; every PID-3 repetition becomes an Identifier (system = CX-4 assigning authority,
  else the sending facility; type = CX-5); every PID-5 name; PID-7 birth date; PID-8 sex as
  ``male``/``female``/``other``/``unknown``; PID-10 race and PID-22 ethnic group as codes;
  PID-11 addresses; PID-13 (home) and PID-14 (work) phones and e-mail; PID-19 SSN, else a
  PID-3 of type SS; PID-29/PID-30 death as an ISO date-time, ``true`` or ``false``.
* Encounter (PV1, for A01/A03/A04/A08): key = PV1-19 visit number, else the message control id;
  class PV1-2, location PV1-3 (point of care / room / bed), facility PV1-3.4 else MSH-4,
  admit PV1-44, discharge PV1-45, DG1 diagnoses. A28/A31 are person-level: Client only.
* Referral (REF^I12): key = RF1-6 originating referral id, else the control id; status,
  priority and type from RF1-1/2/3; reason RF1-14 else RF1-10; PRD role RP → requester,
  RT → performer (a configured agency when one of the PRD ids names it, else the raw id);
  DG1 diagnoses; NTE notes and RF1-24 comment.

Diagnoses and codes are written ``system|code|display``. The version of every record is
MSH-7 as a sortable UTC ISO string, else the time of receipt. The owner is the sender's agency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from hub.plugin_api import (
    Address,
    Client,
    ContactPoint,
    Encounter,
    HumanName,
    Identifier,
    Provenance,
    Record,
    RecordMeta,
    Referral,
    SourceKey,
)
from plugins.hl7.arv import Restriction, message_restrictions
from plugins.hl7.directory import AgencyDirectory
from plugins.hl7.dtm import parse_dtm, parse_partial_date, sortable
from plugins.hl7.parser import Composite, Header, Message, Segment

PERSON_EVENTS = frozenset({"A28", "A31"})
VISIT_EVENTS = frozenset({"A01", "A03", "A04", "A08"})

STRUCTURES: dict[tuple[str, str], str] = {
    ("ADT", "A01"): "ADT_A01",
    ("ADT", "A04"): "ADT_A01",
    ("ADT", "A08"): "ADT_A01",
    ("ADT", "A03"): "ADT_A03",
    ("ADT", "A28"): "ADT_A05",
    ("ADT", "A31"): "ADT_A05",
    ("REF", "I12"): "REF_I12",
}
"""Every (message type, event) the hub takes, with its abstract message structure."""

SEX: dict[str, str] = {
    "M": "male",
    "F": "female",
    "O": "other",
    "A": "other",
    "X": "other",
    "U": "unknown",
    "N": "unknown",
}
NAME_USE: dict[str, str] = {
    "L": "official",
    "C": "official",
    "R": "official",
    "D": "usual",
    "A": "usual",
    "M": "maiden",
    "N": "nickname",
    "S": "anonymous",
    "B": "old",
}
ADDRESS_USE: dict[str, str] = {
    "H": "home",
    "P": "home",
    "B": "work",
    "O": "work",
    "C": "temp",
    "BA": "old",
}
PHONE_USE: dict[str, str] = {
    "PRN": "home",
    "ORN": "home",
    "WPN": "work",
    "VHN": "temp",
}
PHONE_SYSTEM: dict[str, str] = {"FX": "fax", "BP": "pager", "INTERNET": "email", "X.400": "email"}
REFERRAL_STATUS: dict[str, str] = {
    "P": "requested",
    "A": "accepted",
    "R": "rejected",
    "E": "cancelled",
}
REFERRAL_PRIORITY: dict[str, str] = {
    "S": "stat",
    "A": "asap",
    "R": "routine",
    "T": "urgent",
    "P": "urgent",
}


class MappingError(ValueError):
    """A supported message that lacks what a record needs; names segment and field only."""

    def __init__(self, reason: str, *, code: str, segment: str, field: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.segment = segment
        self.field = field


@dataclass(frozen=True, slots=True)
class SenderContext:
    """What the hub knows about the message beyond its text: who sent it, when, its hash."""

    facility: str
    owner: str
    received_at: datetime
    payload_hash: str
    directory: AgencyDirectory
    zone: tzinfo | None = None
    """The sender's time zone, for its date-times without an offset (None: left naive)."""


def message_event(message: Message) -> str:
    """The trigger event: MSH-9.2, else EVN-1 (v2.3 senders sometimes leave MSH-9.2 empty)."""
    event = message.header.trigger_event
    if not event:
        evn = message.first("EVN")
        if evn is not None:
            event = evn.get(1).strip().upper()
    return event


def structure_of(message_type: str, event: str) -> str | None:
    """The message structure the hub expects for a type and event, or None if unsupported."""
    return STRUCTURES.get((message_type, event))


def _clean(value: str) -> str:
    value = value.strip()
    return "" if value == '""' else value


def _coded(c: Composite) -> str:
    """A CWE/CE as ``system|code|display`` ('' when it holds nothing)."""
    code, display, system = _clean(c.get(1)), _clean(c.get(2)), _clean(c.get(3))
    if not (code or display):
        return ""
    return f"{system}|{code}|{display}"


# ---- PID → Client ------------------------------------------------------------------------


def _identifier(cx: Composite, facility: str) -> Identifier | None:
    value = _clean(cx.get(1))
    if not value:
        return None
    system = _clean(cx.get(4, 1)) or _clean(cx.get(4, 2)) or facility
    return Identifier(system=system, value=value, type=_clean(cx.get(5)).upper())


def _name(x: Composite) -> HumanName | None:
    family = _clean(x.get(1, 1))
    given = tuple(v for v in (_clean(x.get(2)), _clean(x.get(3))) if v)
    if not (family or given):
        return None
    suffix = " ".join(v for v in (_clean(x.get(4)), _clean(x.get(6))) if v)
    return HumanName(
        family=family,
        given=given,
        prefix=_clean(x.get(5)),
        suffix=suffix,
        use=NAME_USE.get(_clean(x.get(7)).upper(), ""),
    )


def _street(x: Composite) -> str:
    """XAD-1 (SAD): the street line, completed by street name and dwelling number if apart."""
    subs = [_clean(v) for v in x.subs(1)]
    line = subs[0] if subs else ""
    name = subs[1] if len(subs) > 1 else ""
    number = subs[2] if len(subs) > 2 else ""
    if not line:
        return " ".join(v for v in (number, name) if v)
    return " ".join([line, *(v for v in (name, number) if v and v not in line)])


def _address(x: Composite) -> Address | None:
    lines = tuple(v for v in (_street(x), _clean(x.get(2))) if v)
    address = Address(
        lines=lines,
        city=_clean(x.get(3)),
        state=_clean(x.get(4)),
        postal_code=_clean(x.get(5)),
        country=_clean(x.get(6)),
        use=ADDRESS_USE.get(_clean(x.get(7)).upper(), ""),
    )
    return address if address != Address(use=address.use) else None


def _phone_number(x: Composite) -> str:
    unformatted = _clean(x.get(12))
    if unformatted:
        return unformatted
    country, area, local, ext = (_clean(x.get(n)) for n in (5, 6, 7, 8))
    if local:
        parts = [f"+{country}" if country else "", f"({area})" if area else "", local]
        if ext:
            parts.append(f"x{ext}")
        return " ".join(p for p in parts if p)
    return _clean(x.get(1))


def _telecom(x: Composite, default_use: str) -> ContactPoint | None:
    use_code = _clean(x.get(2)).upper()
    equipment = _clean(x.get(3)).upper()
    email = _clean(x.get(4))
    system = PHONE_SYSTEM.get(equipment, "phone")
    if use_code == "NET":
        system = "email"
    if system == "email":
        return ContactPoint("email", email, PHONE_USE.get(use_code, default_use)) if email else None
    number = _phone_number(x)
    if not number:
        return ContactPoint("email", email, default_use) if "@" in email else None
    use = "mobile" if equipment == "CP" else PHONE_USE.get(use_code, default_use)
    return ContactPoint(system, number, use)


def _deceased(pid: Segment, zone: tzinfo | None) -> str:
    when = parse_dtm(pid.get(29), zone)
    if when is not None:
        return when.isoformat()
    flag = _clean(pid.get(30)).upper()
    return {"Y": "true", "N": "false"}.get(flag, "")


def _client_key(pid: Segment, facility: str) -> tuple[str, list[Identifier]]:
    identifiers = [i for cx in pid.composites(3) if (i := _identifier(cx, facility))]
    if not identifiers:
        # v2.3 senders may still carry the patient id in PID-2 only.
        identifiers = [i for cx in pid.composites(2) if (i := _identifier(cx, facility))]
    if not identifiers:
        raise MappingError(
            "PID-3 (patient identifier list) is empty", code="101", segment="PID", field=3
        )
    mrn = next((i.value for i in identifiers if i.type == "MR"), identifiers[0].value)
    return mrn, identifiers


def map_client(
    pid: Segment, meta: RecordMeta, identifiers: list[Identifier], zone: tzinfo | None = None
) -> Client:
    """The canonical Client of a PID segment."""
    ssn = _clean(pid.get(19)) or next((i.value for i in identifiers if i.type == "SS"), "")
    telecom = [t for x in pid.composites(13) if (t := _telecom(x, "home"))]
    telecom += [t for x in pid.composites(14) if (t := _telecom(x, "work"))]
    race = tuple(v for c in pid.composites(10) if (v := _clean(c.get(1)) or _clean(c.get(2))))
    ethnic = pid.composite(22)
    # PID-7 may be 1980 or 198005 (or say ^Y / ^L in a TS): kept at the precision sent.
    birth = parse_partial_date(pid.get(7), pid.get(7, 2))
    return Client(
        meta=meta,
        identifiers=tuple(identifiers),
        names=tuple(n for x in pid.composites(5) if (n := _name(x))),
        birth_date=birth[0] if birth else None,
        ssn=ssn or None,
        telecom=tuple(telecom),
        addresses=tuple(a for x in pid.composites(11) if (a := _address(x))),
        sex=SEX.get(_clean(pid.get(8)).upper(), ""),
        race=race,
        ethnicity=_clean(ethnic.get(1)) or _clean(ethnic.get(2)),
        deceased=_deceased(pid, zone),
        birth_date_precision=birth[1] if birth else "",
    )


# ---- PV1 → Encounter, RF1/PRD → Referral --------------------------------------------------


def _diagnoses(message: Message) -> tuple[str, ...]:
    out: list[str] = []
    for dg1 in message.all("DG1"):
        coded = _coded(dg1.composite(3))
        if not coded:
            text = _clean(dg1.get(4))
            coded = f"||{text}" if text else ""
        if coded:
            out.append(coded)
    return tuple(out)


def map_encounter(
    message: Message,
    pv1: Segment,
    meta: RecordMeta,
    client: SourceKey,
    event: str,
    zone: tzinfo | None = None,
) -> Encounter:
    """The canonical Encounter of a PV1 segment (with the message's DG1 diagnoses)."""
    pl = pv1.composite(3)
    location = " / ".join(v for v in (_clean(pl.get(1)), _clean(pl.get(2)), _clean(pl.get(3))) if v)
    return Encounter(
        meta=meta,
        client=client,
        event=event,
        patient_class=_clean(pv1.get(2)).upper(),
        location=location,
        visit_number=_clean(pv1.get(19)),
        admit_time=parse_dtm(pv1.get(44), zone),
        discharge_time=parse_dtm(pv1.get(45), zone),
        facility=_clean(pl.get(4, 1)) or message.header.sending_facility,
        diagnoses=_diagnoses(message),
    )


def _provider(prd: Segment, directory: AgencyDirectory) -> str:
    """The agency (or raw id) a PRD names: its ids, its organisation, its facility."""
    candidates = [_clean(c.get(1)) for c in prd.composites(7)]
    org = prd.composite(10)
    location = prd.composite(4)
    candidates += [
        _clean(org.get(10)),
        _clean(org.get(3)),
        _clean(location.get(4, 2)),
        _clean(location.get(4, 1)),
        _clean(org.get(1)),
    ]
    return directory.resolve(candidates)


def _notes(message: Message, rf1: Segment) -> tuple[str, ...]:
    notes: list[str] = []
    for nte in message.all("NTE"):
        text = "\n".join(v for r in range(len(nte.reps(3))) if (v := _clean(nte.get(3, rep=r))))
        if text:
            notes.append(text)
    comment = _clean(rf1.get(24))
    if comment:
        notes.append(comment)
    return tuple(notes)


def map_referral(
    message: Message,
    rf1: Segment,
    meta: RecordMeta,
    client: SourceKey,
    sender: SenderContext,
) -> Referral:
    """The canonical Referral of a REF^I12 (RF1, PRD, DG1, NTE)."""
    requester = ""
    performer = ""
    for prd in message.all("PRD"):
        roles = {_clean(c.get(1)).upper() for c in prd.composites(1)}
        if "RP" in roles and not requester:
            requester = _provider(prd, sender.directory)
        if "RT" in roles and not performer:
            performer = _provider(prd, sender.directory)
    status = _clean(rf1.get(1)).upper()
    priority = _clean(rf1.get(2)).upper()
    reason_code = rf1.composite(10)
    reason = _clean(rf1.get(14)) or _clean(reason_code.get(2)) or _clean(reason_code.get(1))
    service = _coded(rf1.composite(3))
    return Referral(
        meta=meta,
        client=client,
        status=REFERRAL_STATUS.get(status, status.lower()),
        priority=REFERRAL_PRIORITY.get(priority, priority.lower()),
        requester=requester or sender.owner,
        performer=performer,
        service_codes=(service,) if service else (),
        reason=reason,
        diagnoses=_diagnoses(message),
        notes=_notes(message, rf1),
        authored_on=parse_dtm(rf1.get(9), sender.zone) or parse_dtm(rf1.get(7), sender.zone),
    )


# ---- the message ---------------------------------------------------------------------------


def record_version(header: Header, received_at: datetime, zone: tzinfo | None = None) -> str:
    """MSH-7 as a sortable UTC ISO string (read in ``zone`` when it has no offset); the time
    of receipt when MSH-7 is unreadable."""
    stamp = parse_dtm(header.timestamp, zone)
    return sortable(stamp if stamp is not None else received_at)


def _meta(
    kind: str,
    key: SourceKey,
    header: Header,
    sender: SenderContext,
    restriction: Restriction,
    version: str,
) -> RecordMeta:
    return RecordMeta(
        kind=kind,
        key=key,
        owner=sender.owner,
        provenance=Provenance(
            source_system=f"hl7v2:{header.sender}",
            received_at=sender.received_at,
            payload_hash=sender.payload_hash,
        ),
        version=version,
        sensitivity=restriction.sensitivity,
        restricted=restriction.restricted,
    )


def map_message(message: Message, sender: SenderContext) -> list[Record]:
    """The canonical records of one supported message, Client first.

    Raises :class:`MappingError` for a missing PID, an empty PID-3 or a REF^I12 without RF1.
    """
    header = message.header
    event = message_event(message)
    pid = message.first("PID")
    if pid is None:
        raise MappingError("required segment PID is missing", code="100", segment="PID")
    patient, visit = message_restrictions(message)
    source = f"hl7:{sender.facility}"
    mrn, identifiers = _client_key(pid, sender.facility)
    client_key = SourceKey(source, mrn)
    version = record_version(header, sender.received_at, sender.zone)
    client_meta = _meta("client", client_key, header, sender, patient, version)
    records: list[Record] = [map_client(pid, client_meta, identifiers, sender.zone)]
    if header.message_type == "REF":
        rf1 = message.first("RF1")
        if rf1 is None:
            raise MappingError("required segment RF1 is missing", code="100", segment="RF1")
        referral_id = _clean(rf1.get(6)) or header.control_id
        key = SourceKey(source, referral_id)
        meta = _meta("referral", key, header, sender, patient | visit, version)
        records.append(map_referral(message, rf1, meta, client_key, sender))
    elif event in VISIT_EVENTS:
        pv1 = message.first("PV1")
        if pv1 is not None:
            visit_id = _clean(pv1.get(19)) or header.control_id
            key = SourceKey(source, visit_id)
            meta = _meta("encounter", key, header, sender, patient | visit, version)
            records.append(map_encounter(message, pv1, meta, client_key, event, sender.zone))
    return records


__all__ = [
    "PERSON_EVENTS",
    "STRUCTURES",
    "VISIT_EVENTS",
    "MappingError",
    "SenderContext",
    "map_client",
    "map_encounter",
    "map_message",
    "map_referral",
    "message_event",
    "record_version",
    "structure_of",
]
