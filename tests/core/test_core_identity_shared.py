"""An identity link undone by an administrator (the CLI: another process) takes effect in
a running hub at once: a consent that came with the unlinked record stops speaking for the
person it left."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pytest

from consent.parsing import parse_consent_file
from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.identity_admin import unlink
from hub.synthetic import client
from tests.conftest import fresh_pg_database, write_hub


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_an_unlink_in_another_process_withdraws_the_consent_it_carried(
    tmp_path: Path, store: str
) -> None:
    if store == "postgresql":
        async with fresh_pg_database() as url:
            await scenario(tmp_path, url)
    else:
        await scenario(tmp_path, None)


async def scenario(tmp_path: Path, url: str | None) -> None:
    cfg = load_config(write_hub(tmp_path, "", url))
    async with (
        open_context(cfg, make_plugins(cfg), migrate=True) as serving,
        open_context(cfg, make_plugins(cfg)) as admin,
    ):
        born = date(1970, 5, 5)
        await serving.engine.ingest(
            [client("1", birth_date=born), client("2", source="hmis:other", birth_date=born)]
        )
        consent = {
            "id": "m1",
            "client": {"system": "hmis:demo", "value": "1"},
            "signed_on": "2024-01-01",
            "networks": ["hmis", "cie"],
            "purposes": ["treatment"],
            "recorded_by": "shelter-a",
        }
        await serving.import_consents(
            parse_consent_file(
                orjson.dumps(consent).decode(), agencies=cfg.agencies, policy=cfg.consent_policy
            )
        )
        async with serving.store.transaction() as tx:
            other = await tx.get_record("client", "hmis:other", "2")
            first = await tx.get_record("client", "hmis:demo", "1")
        assert other is not None and first is not None
        person = other.person_id
        assert person is not None and first.person_id == person  # linked as one person
        released = await serving.engine.disclose_person(
            person, recipient="hospital-x", purpose="treatment"
        )
        assert {r.meta.key.id for r, _ in released} == {"1", "2"}

        # The administrator's CLI undoes the link of the consenting client's record.
        assert await unlink(admin, "client/hmis:demo/1") == person

        released = await serving.engine.disclose_person(
            person, recipient="hospital-x", purpose="treatment"
        )
        assert released == []
