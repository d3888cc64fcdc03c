"""Synthetic canonical records for the demo, the tests and the benchmarks.

Every person made here is invented. Builders are deterministic for the same arguments.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from hub.core.records import (
    Address,
    Client,
    ContactPoint,
    Encounter,
    Enrollment,
    HumanName,
    Identifier,
    Provenance,
    RecordMeta,
    SourceKey,
    SourceRow,
    payload_hash,
)

FIXED_TIME = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)

GIVEN = ["Ana", "Ben", "Cara", "Dan", "Eve", "Fay", "Gus", "Hana", "Ivo", "June", "Kai", "Lea"]
FAMILY = ["Alvarez", "Brooks", "Chen", "Diaz", "Evans", "Flores", "Garcia", "Huang", "Ito"]


def name_tag(i: int) -> str:
    """Letters that make invented person ``i``'s family name unique, e.g. 0 → ``"baa"``.

    Letters, not digits: identity matching compares the letters of names only, so
    ``"Brooks12"`` and ``"Brooks7"`` would be one name to it and send the invented people to
    the review list; with a tag each is a distinct person, as in a real roster.
    """
    out = ""
    i += 26 * 26
    while i:
        i, r = divmod(i, 26)
        out = "abcdefghijklmnopqrstuvwxyz"[r] + out
    return out


def meta(
    kind: str,
    source: str,
    source_id: str,
    owner: str,
    *,
    version: str = "2025-01-15T09:00:00",
    deleted: bool = False,
    sensitivity: frozenset[str] = frozenset(),
    restricted: bool = False,
    flags: frozenset[str] = frozenset(),
    received_at: datetime = FIXED_TIME,
) -> RecordMeta:
    """A record envelope with a provenance derived from the key."""
    return RecordMeta(
        kind=kind,
        key=SourceKey(source, source_id),
        owner=owner,
        provenance=Provenance(source, received_at, payload_hash(f"{source}/{source_id}/{version}")),
        version=version,
        deleted=deleted,
        sensitivity=sensitivity,
        restricted=restricted,
        flags=flags,
    )


def client(
    personal_id: str,
    *,
    given: str = "Ana",
    family: str = "Alvarez",
    birth_date: date | str | None = "derived",
    ssn: str | None = None,
    owner: str = "shelter-a",
    source: str = "hmis:demo",
    system: str | None = None,
    version: str = "2025-01-15T09:00:00",
    address: str = "100 Main St",
    restricted: bool = False,
) -> Client:
    """A client record with one name, one address and one phone.

    The birth date defaults to one derived from the id, so that two clients made with
    different ids are different people to identity matching.
    """
    if birth_date == "derived":
        birth_date = date(1960, 1, 1) + timedelta(
            days=int(payload_hash(personal_id)[:8], 16) % 15000
        )
    assert not isinstance(birth_date, str)
    return Client(
        meta=meta("client", source, personal_id, owner, version=version, restricted=restricted),
        identifiers=(Identifier(system or source, personal_id, "PI"),),
        names=(HumanName(family=family, given=(given,)),),
        birth_date=birth_date,
        ssn=ssn,
        telecom=(ContactPoint("phone", "619-555-0100"),),
        addresses=(Address(lines=(address,), city="San Diego", state="CA", postal_code="92101"),),
        sex="Female",
        race=("white",),
        veteran_status="0",
    )


def enrollment(
    enrollment_id: str,
    personal_id: str,
    *,
    owner: str = "shelter-a",
    source: str = "hmis:demo",
    project_id: str = "P1",
    entry: date = date(2024, 11, 1),
    version: str = "2025-01-15T09:00:00",
) -> Enrollment:
    """An enrollment of a client in a project."""
    return Enrollment(
        meta=meta("enrollment", source, enrollment_id, owner, version=version),
        client=SourceKey(source, personal_id),
        project_id=project_id,
        household_id=f"H{enrollment_id}",
        entry_date=entry,
        relationship_to_hoh="1",
        living_situation="116",
    )


def encounter(
    visit: str, mrn: str, *, owner: str = "hospital-x", source: str = "hl7:MERCY"
) -> Encounter:
    """An inpatient admission."""
    return Encounter(
        meta=meta("encounter", source, visit, owner),
        client=SourceKey(source, mrn),
        event="A01",
        patient_class="I",
        location="ER^1^A",
        visit_number=visit,
        admit_time=FIXED_TIME,
        facility="MERCY",
    )


def health_dv(
    row_id: str,
    personal_id: str,
    *,
    fleeing: bool,
    owner: str = "shelter-a",
    source: str = "hmis:demo",
) -> SourceRow:
    """A HealthAndDV-like row that says whether the client is currently fleeing DV."""
    from hub.core.records import FLAG_FLEEING_DV, FLAG_NOT_FLEEING_DV

    return SourceRow(
        meta=meta(
            "hmis.HealthAndDV",
            source,
            row_id,
            owner,
            flags=frozenset({FLAG_FLEEING_DV if fleeing else FLAG_NOT_FLEEING_DV}),
        ),
        fields={"DomesticViolenceSurvivor": "1", "CurrentlyFleeing": "1" if fleeing else "0"},
        categories={"DomesticViolenceSurvivor": "dv", "CurrentlyFleeing": "dv"},
        client=SourceKey(source, personal_id),
    )


def letters(n: int) -> str:
    """A distinct letters-only suffix for ``n`` (name matching ignores digits)."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return out


def population(count: int, seed: int = 7, source: str = "hmis:bench") -> list[Client]:
    """``count`` distinct invented clients (deterministic for a seed)."""
    rng = random.Random(seed)
    out: list[Client] = []
    for i in range(count):
        out.append(
            client(
                str(100000 + i),
                given=rng.choice(GIVEN) + letters(i),
                family=rng.choice(FAMILY),
                birth_date=date(
                    1950 + rng.randrange(60), 1 + rng.randrange(12), 1 + rng.randrange(28)
                ),
                source=source,
            )
        )
    return out
