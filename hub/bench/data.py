"""Deterministic invented data for the benchmarks: people, ADT messages, client records.

Every person is invented from short name lists and a seeded random generator: the same
seed gives byte-identical messages and records, so two runs (and the two sides of one
run) measure the same work. Nothing is downloaded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from hub.core.records import Client
from hub.synthetic import client as synthetic_client
from hub.synthetic import name_tag

GIVEN = (
    "Ada", "Bram", "Cleo", "Dario", "Esme", "Fenn", "Gala", "Hollis", "Ines", "Jory",
    "Kit", "Lune", "Mako", "Nell", "Oren", "Pia", "Quill", "Rue", "Soren", "Tamsin",
)  # fmt: skip
FAMILY = (
    "Ashgrove", "Brindle", "Corvane", "Dunmore", "Elsworth", "Fallow", "Greaves", "Harrow",
    "Ilsley", "Juniper", "Kestrel", "Lowther", "Marrow", "Norcott", "Oakhurst", "Penrose",
)  # fmt: skip
STREETS = ("Cedar", "Harbor", "Mesa", "Olive", "Palm", "Sage", "Willow", "Vista")

BENCH_FACILITY = "BENCHFAC"
"""MSH-4 of every benchmark ADT message (the ``[hl7]`` sender of the benchmark hubs)."""
MRN_SYSTEM = BENCH_FACILITY
"""The assigning authority of benchmark MRNs (PID-3 CX-4): consents name clients by it."""
HMIS_SOURCE = "hmis:bench"
"""Source (and identifier system) of benchmark client records."""


@dataclass(frozen=True, slots=True)
class Person:
    """An invented person: the fields an ADT message or a client record needs."""

    index: int
    mrn: str
    given: str
    middle: str
    family: str
    birth_date: date
    sex: str
    street: str
    zip_code: str
    phone: str


def people(count: int, seed: int) -> Iterator[Person]:
    """``count`` distinct invented people (deterministic for ``seed``)."""
    rng = random.Random(seed)
    for i in range(count):
        yield Person(
            index=i,
            mrn=f"MRN{i:08d}",
            given=rng.choice(GIVEN),
            middle=rng.choice(GIVEN)[0],
            family=rng.choice(FAMILY) + name_tag(i),
            birth_date=date(1945, 1, 1) + timedelta(days=rng.randrange(20_000)),
            sex=rng.choice("FM"),
            street=f"{rng.randrange(100, 9999)} {rng.choice(STREETS)} St",
            zip_code=f"921{rng.randrange(100):02d}",
            phone=f"555{rng.randrange(10_000):04d}",
        )


def adt_a01(person: Person, control_id: str, at: datetime) -> str:
    """An ADT^A01 (admit) message for ``person``: MSH EVN PID NK1 PV1 PV2 DG1 AL1 IN1.

    About 900 bytes, the size of a typical admit from a hospital EHR. Segments end in CR.
    """
    ts = at.strftime("%Y%m%d%H%M%S")
    dob = person.birth_date.strftime("%Y%m%d")
    segments = (
        f"MSH|^~\\&|BENCHEHR|{BENCH_FACILITY}|HUB|CIE|{ts}||ADT^A01^ADT_A01|{control_id}|P|2.5"
        "|||AL|NE",
        f"EVN|A01|{ts}|||OP123^Operator^Ona",
        f"PID|1||{person.mrn}^^^{MRN_SYSTEM}^MR||{person.family}^{person.given}^{person.middle}"
        f"||{dob}|{person.sex}||2106-3^White^CDCREC|{person.street}^^San Diego^CA^"
        f"{person.zip_code}^USA^H||^PRN^PH^^1^619^{person.phone}|||S||"
        f"ACCT{person.index:08d}|||||||||||N",
        f"NK1|1|{person.family}^Sam|SIB^Sibling^HL70063|{person.street}^^San Diego^CA^"
        f"{person.zip_code}|^PRN^PH^^1^619^5550123",
        f"PV1|1|I|MED^{300 + person.index % 50}^A^{BENCH_FACILITY}||||1234^Attend^Alex^^^MD|"
        f"||MED||||7|||1234^Attend^Alex^^^MD|IN|V{person.index:08d}|SELF||||||||||||||||||"
        f"|||||{ts}",
        "PV2|||R51^Headache^I10",
        "DG1|1||R51^Headache^I10||20250301|A",
        "AL1|1|DA|70618^Penicillin^RXNORM|MO|Hives",
        "IN1|1|BCBS^Blue Plan|BC123|Blue Cross||||GRP99||||||||"
        f"{person.family}^{person.given}|SEL|{dob}",
    )
    return "\r".join(segments) + "\r"


START = datetime(2025, 3, 1, 8, 0, 0)
"""The event time of the first benchmark message; each next one is a second later."""


def adt_messages(count: int, seed: int, prefix: str = "B") -> Iterator[bytes]:
    """``count`` ADT^A01 messages, each for a different person, as UTF-8 bytes."""
    for person in people(count, seed):
        at = START + timedelta(seconds=person.index)
        yield adt_a01(person, f"{prefix}{person.index:08d}", at).encode("utf-8")


def write_messages(path: Path, count: int, seed: int) -> int:
    """Write ``count`` ADT messages to ``path``, one per line (segments end in CR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("wb") as out:
        for message in adt_messages(count, seed):
            out.write(message + b"\n")
            written += 1
    return written


def read_messages(path: Path) -> list[bytes]:
    """The messages :func:`write_messages` wrote."""
    return [line for line in path.read_bytes().split(b"\n") if line]


def clients(count: int, seed: int, owner: str) -> list[Client]:
    """``count`` canonical client records owned by ``owner`` (identifier system
    :data:`HMIS_SOURCE`, value = the person's MRN)."""
    return [
        synthetic_client(
            p.mrn,
            given=p.given,
            family=p.family,
            birth_date=p.birth_date,
            owner=owner,
            source=HMIS_SOURCE,
            system=HMIS_SOURCE,
            address=p.street,
        )
        for p in people(count, seed)
    ]
