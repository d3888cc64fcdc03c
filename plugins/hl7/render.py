"""Canonical records → HL7 v2 messages for partners (the redacted payload the gate released).

* Client → ``ADT^A31^ADT_A05`` (update person; feed option ``client_event = "A08"`` sends
  ``ADT^A08^ADT_A01`` with a ``PV1|1|N`` instead);
* Encounter → ``ADT^A08^ADT_A01`` (PID carries the client's source key, PV1 the visit);
* Referral → ``REF^I12^REF_I12`` (RF1, PRD RP/RT, PID, DG1, NTE).

Every value goes through :func:`plugins.hl7.escaping.escape`. Fields the gate withheld are
simply absent from the record and so empty in the message. MSH-10 is derived from the
delivery's idempotency key and MSH-7 from the record version (:func:`record_time`), so a
re-delivery is the same message and the receiver can de-duplicate it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.plugin_api import (
    Address,
    Client,
    ContactPoint,
    Encounter,
    HumanName,
    Identifier,
    Record,
    Referral,
    SourceKey,
)
from plugins.hl7.dtm import format_dtm, format_partial_date
from plugins.hl7.escaping import DEFAULT_ENCODING, escape

_SEX = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
_NAME_USE = {"official": "L", "usual": "D", "maiden": "M", "nickname": "N", "anonymous": "S"}
_ADDRESS_USE = {"home": "H", "work": "B", "temp": "C", "old": "BA"}
_PHONE_USE = {"home": "PRN", "work": "WPN", "temp": "VHN", "mobile": "PRN"}
_EQUIPMENT = {"phone": "PH", "fax": "FX", "pager": "BP", "email": "Internet"}
_STATUS = {"requested": "P", "accepted": "A", "rejected": "R", "cancelled": "E"}
_PRIORITY = {"stat": "S", "asap": "A", "routine": "R", "urgent": "T"}

ENC = DEFAULT_ENCODING


class RenderError(ValueError):
    """A record the HL7 sink cannot express (a kind without an HL7 message)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The MSH of an outbound message: who sends it to whom, its control id and version."""

    control_id: str
    sending_application: str = "CIEHUB"
    sending_facility: str = "CIEHUB"
    receiving_application: str = ""
    receiving_facility: str = ""
    version: str = "2.5.1"
    processing_id: str = "P"
    timestamp: datetime | None = None

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], control_id: str, recipient: str = ""
    ) -> Envelope:
        """An envelope from a feed's options (``sending_application``, ``version`` …)."""

        def opt(name: str, default: str) -> str:
            value = options.get(name, default)
            return str(value) if value is not None else default

        return cls(
            control_id=control_id,
            sending_application=opt("sending_application", "CIEHUB"),
            sending_facility=opt("sending_facility", "CIEHUB"),
            receiving_application=opt("receiving_application", ""),
            receiving_facility=opt("receiving_facility", recipient),
            version=opt("version", "2.5.1"),
            processing_id=opt("processing_id", "P"),
        )


def _e(value: str) -> str:
    return escape(value, ENC)


def _comps(*values: str) -> str:
    """Components joined with ``^`` (each escaped), trailing empties dropped."""
    out = [_e(v) for v in values]
    while out and not out[-1]:
        out.pop()
    return "^".join(out)


def _reps(values: Iterable[str]) -> str:
    return "~".join(v for v in values if v)


def _segment(sid: str, fields: Sequence[str]) -> str:
    items = list(fields)
    while items and not items[-1]:
        items.pop()
    return "|".join([sid, *items])


def _fields(count: int, values: Mapping[int, str]) -> list[str]:
    """Fields 1..count with the given values (by position), the rest empty."""
    return [values.get(i, "") for i in range(1, count + 1)]


def _msh(env: Envelope, message_type: str) -> str:
    stamp = format_dtm((env.timestamp or datetime.now(UTC)).astimezone(UTC))
    fields = [
        "^~\\&",
        _comps(env.sending_application),
        _comps(env.sending_facility),
        _comps(env.receiving_application),
        _comps(env.receiving_facility),
        stamp,
        "",
        message_type,
        _e(env.control_id),
        _e(env.processing_id),
        _e(env.version),
        "",
        "",
        "",
        "",
        "",
        "UNICODE UTF-8",
    ]
    return "MSH|" + "|".join(fields)


# ---- PID -----------------------------------------------------------------------------------


