"""ARV (access restriction) segments → consent sensitivity on the records of a message.

The hub never drops a restriction silently. Each ARV-3 restriction value is read as a code
(HL7 table 0717, or an HL7 v3 sensitivity / confidentiality code):

* a code naming a sensitive kind of data adds that consent category to the record's
  ``sensitivity`` (released only when the client's consent opts it in):
  ``ETH``/``SUD``/``SUBSTANCE`` → ``substance_use``, ``HIV`` → ``hiv``,
  ``PSY``/``PSYTHPN``/``MH``/``BH`` → ``behavioral_health``, ``SDV``/``DV`` → ``dv``;
* ``NO`` (no restriction) and ``N`` (normal confidentiality) restrict nothing;
* any other value (``ALL``, ``DEM``, ``LOC``, ``STD``, ``SMD``, ``DRG``, ``R``, ``V``, a local
  code, or an empty ARV-3) marks the record ``restricted``: it never leaves the sending agency,
  because the hub cannot tell which parts the restriction covers — failing closed is the only
  choice that honours every restriction;
* an ARV whose action (ARV-2) is ``D`` (delete) lifts a restriction and adds nothing.

ARV-6 (restriction period) is not used to drop a restriction: the flag is fixed when the record
version is stored, so an end date would silently expire data into feeds later.

Position matters: an ARV before the PV1 applies to the patient (every record of the message);
an ARV after the PV1 applies to the visit (the encounter or referral, not the client).
"""

from __future__ import annotations

from dataclasses import dataclass

from plugins.hl7.parser import Message, Segment

SENSITIVE_CODES: dict[str, str] = {
    "ETH": "substance_use",
    "SUD": "substance_use",
    "SUBSTANCE": "substance_use",
    "HIV": "hiv",
    "PSY": "behavioral_health",
    "PSYTHPN": "behavioral_health",
    "MH": "behavioral_health",
    "BH": "behavioral_health",
    "SDV": "dv",
    "DV": "dv",
}
"""ARV-3 codes that map to one sensitive consent category."""

UNRESTRICTED_CODES: frozenset[str] = frozenset({"NO", "N"})
"""ARV-3 codes that restrict nothing."""


@dataclass(frozen=True, slots=True)
class Restriction:
    """What a set of ARV segments means for a record."""

    sensitivity: frozenset[str] = frozenset()
    restricted: bool = False

    def __or__(self, other: Restriction) -> Restriction:
        return Restriction(
            self.sensitivity | other.sensitivity, self.restricted or other.restricted
        )


NONE = Restriction()


def restriction_of(segment: Segment) -> Restriction:
    """The restriction one ARV segment imposes."""
    if segment.get(2).strip().upper() == "D":
        return NONE
    codes = [c.get(1).strip().upper() for c in segment.composites(3)]
    codes = [c for c in codes if c]
    if not codes:
        return Restriction(restricted=True)
    sensitivity: set[str] = set()
    restricted = False
    for code in codes:
        category = SENSITIVE_CODES.get(code)
        if category is not None:
            sensitivity.add(category)
        elif code not in UNRESTRICTED_CODES:
            restricted = True
    return Restriction(frozenset(sensitivity), restricted)


def message_restrictions(message: Message) -> tuple[Restriction, Restriction]:
    """(patient-level, visit-level) restrictions of a message's ARV segments."""
    patient = NONE
    visit = NONE
    after_visit = False
    for seg in message.segments:
        sid = seg.id
        if sid == "PV1":
            after_visit = True
        elif sid == "ARV":
            if after_visit:
                visit = visit | restriction_of(seg)
            else:
                patient = patient | restriction_of(seg)
    return patient, visit
