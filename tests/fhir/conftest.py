"""Fixtures for the FHIR tests: a real hub behind a real aiohttp server on 127.0.0.1:0.

``fhir_hub()`` yields a :class:`FhirHub` with bearer keys for the agencies of the shared
test config (hospital-x, cie-211, shelter-a, recovery-p2, safe-haven) and helpers to call
the API, post Patients and import MPA consents. Client data here is invented.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from consent import parse_consent_file
from hub.auth import new_key
from hub.context import HubContext
from hub.web import make_app

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"
FHIR_JSON = "application/fhir+json"
TIMEOUT = aiohttp.ClientTimeout(total=15)
AGENCIES = ("hospital-x", "cie-211", "shelter-a", "recovery-p2", "safe-haven")


def patient_json(
    mrn: str, family: str = "Testperson", given: str = "Ada", **extra: Any
) -> dict[str, Any]:
    """An invented Patient with a hospital MRN."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": MRN_SYSTEM,
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "value": mrn,
            }
        ],
        "name": [{"family": family, "given": [given]}],
        "birthDate": "1980-04-05",
        "gender": "female",
        **extra,
    }


@dataclass
class FhirHub:
    """A running hub with the FHIR API and a key per agency."""

    ctx: HubContext
    url: str
    session: aiohttp.ClientSession
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def fhir(self) -> str:
        """The FHIR base URL."""
        return f"{self.url}/fhir"

    def headers(self, agency: str, **extra: str) -> dict[str, str]:
        """Bearer auth (and FHIR JSON) headers for an agency."""
        return {"Authorization": f"Bearer {self.keys[agency]}", "Content-Type": FHIR_JSON, **extra}

    async def call(
        self,
        agency: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """One request; (status, decoded JSON body or None, headers)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(
            method,
            f"{self.fhir}/{path.lstrip('/')}",
            data=data,
            headers=self.headers(agency, **(headers or {})),
            params=params,
        ) as resp:
            text = await resp.read()
            decoded = json.loads(text) if text else None
            return resp.status, decoded, CIMultiDict(resp.headers)

    async def post_patient(self, agency: str, mrn: str, **extra: Any) -> str:
        """POST a Patient for ``agency``; the hub's Patient (person) id."""
        status, body, _ = await self.call(agency, "POST", "Patient", patient_json(mrn, **extra))
        assert status in (200, 201), body
        return str(body["id"])

    async def consent(self, mrn: str, **fields: Any) -> None:
        """Import an MPA consent for the client with this MRN."""
        record = {
            "id": fields.pop("id", f"mpa-{mrn}"),
            "client": {"system": MRN_SYSTEM, "value": mrn},
            "signed_on": "2025-01-15",
            "recorded_by": "hospital-x",
            **fields,
        }
        cfg = self.ctx.config
        records = parse_consent_file(
            json.dumps([record]), agencies=cfg.agencies, policy=cfg.consent_policy
        )
        await self.ctx.import_consents(records)


FhirHubFactory = Callable[..., Any]


@pytest.fixture
def fhir_hub(hub_factory: Callable[..., Any]) -> FhirHubFactory:
    """``async with fhir_hub(extra_toml, store="sqlite"|"postgresql") as hub`` → a
    :class:`FhirHub` (PostgreSQL tests skip when no server answers)."""

    @asynccontextmanager
    async def make(extra_toml: str = "", store: str = "sqlite") -> AsyncIterator[FhirHub]:
        async with hub_factory(extra_toml, store=store) as ctx:
            server = TestServer(make_app(ctx), host="127.0.0.1", port=0)
            await server.start_server()
            try:
                async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                    hub = FhirHub(ctx, str(server.make_url("")).rstrip("/"), session)
                    for agency in AGENCIES:
                        key, key_id, salt, digest = new_key()
                        await ctx.store.add_partner_key(key_id, agency, "partner", salt, digest)
                        hub.keys[agency] = key
                    yield hub
            finally:
                await server.close()

    return make
