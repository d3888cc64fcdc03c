"""``hub bench`` benchmarks of the FHIR plugin's hot paths: Bundle ingest, Patient rendering.

* ``fhir.ingest.bundle`` — a transaction Bundle of N Patients from ``bench-hospital``
  through :func:`plugins.fhir.ingest.ingest_bundle` (parse once, validate once with the
  ``fhir.resources`` R4B models, map, identity, gate, one commit) on a fresh hub with a feed
  and a consent per patient, its validation worker running as in ``hub serve`` (the
  Bundle is validated there while the hub maps and stores it). Floor: ``fhir.resources``
  R4B validation of the same Bundle alone (``orjson.loads`` + ``Bundle.model_validate``).
* ``fhir.render.patient`` — what the ``fhir-push`` sink does per released Client record:
  :func:`plugins.fhir.outbound.render_record` (canonical payload → Patient entry dict) and
  ``orjson.dumps``. Floor: ``orjson.dumps`` of the same Patient dicts, already built.

(``plugins/fhir/bench.py`` holds the FHIR engineer's own figure helpers used by its tests.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import orjson

from hub.bench.data import Person, clients, people
from hub.bench.hubs import HOSPITAL, PARTNER, add_consents, open_bench_hub
from hub.bench.model import Benchmark, Measured, Params, Target

BUNDLE_FILE = "bundle.json"
WARMUP_FILE = "warmup.json"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.1"
"""An invented assigning authority for the benchmark hospital's MRNs."""

FHIR_TOML = f"""
[[feeds]]
name = "bench-fhir-to-partner"
recipient = "{PARTNER}"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
"""


def patient(person: Person) -> dict[str, Any]:
    """An invented Patient as a hospital would send it (MRN, name, contact, address)."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": MRN_SYSTEM,
                "value": person.mrn,
            }
        ],
        "active": True,
        "name": [
            {"use": "official", "family": person.family, "given": [person.given, person.middle]}
        ],
        "telecom": [{"system": "phone", "value": f"619-{person.phone}", "use": "home"}],
        "gender": "female" if person.sex == "F" else "male",
        "birthDate": person.birth_date.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [person.street],
                "city": "San Diego",
                "state": "CA",
                "postalCode": person.zip_code,
                "country": "USA",
            }
        ],
    }


def bundle(patients: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle that POSTs each Patient."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                "resource": p,
                "request": {"method": "POST", "url": "Patient"},
            }
            for i, p in enumerate(patients)
        ],
    }


def prepare_bundle(params: Params) -> None:
    """Write the Bundle of ``size`` Patients, and a one-Patient warm-up Bundle."""
    everyone = list(people(params.size + 1, params.seed))
    main = bundle(patient(p) for p in everyone[:-1])
    warmup = bundle(patient(p) for p in everyone[-1:])
    (params.data_dir / BUNDLE_FILE).write_bytes(orjson.dumps(main))
    (params.data_dir / WARMUP_FILE).write_bytes(orjson.dumps(warmup))


class IngestPath:
    """``ingest_bundle`` on a fresh hub with a feed and a consent per patient."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._stack = contextlib.AsyncExitStack()
        self._ctx: Any = None
        self._body = b""

    async def setup(self) -> None:
        """Hub, consents, one warm-up Bundle of one other patient."""
        from plugins.fhir.ingest import ingest_bundle
        from plugins.fhir.validation_pool import ValidationPool

        self._ctx = await self._stack.enter_async_context(
            open_bench_hub(self.params.workdir / "hub", FHIR_TOML)
        )
        refs = [(MRN_SYSTEM, p.mrn) for p in people(self.params.size + 1, self.params.seed)]
        await add_consents(self._ctx, refs, recorded_by=HOSPITAL)
        # As in ``hub serve``: the [fhir] validation workers (default settings) run.
        for service in self._ctx.plugins.hook.hub_services(ctx=self._ctx):
            for started in service:
                if isinstance(started, ValidationPool):
                    await started.start()
                    self._stack.push_async_callback(started.stop)
        await ingest_bundle(self._ctx, HOSPITAL, (self.params.data_dir / WARMUP_FILE).read_bytes())
        self._body = (self.params.data_dir / BUNDLE_FILE).read_bytes()

    async def run(self) -> Measured:
        """Ingest the Bundle; items = Patients stored."""
        from plugins.fhir.ingest import ingest_bundle

        cpu = time.process_time()
        response = await ingest_bundle(self._ctx, HOSPITAL, self._body)
        cpu = time.process_time() - cpu
        created = sum(
            1
            for e in response.get("entry", [])
            if str(e.get("response", {}).get("status", "")).startswith("2")
        )
        if created != self.params.size:
            raise RuntimeError(f"{created} of {self.params.size} Patients were stored")
        # The validation's CPU is spent in the worker process: this is the hub process's own.
        return Measured(created, notes={"hub_process_cpu_us_per_item": cpu / created * 1e6})

    async def close(self) -> None:
        """Close the hub."""
        await self._stack.aclose()