def _cx(ident: Identifier) -> str:
    return _comps(ident.value, "", "", ident.system, ident.type)


def _xpn(name: HumanName) -> str:
    given = list(name.given)
    first = given[0] if given else ""
    middle = " ".join(given[1:])
    use = _NAME_USE.get(name.use, "")
    return _comps(name.family, first, middle, name.suffix, name.prefix, "", use)


def _xad(address: Address) -> str:
    lines = list(address.lines)
    return _comps(
        lines[0] if lines else "",
        " ".join(lines[1:]),
        address.city,
        address.state,
        address.postal_code,
        address.country,
        _ADDRESS_USE.get(address.use, ""),
    )


def _xtn(point: ContactPoint) -> str:
    equipment = "CP" if point.use == "mobile" else _EQUIPMENT.get(point.system, "PH")
    if point.system == "email":
        return _comps("", "NET", "Internet", point.value)
    return _comps(
        "", _PHONE_USE.get(point.use, "PRN"), equipment, "", "", "", "", "", "", "", "", point.value
    )


def _client_key_cx(key: SourceKey) -> str:
    return _comps(key.id, "", "", key.source, "PI")


def pid_of_client(client: Client) -> str:
    """The PID segment of a (redacted) client record."""
    ids = [_client_key_cx(client.meta.key)]
    ids += [
        _cx(i)
        for i in client.identifiers
        if (i.value, i.system) != (client.meta.key.id, client.meta.key.source)
    ]
    home = [_xtn(t) for t in client.telecom if t.use != "work"]
    work = [_xtn(t) for t in client.telecom if t.use == "work"]
    deceased_time = ""
    deceased_flag = ""
    if client.deceased in ("true", "false", "Y", "N"):  # Y/N: as hubs once stored it
        deceased_flag = "Y" if client.deceased in ("true", "Y") else "N"
    elif client.deceased:
        try:
            deceased_time = format_dtm(datetime.fromisoformat(client.deceased))
            deceased_flag = "Y"
        except ValueError:
            deceased_flag = "Y"
    values = {
        1: "1",
        3: _reps(ids),
        5: _reps(_xpn(n) for n in client.names),
        7: format_partial_date(client.birth_date, client.birth_date_precision)
        if client.birth_date
        else "",
        8: _e(_SEX.get(client.sex, client.sex[:1].upper() if client.sex else "")),
        10: _reps(_comps(r) for r in client.race),
        11: _reps(_xad(a) for a in client.addresses),
        13: _reps(home),
        14: _reps(work),
        19: _e(client.ssn or ""),
        22: _comps(client.ethnicity),
        29: deceased_time,
        30: deceased_flag,
    }
    return _segment("PID", _fields(30, values))


def pid_of_key(key: SourceKey) -> str:
    """A PID naming only the client's source key (for encounters and referrals)."""
    return _segment("PID", _fields(3, {1: "1", 3: _client_key_cx(key)}))


# ---- other segments ------------------------------------------------------------------------


def _coded(text: str) -> str:
    """``system|code|display`` (the canonical form) as a CWE."""
    parts = text.split("|")
    if len(parts) == 3:
        system, code, display = parts
        return _comps(code, display, system)
    return _comps("", text)


def _dg1s(diagnoses: Sequence[str]) -> list[str]:
    return [
        _segment("DG1", _fields(6, {1: str(i), 3: _coded(d), 6: "W"}))
        for i, d in enumerate(diagnoses, start=1)
    ]


def _pl(location: str, facility: str) -> str:
    parts = [p.strip() for p in location.split(" / ")] if location else []
    while len(parts) < 3:
        parts.append("")
    return _comps(
        parts[0], parts[1], " / ".join(parts[2:]) if len(parts) > 3 else parts[2], facility
    )


def _pv1(encounter: Encounter) -> str:
    values = {
        1: "1",
        2: _e(encounter.patient_class or "U"),
        3: _pl(encounter.location, encounter.facility),
        # Without a visit number the record's own key stands in, so the partner can tell
        # later versions of this encounter from new encounters.
        19: _comps(encounter.visit_number or encounter.meta.key.id),
        44: format_dtm(encounter.admit_time) if encounter.admit_time else "",
        45: format_dtm(encounter.discharge_time) if encounter.discharge_time else "",
    }
    return _segment("PV1", _fields(45, values))


