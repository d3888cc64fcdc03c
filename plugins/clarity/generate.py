"""A deterministic, spec-valid synthetic HUD CSV export (every person invented).

``write_export(dir, clients=N, seed=…, version="2026")`` writes all 24 files: three
organisations (a fourth, a victim service provider, with ``vsp=True``), a project each with
its descriptor rows, ``N`` clients and one enrollment per client (a few households of three
with one head), and with ``details`` a sprinkling of exits, services, health/DV, income,
disability, employment and living-situation rows. Rows are generated one at a time from the
seed and the row number, so memory stays flat for any ``N``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path

from hub.synthetic import name_tag
from plugins.clarity.csvio import format_row, header_line
from plugins.clarity.spec import CSV_VERSION_LABEL, FILES, FY2024, FY2026, columns

GIVEN = ("Ana", "Ben", "Cara", "Dan", "Eve", "Fay", "Gus", "Hana", "Ivo", "June", "Kai", "Lea")
FAMILY = ("Alvarez", "Brooks", "Chen", "Diaz", "Evans", "Flores", "Garcia", "Huang", "Ito")
RACES = ("AmIndAKNative", "Asian", "BlackAfAmerican", "MidEastNAfrican", "NativeHIPacific", "White")
GENDERS = ("Woman", "Man", "NonBinary", "CulturallySpecific", "Transgender", "Questioning")
EXPORT_DATE = datetime(2025, 10, 15, 12, 0, 0)
FIRST_PERSON = 100000
FIRST_ENROLLMENT = 500000
FAMILY_EVERY = 20
"""Every 20th person starts a household of three (head + two members)."""


def _stamp(day: date, seconds: int) -> str:
    return (datetime(day.year, day.month, day.day) + timedelta(seconds=seconds % 86400)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )


class _Files:
    def __init__(self, out: Path, version: str) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.version = version

    def write(self, file: str, rows: Iterator[Mapping[str, str]]) -> int:
        cols = columns(self.version, file)
        names = [c.name for c in cols]
        quoted = [c.type == "S" for c in cols]
        count = 0
        with (self.out / f"{file}.csv").open("w", encoding="utf-8", newline="") as handle:
            handle.write(header_line(cols))
            for row in rows:
                handle.write(format_row([row.get(n, "") for n in names], quoted))
                count += 1
        return count


def write_export(
    out: str | Path,
    *,
    clients: int,
    seed: int = 1,
    version: str = "2026",
    implementation_id: str = "synthetic",
    export_date: datetime = EXPORT_DATE,
    details: bool = True,
    vsp: bool = False,
) -> Path:
    """Write the export to ``out`` (created) and return its path."""
    if version not in (FY2024, FY2026):
        raise ValueError(f"version must be 2024 or 2026, not {version!r}")
    path = Path(out)
    files = _Files(path, version)
    gen = _Generator(clients, seed, version, implementation_id, export_date, vsp)
    writers: dict[str, Callable[[], Iterator[dict[str, str]]]] = {
        "Export": gen.export,
        "Organization": gen.organizations,
        "User": gen.users,
        "Project": gen.projects,
        "Funder": gen.funders,
        "ProjectCoC": gen.project_cocs,
        "Inventory": gen.inventories,
        "HMISParticipation": gen.hmis_participation,
        "CEParticipation": gen.ce_participation,
        "Client": gen.clients,
        "Enrollment": gen.enrollments,
    }
    if details:
        writers.update(
            Exit=gen.exits,
            Services=gen.services,
            HealthAndDV=gen.health_dv,
            IncomeBenefits=gen.income,
            Disabilities=gen.disabilities,
            EmploymentEducation=gen.employment,
            CurrentLivingSituation=gen.living,
        )
    for file in FILES:
        files.write(file, writers[file]() if file in writers else iter(()))
    return path


class _Generator:
    def __init__(
        self, n: int, seed: int, version: str, impl: str, export_date: datetime, vsp: bool
    ) -> None:
        self.n = n
        self.seed = seed
        self.version = version
        self.impl = impl
        self.export_date = export_date
        self.export_id = f"gen{seed}"
        self.orgs = [("1", "Harbor Shelter Network", "0"), ("2", "Street Outreach Team", "0"),
                     ("3", "Housing First Partners", "0")]  # fmt: skip
        if vsp:
            self.orgs.append(("4", "Safe Harbor DV Services", "1"))
        self.project_ids = [f"{org}01" for org, _name, _vsp in self.orgs]
        self.stamp = _stamp(date(2020, 1, 2), 36000)

    def _meta(self, user: str = "1", stamp: str = "") -> dict[str, str]:
        stamp = stamp or self.stamp
        return {
            "DateCreated": stamp,
            "DateUpdated": stamp,
            "UserID": user,
            "ExportID": self.export_id,
        }

    def _rng(self, kind: int, i: int) -> random.Random:
        return random.Random(self.seed * 1_000_003 + kind * 100_000_007 + i)

    # ---- descriptors ---------------------------------------------------------------------

    def export(self) -> Iterator[dict[str, str]]:
        yield {
            "ExportID": self.export_id, "SourceType": "1", "SourceID": "XX-500",
            "SourceName": "Synthetic HMIS",
            "ExportDate": self.export_date.strftime("%Y-%m-%d %H:%M:%S"),
            "ExportStartDate": "2020-01-01", "ExportEndDate": self.export_date.strftime("%Y-%m-%d"),
            "SoftwareName": "CIE Hub synthetic", "SoftwareVersion": "1",
            "CSVVersion": CSV_VERSION_LABEL[self.version], "ExportPeriodType": "3",
            "ExportDirective": "2", "HashStatus": "1", "ImplementationID": self.impl,
        }  # fmt: skip

    def organizations(self) -> Iterator[dict[str, str]]:
        for org, name, vsp in self.orgs:
            yield {"OrganizationID": org, "OrganizationName": name, "VictimServiceProvider": vsp,
                   **self._meta()}  # fmt: skip

    def users(self) -> Iterator[dict[str, str]]:
        for uid, first, last in (("1", "Pat", "Admin"), ("2", "Sam", "Intake")):
            yield {"UserID": uid, "UserFirstName": first, "UserLastName": last,
                   "UserEmail": f"{first.lower()}@example.org", "DateCreated": self.stamp,
                   "DateUpdated": self.stamp, "ExportID": self.export_id}  # fmt: skip

    def projects(self) -> Iterator[dict[str, str]]:
        kinds = ("1", "4", "3", "1")
        for (org, name, _vsp), pid, ptype in zip(self.orgs, self.project_ids, kinds, strict=False):
            yield {"ProjectID": pid, "OrganizationID": org, "ProjectName": f"{name} project",
                   "OperatingStartDate": "2015-01-01", "ContinuumProject": "1",
                   "ProjectType": ptype, "HousingType": "1" if ptype != "4" else "",
                   "TargetPopulation": "4", **self._meta()}  # fmt: skip

    def funders(self) -> Iterator[dict[str, str]]:
        for pid in self.project_ids:
            yield {"FunderID": f"F{pid}", "ProjectID": pid, "Funder": "2", "GrantID": f"G-{pid}",
                   "StartDate": "2015-01-01", **self._meta()}  # fmt: skip

    def project_cocs(self) -> Iterator[dict[str, str]]:
        for pid in self.project_ids:
            yield {"ProjectCoCID": f"C{pid}", "ProjectID": pid, "CoCCode": "XX-500",
                   "Geocode": "069999", "Address1": f"{pid} Harbor St", "City": "San Diego",
                   "State": "CA", "ZIP": "92101", "GeographyType": "1", **self._meta()}  # fmt: skip

    def inventories(self) -> Iterator[dict[str, str]]:
        for pid in self.project_ids:
            yield {"InventoryID": f"I{pid}", "ProjectID": pid, "CoCCode": "XX-500",
                   "HouseholdType": "1", "Availability": "1", "UnitInventory": "20",
                   "BedInventory": "20", "OtherBedInventory": "20", "ESBedType": "1",
                   "InventoryStartDate": "2015-01-01", **self._meta()}  # fmt: skip

    def hmis_participation(self) -> Iterator[dict[str, str]]:
        for pid in self.project_ids:
            yield {"HMISParticipationID": f"H{pid}", "ProjectID": pid, "HMISParticipationType": "1",
                   "HMISParticipationStatusStartDate": "2015-01-01", **self._meta()}  # fmt: skip

    def ce_participation(self) -> Iterator[dict[str, str]]:
        for pid in self.project_ids:
            yield {"CEParticipationID": f"E{pid}", "ProjectID": pid, "AccessPoint": "0",
                   "ReceivesReferrals": "1", "CEParticipationStatusStartDate": "2015-01-01",
                   **self._meta()}  # fmt: skip

    # ---- people --------------------------------------------------------------------------

    def _household(self, i: int) -> tuple[str, str, int]:
        """(HouseholdID, RelationshipToHoH, index of the household's first member)."""
        start = i - i % FAMILY_EVERY
        if i - start < 3 and start + 2 < self.n:
            return f"HH{FIRST_PERSON + start}", "1" if i == start else "2", start
        return f"HH{FIRST_PERSON + i}", "1", i

    def _project(self, first: int) -> str:
        rng = self._rng(7, first)
        return self.project_ids[rng.randrange(len(self.project_ids))]

    def _entry(self, first: int) -> date:
        rng = self._rng(8, first)
        span = (self.export_date.date() - date(2020, 1, 1)).days - 200
        return date(2020, 1, 1) + timedelta(days=rng.randrange(span))

    def clients(self) -> Iterator[dict[str, str]]:
        for i in range(self.n):
            rng = self._rng(1, i)
            dob = date(1950, 1, 1) + timedelta(days=rng.randrange(20000))
            full_ssn = rng.random() < 0.7
            ssn = f"{rng.randrange(100, 666)}{rng.randrange(10, 99)}{rng.randrange(1000, 9999)}"
            row = {
                "PersonalID": str(FIRST_PERSON + i),
                "FirstName": rng.choice(GIVEN),
                "MiddleName": rng.choice(("", "", "J", "Lee")),
                "LastName": rng.choice(FAMILY) + name_tag(i),
                "NameDataQuality": "1",
                "SSN": ssn if full_ssn else "xxxxx" + ssn[-4:],
                "SSNDataQuality": "1" if full_ssn else "2",
                "DOB": dob.isoformat(),
                "DOBDataQuality": "1",
                "VeteranStatus": "1" if rng.random() < 0.08 else "0",
                **self._meta(stamp=_stamp(self._entry(i), i)),
            }
            race = rng.choice(RACES)
            for col in RACES:
                row[col] = "1" if col == race else "0"
            hispanic = "1" if rng.random() < 0.3 else "0"
            row["HispanicLatinaeo" if self.version == FY2024 else "HispanicLatinao"] = hispanic
            if self.version == FY2024:
                gender = rng.choice(GENDERS)
                for col in (*GENDERS, "DifferentIdentity"):
                    row[col] = "1" if col == gender else "0"
            else:
                row["Sex"] = rng.choice(("0", "1", "0", "1", "99"))
            yield row

    def enrollments(self) -> Iterator[dict[str, str]]:
        for i in range(self.n):
            household, relationship, first = self._household(i)
            entry = self._entry(first)
            rng = self._rng(2, i)
            row = {
                "EnrollmentID": str(FIRST_ENROLLMENT + i),
                "PersonalID": str(FIRST_PERSON + i),
                "ProjectID": self._project(first),
                "EntryDate": entry.isoformat(),
                "HouseholdID": household,
                "RelationshipToHoH": relationship,
                "EnrollmentCoC": "XX-500",
                "LivingSituation": rng.choice(("116", "101", "118", "215")),
                "LengthOfStay": "3",
                "DisablingCondition": rng.choice(("0", "1", "99")),
                **self._meta(stamp=_stamp(entry, 40000 + i)),
            }
            if self.version == FY2026:
                row["MentalHealthConsultation"] = rng.choice(("", "0", "1"))
            yield row

    def _enrolled(self, kind: int, share: float) -> Iterator[tuple[int, random.Random, date]]:
        for i in range(self.n):
            rng = self._rng(kind, i)
            if rng.random() < share:
                yield i, rng, self._entry(self._household(i)[2])

    def _link(self, i: int, day: date, offset: int) -> dict[str, str]:
        return {
            "EnrollmentID": str(FIRST_ENROLLMENT + i),
            "PersonalID": str(FIRST_PERSON + i),
            **self._meta(stamp=_stamp(day, offset + i)),
        }

    def exits(self) -> Iterator[dict[str, str]]:
        for i, rng, entry in self._enrolled(3, 0.3):
            leave = entry + timedelta(days=rng.randrange(1, 180))
            yield {"ExitID": f"X{FIRST_ENROLLMENT + i}", "ExitDate": leave.isoformat(),
                   "Destination": rng.choice(("410", "435", "116", "30")),
                   **self._link(i, leave, 1)}  # fmt: skip

    def services(self) -> Iterator[dict[str, str]]:
        for i, rng, entry in self._enrolled(4, 0.2):
            hopwa = rng.random() < 0.1
            yield {"ServicesID": f"S{FIRST_ENROLLMENT + i}", "DateProvided": entry.isoformat(),
                   "RecordType": "143" if hopwa else "200", "TypeProvided": "1" if hopwa else "200",
                   **self._link(i, entry, 2)}  # fmt: skip

    def health_dv(self) -> Iterator[dict[str, str]]:
        for i, rng, entry in self._enrolled(5, 0.1):
            survivor = rng.choice(("0", "1"))
            yield {"HealthAndDVID": f"D{FIRST_ENROLLMENT + i}",
                   "InformationDate": entry.isoformat(), "DomesticViolenceSurvivor": survivor,
                   "WhenOccurred": "4" if survivor == "1" else "",
                   "CurrentlyFleeing": rng.choice(("0", "1")) if survivor == "1" else "",
                   "MentalHealthStatus": rng.choice(("", "2", "3")), "DataCollectionStage": "1",
                   **self._link(i, entry, 3)}  # fmt: skip

    def income(self) -> Iterator[dict[str, str]]:
        for i, rng, entry in self._enrolled(6, 0.1):
            earned = rng.choice(("0", "1"))
            yield {"IncomeBenefitsID": f"B{FIRST_ENROLLMENT + i}",
                   "InformationDate": entry.isoformat(), "IncomeFromAnySource": earned,
                   "TotalMonthlyIncome": "850.00" if earned == "1" else "",
                   "Earned": earned, "EarnedAmount": "850.00" if earned == "1" else "",
                   "ADAP": rng.choice(("", "0", "1")), "DataCollectionStage": "1",
                   **self._link(i, entry, 4)}  # fmt: skip

    def disabilities(self) -> Iterator[dict[str, str]]:
        for i, rng, entry in self._enrolled(9, 0.1):
            kind = rng.choice(("5", "7", "8", "9", "10"))
            yield {"DisabilitiesID": f"Y{FIRST_ENROLLMENT + i}",
                   "InformationDate": entry.isoformat(),
                   "DisabilityType": kind, "DisabilityResponse": "1", "IndefiniteAndImpairs": "1",
                   "DataCollectionStage": "1", **self._link(i, entry, 5)}  # fmt: skip

    def employment(self) -> Iterator[dict[str, str]]:
        for i, rng, entry in self._enrolled(10, 0.05):
            yield {"EmploymentEducationID": f"W{FIRST_ENROLLMENT + i}",
                   "InformationDate": entry.isoformat(), "Employed": rng.choice(("0", "1")),
                   "DataCollectionStage": "1", **self._link(i, entry, 6)}  # fmt: skip

    def living(self) -> Iterator[dict[str, str]]:
        for i, rng, entry in self._enrolled(11, 0.05):
            yield {"CurrentLivingSitID": f"L{FIRST_ENROLLMENT + i}",
                   "InformationDate": entry.isoformat(),
                   "CurrentLivingSituation": rng.choice(("116", "101")),
                   "LocationDetails": "near the harbor", **self._link(i, entry, 7)}  # fmt: skip
