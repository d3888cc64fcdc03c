"""The HTTP core: health, authentication, metrics, the LEAP consent consult."""

from __future__ import annotations

import orjson
import pytest

from consent.parsing import parse_consent_file
from hub.synthetic import client

CONSULT = "/cds-services/patient-consent-consult"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_healthz_is_public_everything_else_needs_a_key(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        async with http.get(f"{url}/healthz") as r:
            assert r.status == 200
            assert (await r.json())["status"] == "ok"
        async with http.get(f"{url}/metrics") as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await r.json())["error"] == "unauthorized"
        async with http.get(f"{url}/metrics", headers=bearer("hub_x_y")) as r:
            assert r.status == 401 and "invalid_token" in r.headers["WWW-Authenticate"]
        partner = await make_key(ctx, "hospital-x")
        async with http.get(f"{url}/metrics", headers=bearer(partner)) as r:
            assert r.status == 403
        admin = await make_key(ctx, "shelter-a", "admin")
        async with http.get(f"{url}/metrics", headers=bearer(admin)) as r:
            assert r.status == 200
            text = await r.text()
            assert "hub_auth_failures_total" in text


async def test_revoked_key_is_refused_at_once(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        key = await make_key(ctx, "shelter-a", "admin")
        async with http.get(f"{url}/metrics", headers=bearer(key)) as r:
            assert r.status == 200
        assert await ctx.store.revoke_partner_key(key.split("_")[1])
        async with http.get(f"{url}/metrics", headers=bearer(key)) as r:
            assert r.status == 401


async def test_consult_permit_deny_and_no_consent(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        cfg = ctx.config
        await ctx.engine.ingest([client("1"), client("2")])
        text = "\n".join(
            orjson.dumps(c).decode()
            for c in [
                {
                    "id": "a",
                    "client": {"system": "hmis:demo", "value": "1"},
                    "signed_on": "2024-06-01",
                    "recorded_by": "shelter-a",
                    "exclude_agencies": ["cie-211"],
                },
            ]
        )
        await ctx.import_consents(
            parse_consent_file(text, agencies=cfg.agencies, policy=cfg.consent_policy)
        )
        key = await make_key(ctx, "hospital-x")

        async def ask(pid: str, actor: str, purpose: str = "TREAT", **extra: object) -> dict:
            context = {
                "patientId": [{"system": "hmis:demo", "value": pid}],
                "scope": "patient-privacy",
                "purposeOfUse": purpose,
                "actor": [{"system": "urn:cie-hub:agency", "value": actor}],
                **extra,
            }
            body = {"hook": "patient-consent-consult", "hookInstance": "1", "context": context}
            async with http.post(f"{url}{CONSULT}", json=body, headers=bearer(key)) as r:
                assert r.status == 200
                return await r.json()

        assert (await ask("1", "hospital-x"))["cards"][0]["summary"] == "CONSENT_PERMIT"
        assert (await ask("1", "cie-211"))["cards"][0]["summary"] == "CONSENT_DENY"
        assert (await ask("1", "hospital-x", "HMARKT"))["cards"][0]["summary"] == "CONSENT_DENY"
        assert (await ask("2", "hospital-x"))["cards"][0]["summary"] == "NO_CONSENT"
        assert (await ask("nobody", "hospital-x"))["cards"][0]["summary"] == "NO_CONSENT"


async def test_consult_names_missing_fields(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        key = await make_key(ctx, "hospital-x")
        for context, field in [
            ({"scope": "patient-privacy"}, "patientId"),
            ({"patientId": [{"system": "s", "value": "v"}]}, "scope"),
        ]:
            async with http.post(
                f"{url}{CONSULT}", json={"context": context}, headers=bearer(key)
            ) as r:
                assert r.status == 400
                assert field in (await r.json())["message"]
        async with http.get(f"{url}/cds-services", headers=bearer(key)) as r:
            services = (await r.json())["services"]
            assert services[0]["id"] == "patient-consent-consult"


async def test_outbox_depth_gauges_drop_to_zero_when_a_status_empties(web_hub, make_key) -> None:
    from hub.core.ports import OutboxRow

    def depth(text: str, status: str) -> float:
        line = f'hub_outbox_depth{{status="{status}"}} '
        return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])

    async with web_hub() as (ctx, url, http):
        admin = await make_key(ctx, "shelter-a", "admin")
        due = "2026-01-01T00:00:00.000000+00:00"
        entry = OutboxRow(0, "f", "r", "p1", "client", "s", "1", "v", "k1", "pending", 0, due, due)
        async with ctx.store.transaction() as tx:
            await tx.enqueue_many([entry])
        async with http.get(f"{url}/metrics", headers=bearer(admin)) as r:
            text = await r.text()
        assert (depth(text, "pending"), depth(text, "delivered")) == (1, 0)
        [claimed] = await ctx.store.claim_outbox("w", 10, 60)
        assert await ctx.store.finish_outbox(claimed.id, "delivered", worker="w")
        async with http.get(f"{url}/metrics", headers=bearer(admin)) as r:
            text = await r.text()
        assert (depth(text, "pending"), depth(text, "leased")) == (0, 0)
        assert depth(text, "delivered") == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/admin/outbox/%C2%B2", 404),  # "²": isdigit() says yes, int() says no
        ("/admin/outbox/99999999999999999999999", 404),  # beyond any stored id
        ("/admin/outbox/%D9%A1", 404),  # an Arabic-Indic one is not entry 1
        ("/admin/outbox?limit=%C2%B2", 400),
        ("/fhir/Patient?_count=%C2%B2", 400),
        ("/fhir/Task?_offset=%C2%B2", 400),
        ("/fhir/Task?_offset=99999999999999999999999", 400),
    ],
)
async def test_numbers_in_urls_are_ascii_digits_or_a_clear_refusal(
    web_hub, make_key, path: str, status: int
) -> None:
    async with web_hub() as (ctx, url, http):
        for role in ("partner", "admin"):
            headers = {"Authorization": f"Bearer {await make_key(ctx, 'cie-211', role)}"}
            async with http.get(url + path, headers=headers) as r:
                assert r.status == status, (role, await r.text())
                assert "Traceback" not in await r.text()