class ValidateFloor:
    """``orjson.loads`` + ``fhir.resources`` R4B ``Bundle.model_validate`` of the same bytes."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._body = b""

    async def setup(self) -> None:
        """Read the Bundle; validate the warm-up Bundle once (builds the models)."""
        from fhir.resources.R4B.bundle import Bundle

        Bundle.model_validate(orjson.loads((self.params.data_dir / WARMUP_FILE).read_bytes()))
        self._body = (self.params.data_dir / BUNDLE_FILE).read_bytes()

    async def run(self) -> Measured:
        """Validate the Bundle; items = its entries."""
        from fhir.resources.R4B.bundle import Bundle

        model = Bundle.model_validate(orjson.loads(self._body))
        return Measured(len(model.entry or ()))

    async def close(self) -> None:
        """Nothing to release."""


class RenderPath:
    """``render_record`` + ``orjson.dumps`` per released Client record."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._work: list[tuple[Any, dict[str, Any]]] = []

    async def setup(self) -> None:
        """Client records and their payloads (what the gate would release), one warm-up."""
        from hub.core.serialize import record_payload
        from plugins.fhir.outbound import render_record

        records = clients(self.params.size, self.params.seed, HOSPITAL)
        self._work = [(r, record_payload(r)) for r in records]
        render_record(*self._work[0])

    async def run(self) -> Measured:
        """Render and serialise every record; items = Patients."""
        from plugins.fhir.outbound import render_record

        dumps = orjson.dumps
        size = 0
        for record, payload in self._work:
            size += len(dumps(render_record(record, payload)))
        return Measured(len(self._work), notes={"bytes": size})

    async def close(self) -> None:
        """Nothing to release."""


class DumpsFloor:
    """``orjson.dumps`` of the same Patient entry dicts, rendered beforehand."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._dicts: list[Any] = []

    async def setup(self) -> None:
        """Render every record (not timed)."""
        from hub.core.serialize import record_payload
        from plugins.fhir.outbound import render_record

        records = clients(self.params.size, self.params.seed, HOSPITAL)
        self._dicts = [render_record(r, record_payload(r)) for r in records]

    async def run(self) -> Measured:
        """Serialise every dict; items = Patients."""
        dumps = orjson.dumps
        size = 0
        for entry in self._dicts:
            size += len(dumps(entry))
        return Measured(len(self._dicts), notes={"bytes": size})

    async def close(self) -> None:
        """Nothing to release."""


def benchmarks() -> list[Benchmark]:
    """The FHIR plugin's benchmarks (for the ``hub_benchmarks`` hook)."""
    return [
        Benchmark(
            name="fhir.ingest.bundle",
            title="FHIR transaction Bundle of Patients, ingest",
            unit="resource",
            path=IngestPath,
            floor=ValidateFloor,
            floor_title="fhir.resources R4B Bundle validation alone",
            prepare=prepare_bundle,
            sizes={"tiny": (50,), "small": (1_000,), "large": (1_000, 5_000)},
            target=Target(min_ratio=0.6, applies_at=1_000),
            note="one Bundle, one transaction; identity, gate and outbox included",
        ),
        Benchmark(
            name="fhir.render.patient",
            title="Patient rendering to JSON (fhir-push)",
            unit="resource",
            path=RenderPath,
            floor=DumpsFloor,
            floor_title="orjson.dumps of the same Patient dicts",
            sizes={"tiny": (2_000,), "small": (20_000,), "medium": (50_000,), "large": (200_000,)},
            target=Target(min_rate=20_000),
        ),
    ]
