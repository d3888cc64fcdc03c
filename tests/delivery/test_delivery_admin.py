"""The outbox admin API and ``hub outbox``: who sees what, retry, dead letters, replay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson

from consent.parsing import parse_consent_file
from hub.config import load_config
from hub.context import HubContext, make_plugins, open_context

FEEDS = """
[[feeds]]
name = "to-211"
recipient = "cie-211"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
options = { url = "http://127.0.0.1:9/hook", secret_envs = ["HUB_TEST_HOOK_SECRET"] }

[[feeds]]
name = "to-hospital"
recipient = "hospital-x"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
options = { url = "http://127.0.0.1:9/hook", secret_envs = ["HUB_TEST_HOOK_SECRET"] }
"""


async def seed(ctx: HubContext, h: Any) -> dict[str, int]:
    """Five clients for cie-211 settled in each status, and one entry for the hospital."""
    values = ["A1", "A2", "A3", "A4", "A5"]
    text = json.dumps([h.consent_json(v) for v in values])
    await ctx.import_consents(
        parse_consent_file(text, agencies=ctx.config.agencies, policy=ctx.config.consent_policy)
    )
    await ctx.engine.ingest([h.client(v, owner="shelter-a") for v in values])
    rows = await ctx.store.claim_outbox("test", 100, 60)
    ids: dict[str, int] = {}
    for row in rows:
        value = orjson.loads(row.payload)["identifiers"][0]["value"]
        name = f"{row.recipient}:{value}"
        ids[name] = row.id
    plan = {
        "cie-211:A1": ("delivered", ""),
        "cie-211:A2": ("dead", "HTTP 410 (not retried)"),
        "cie-211:A3": ("retry", "HTTP 503"),
        "cie-211:A4": ("withheld", "CONSENT_REVOKED"),
    }
    for name, row_id in ids.items():
        status, error = plan.get(name, ("pending", ""))
        retry_at = "2999-01-01T00:00:00.000000+00:00" if status == "retry" else None
        await ctx.store.finish_outbox(row_id, status, error=error, retry_at=retry_at)
    return ids


async def test_delivery_admin_api_scopes_partners_and_operates(web_hub, make_key, h) -> None:
    async with web_hub(FEEDS) as (ctx, base, session):
        ids = await seed(ctx, h)
        admin = {"Authorization": f"Bearer {await make_key(ctx, 'shelter-a', 'admin')}"}
        partner = {"Authorization": f"Bearer {await make_key(ctx, 'cie-211')}"}

        async def get(path: str, headers: dict[str, str]) -> tuple[int, Any]:
            async with session.get(base + path, headers=headers) as r:
                return r.status, await r.json()

        async def post(path: str, headers: dict[str, str]) -> tuple[int, Any]:
            async with session.post(base + path, headers=headers) as r:
                return r.status, await r.json()

        status, body = await get("/admin/outbox", admin)
        assert status == 200 and body["count"] == 10
        first = body["entries"][0]
        assert {"record", "person_id", "audit_seq"} <= set(first)

        # a partner lists only its own entries, never a withheld one, without record keys
        status, body = await get("/admin/outbox", partner)
        assert status == 200
        assert {e["recipient"] for e in body["entries"]} == {"cie-211"}
        assert {e["status"] for e in body["entries"]} == {"pending", "delivered", "dead", "retry"}
        assert all("record" not in e and "person_id" not in e for e in body["entries"])
        status, body = await get("/admin/outbox?recipient=hospital-x", partner)
        assert (status, body["error"]) == (403, "forbidden")

        status, _ = await get(f"/admin/outbox/{ids['hospital-x:A1']}", partner)
        assert status == 404, "another agency's entry does not exist for this partner"
        status, _ = await get(f"/admin/outbox/{ids['cie-211:A4']}?payload=1", partner)
        assert status == 404, "a withheld entry reveals nothing"
        # The payload kept is the queued one; the send-time gate may have released less.
        status, body = await get(f"/admin/outbox/{ids['cie-211:A1']}?payload=1", partner)
        assert (status, body["error"]) == (403, "forbidden")
        assert "payload" not in body and "A1" not in json.dumps(body)
        status, body = await get(f"/admin/outbox/{ids['cie-211:A1']}?payload=1", admin)
        assert status == 200 and body["payload"]["identifiers"][0]["value"] == "A1"
        status, body = await get(f"/admin/outbox/{ids['cie-211:A5']}?payload=1", admin)
        assert status == 200 and "payload" not in body, "not delivered: no payload"
        status, body = await get(f"/admin/outbox/{ids['cie-211:A1']}", partner)
        assert "payload" not in body, "payloads only on request"

        # operations are for admins
        status, _ = await post(f"/admin/outbox/{ids['cie-211:A3']}/retry", partner)
        assert status == 403
        status, _ = await get("/admin/dead-letters", partner)
        assert status == 403

        status, body = await post(f"/admin/outbox/{ids['cie-211:A3']}/retry", admin)
        assert (status, body["status"], body["attempts"]) == (200, "pending", 0)
        status, body = await post(f"/admin/outbox/{ids['cie-211:A1']}/retry", admin)
        assert status == 409 and "delivered" in body["message"]
        status, body = await post("/admin/outbox/999999/replay", admin)
        assert (status, body["error"]) == (404, "not_found")
        status, _ = await get("/admin/outbox/abc", admin)
        assert status == 404

        status, body = await get("/admin/dead-letters", admin)
        assert [e["id"] for e in body["entries"]] == [ids["cie-211:A2"]]
        status, body = await post(f"/admin/outbox/{ids['cie-211:A2']}/replay", admin)
        assert (status, body["status"]) == (200, "pending")
        status, body = await post(f"/admin/outbox/{ids['cie-211:A2']}/replay", admin)
        assert status == 409

        await ctx.store.finish_outbox(ids["cie-211:A2"], "dead", error="HTTP 410")
        await ctx.store.finish_outbox(ids["hospital-x:A2"], "dead", error="HTTP 410")
        status, body = await post("/admin/dead-letters/replay?feed=to-hospital", admin)
        assert body == {"replayed": 1, "ids": [ids["hospital-x:A2"]]}
        status, body = await post("/admin/dead-letters/replay", admin)
        assert body == {"replayed": 1, "ids": [ids["cie-211:A2"]]}

        status, body = await get("/admin/outbox?status=bogus", admin)
        assert status == 400
        async with session.get(base + "/admin/outbox") as r:
            assert r.status == 401


def test_delivery_outbox_cli(hub_dir, hub_cli, h) -> None:
    config: Path = hub_dir(FEEDS)

    async def setup() -> dict[str, int]:
        cfg = load_config(config)
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            return await seed(ctx, h)

    ids = asyncio.run(setup())
    result = hub_cli("outbox", "list", "--status", "dead")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [e["id"] for e in listed] == [ids["cie-211:A2"]]
    assert listed[0]["last_error"] == "HTTP 410 (not retried)"

    result = hub_cli("outbox", "list", "--recipient", "hospital-x")
    assert {e["recipient"] for e in json.loads(result.output)} == {"hospital-x"}

    # page by page: --before the last id listed gives the next page, the same filters kept
    pages: list[list[int]] = []
    before: list[str] = []
    while True:
        result = hub_cli("outbox", "list", "--feed", "to-211", "--limit", "2", *before)
        page = [e["id"] for e in json.loads(result.output)]
        if not page:
            break
        pages.append(page)
        before = ["--before", str(page[-1])]
    everything = [e["id"] for e in json.loads(hub_cli("outbox", "list", "--feed", "to-211").output)]
    assert len(pages) > 1 and [i for p in pages for i in p] == everything
    result = hub_cli("outbox", "dead-letter", "--before", str(ids["cie-211:A2"]))
    assert json.loads(result.output) == []

    result = hub_cli("outbox", "show", str(ids["cie-211:A1"]), "--payload")
    shown = json.loads(result.output)
    assert shown["status"] == "delivered" and shown["payload"]["identifiers"][0]["value"] == "A1"
    assert "payload" not in json.loads(hub_cli("outbox", "show", str(ids["cie-211:A1"])).output)

    result = hub_cli("outbox", "dead-letter")
    assert [e["id"] for e in json.loads(result.output)] == [ids["cie-211:A2"]]

    result = hub_cli("outbox", "retry", str(ids["cie-211:A3"]))
    assert result.exit_code == 0 and json.loads(result.output)["status"] == "pending"
    result = hub_cli("outbox", "retry", str(ids["cie-211:A1"]))
    assert result.exit_code == 1 and "only entries waiting to retry" in result.output

    result = hub_cli("outbox", "replay", str(ids["cie-211:A2"]))
    assert result.exit_code == 0 and json.loads(result.output)["status"] == "pending"
    result = hub_cli("outbox", "replay", "--all-dead", "--feed", "to-211")
    assert json.loads(result.output) == {"replayed": 0, "ids": []}
    result = hub_cli("outbox", "replay")
    assert result.exit_code == 2 and "outbox ID or --all-dead" in result.output
    result = hub_cli("outbox", "show", "99999")
    assert result.exit_code == 2 and "no outbox entry 99999" in result.output
    # An id no store can hold is refused by the command line, in one line (no traceback).
    for command in ("show", "retry", "replay"):
        result = hub_cli("outbox", command, "9" * 30)
        assert result.exit_code == 2 and "is not in the range" in result.output
        assert "Traceback" not in result.output