def _evn(event: str, env: Envelope) -> str:
    stamp = format_dtm((env.timestamp or datetime.now(UTC)).astimezone(UTC))
    version = tuple(int(p) for p in env.version.split(".")[:2] if p.isdigit())
    code = "" if version >= (2, 7) else event  # EVN-1 is withdrawn from v2.7 on
    return _segment("EVN", [code, stamp])


# ---- messages ------------------------------------------------------------------------------


def render_client(client: Client, env: Envelope, event: str = "A31") -> str:
    """``ADT^A31^ADT_A05`` (or ``ADT^A08^ADT_A01``) for a client record."""
    structure = "ADT_A05" if event in ("A28", "A31") else "ADT_A01"
    segments = [
        _msh(env, f"ADT^{event}^{structure}"),
        _evn(event, env),
        pid_of_client(client),
        _segment("PV1", ["1", "N"]),
    ]
    return "\r".join(segments) + "\r"


def render_encounter(encounter: Encounter, env: Envelope) -> str:
    """``ADT^A08^ADT_A01`` for an encounter record."""
    if encounter.client is None:
        raise RenderError("encounter has no client key; cannot fill PID-3")
    segments = [
        _msh(env, "ADT^A08^ADT_A01"),
        _evn("A08", env),
        pid_of_key(encounter.client),
        _pv1(encounter),
        *_dg1s(encounter.diagnoses),
    ]
    return "\r".join(segments) + "\r"


def _prd(role: str, name: str, party: str) -> str:
    return _segment("PRD", _fields(7, {1: _comps(role, name, "HL70286"), 7: _comps(party)}))


def render_referral(referral: Referral, env: Envelope) -> str:
    """``REF^I12^REF_I12`` for a referral record."""
    if referral.client is None:
        raise RenderError("referral has no client key; cannot fill PID-3")
    rf1 = {
        1: _comps(_STATUS.get(referral.status, referral.status[:1].upper()), "", "HL70283")
        if referral.status
        else "",
        2: _comps(_PRIORITY.get(referral.priority, referral.priority[:1].upper()))
        if referral.priority
        else "",
        3: _coded(referral.service_codes[0]) if referral.service_codes else "",
        6: _comps(referral.meta.key.id),
        9: format_dtm(referral.authored_on) if referral.authored_on else "",
        14: _e(referral.reason),
    }
    segments = [_msh(env, "REF^I12^REF_I12"), _segment("RF1", _fields(14, rf1))]
    if referral.requester:
        segments.append(_prd("RP", "Referring Provider", referral.requester))
    if referral.performer:
        segments.append(_prd("RT", "Referred to Provider", referral.performer))
    segments.append(pid_of_key(referral.client))
    segments += _dg1s(referral.diagnoses)
    segments += [
        _segment("NTE", [str(i), "", _e(note)]) for i, note in enumerate(referral.notes, start=1)
    ]
    return "\r".join(segments) + "\r"


def record_time(record: Record) -> datetime:
    """When this version of the record was made: its version when that is an ISO date-time
    (UTC when it names no offset), else the time the hub received it.

    Both are fixed for a record version, so a re-delivery renders the same message (the
    receiver sees a duplicate) and a late re-delivery of an older version never carries a
    newer MSH-7 than the version that replaced it.
    """
    try:
        stamp = datetime.fromisoformat(record.meta.version)
    except ValueError:
        stamp = record.meta.provenance.received_at
    if stamp.year < 1900:  # a sequence number that happens to read as a date
        stamp = record.meta.provenance.received_at
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def render_record(record: Record, env: Envelope, options: Mapping[str, Any] | None = None) -> str:
    """The HL7 message for one record; raise :class:`RenderError` for other kinds.

    Without an envelope timestamp, MSH-7 and EVN-2 are :func:`record_time`, never the clock.
    """
    if env.timestamp is None:
        env = dataclasses.replace(env, timestamp=record_time(record))
    if isinstance(record, Client):
        event = str((options or {}).get("client_event", "A31")).upper()
        if event not in ("A31", "A08", "A28"):
            raise RenderError(f"feed option client_event {event!r} is not A31, A28 or A08")
        return render_client(record, env, event)
    if isinstance(record, Encounter):
        return render_encounter(record, env)
    if isinstance(record, Referral):
        return render_referral(record, env)
    raise RenderError(f"no HL7 v2 message for record kind {record.meta.kind!r}")
