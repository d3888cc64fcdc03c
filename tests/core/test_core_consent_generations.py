"""Consents a process stores itself are in use at once, and are not read back and parsed
again at its next transaction; consents another process stored meanwhile still are."""

from __future__ import annotations

from pathlib import Path

import orjson

from consent.model import ConsentRecord
from consent.parsing import parse_consent_file
from hub.config import HubConfig, load_config
from hub.context import HubContext, make_plugins, open_context
from tests.conftest import write_hub


def consent(cid: str, value: str, cfg: HubConfig) -> list[ConsentRecord]:
    body = {
        "id": cid,
        "client": {"system": "hmis:demo", "value": value},
        "signed_on": "2024-01-01",
        "networks": ["hmis", "cie"],
        "purposes": ["treatment"],
        "recorded_by": "shelter-a",
    }
    return parse_consent_file(
        orjson.dumps(body).decode(), agencies=cfg.agencies, policy=cfg.consent_policy
    )


def known(ctx: HubContext) -> set[str]:
    return {c.id for c in ctx.gate.all_consents()}


async def test_own_consents_are_not_read_back_but_others_are(tmp_path: Path) -> None:
    cfg = load_config(write_hub(tmp_path, ""))
    async with (
        open_context(cfg, make_plugins(cfg), migrate=True) as serving,
        open_context(cfg, make_plugins(cfg)) as admin,
    ):
        await serving.import_consents(consent("m1", "1", cfg))
        assert known(serving) == {"m1"}
        assert await serving.reload_consents() == 0  # nothing stored that it does not hold

        # Another process stores one; then this one stores another: the other's is still
        # read at the next transaction (with this one's, which came after it).
        await admin.import_consents(consent("m2", "2", cfg))
        await serving.import_consents(consent("m3", "3", cfg))
        assert known(serving) == {"m1", "m3"}
        assert await serving.reload_consents() == 2
        assert known(serving) == {"m1", "m2", "m3"}
        assert await serving.reload_consents() == 0
