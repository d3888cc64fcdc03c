"""The HTTP core and the admin API, found in review: key checks off the event loop and
limited per key id, 405 with ``Allow``, outbox pages past the first."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any

import pytest

import hub.auth
from hub.context import HubContext
from hub.core.ports import OutboxRow


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_web_review_key_checks_run_off_the_event_loop_once_per_key(
    web_hub, make_key, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = hashlib.scrypt

    def scrypt(*args: Any, **kwargs: Any) -> bytes:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    async with web_hub() as (ctx, url, http):
        admin = await make_key(ctx, "shelter-a", "admin")
        monkeypatch.setattr(hub.auth.hashlib, "scrypt", scrypt)

        async def metrics() -> int:
            async with http.get(f"{url}/metrics", headers=bearer(admin)) as r:
                return r.status

        assert await asyncio.gather(*(metrics() for _ in range(5))) == [200] * 5
    assert len(threads) == 1, "concurrent requests with one key share one scrypt check"
    assert threading.get_ident() not in threads, "scrypt must not stall the event loop"


async def test_web_review_guessing_a_keys_secret_is_throttled(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        good = await make_key(ctx, "hospital-x")
        async with http.get(f"{url}/admin/outbox", headers=bearer(good)) as r:
            assert r.status == 200  # verified once: cached
        key_id = good.split("_")[1]
        statuses = []
        for i in range(hub.auth.CHECKS_PER_MINUTE + 2):
            async with http.get(
                f"{url}/admin/outbox", headers=bearer(f"hub_{key_id}_guess{i}")
            ) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1
                    assert (await r.json())["error"] == "too_many_requests"
        assert statuses[: hub.auth.CHECKS_PER_MINUTE - 1] == [401] * (
            hub.auth.CHECKS_PER_MINUTE - 1
        )
        assert statuses[-2:] == [429, 429], "no scrypt for guesses past the limit"
        async with http.get(f"{url}/admin/outbox", headers=bearer(good)) as r:
            assert r.status == 200, "the partner's verified key keeps working"
        other = await make_key(ctx, "cie-211")
        async with http.get(f"{url}/admin/outbox", headers=bearer(other)) as r:
            assert r.status == 200, "other key ids are not affected"
        assert await ctx.store.revoke_partner_key(key_id)
        async with http.get(f"{url}/admin/outbox", headers=bearer(good)) as r:
            assert r.status == 401, "revocation still takes effect at once"


async def test_web_review_method_not_allowed_names_the_allowed_methods(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        admin = await make_key(ctx, "shelter-a", "admin")
        async with http.delete(f"{url}/admin/outbox", headers=bearer(admin)) as r:
            assert r.status == 405
            assert set(r.headers["Allow"].split(",")) == {"GET", "HEAD"}
            assert (await r.json())["error"] == "method_not_allowed"
        async with http.get(f"{url}/admin/outbox/1/retry", headers=bearer(admin)) as r:
            assert (r.status, r.headers["Allow"]) == (405, "POST")


def entry(i: int, recipient: str, status: str = "pending") -> OutboxRow:
    due = "2026-01-01T00:00:00.000000+00:00"
    return OutboxRow(
        0, "f", recipient, f"p{i}", "client", "s", str(i), "v", f"k{i}", status, 0, due, due
    )


async def pages(http: Any, url: str, key: str, query: str) -> list[list[int]]:
    """Every page of a listing, following ``next``."""
    out: list[list[int]] = []
    cursor = ""
    while len(out) < 10:
        async with http.get(f"{url}{query}{cursor}", headers=bearer(key)) as r:
            assert r.status == 200
            body = await r.json()
        out.append([e["id"] for e in body["entries"]])
        if "next" not in body:
            return out
        cursor = f"&before={body['next']}"
    raise AssertionError("paging does not end")


async def test_web_review_outbox_lists_page_past_the_first_page(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        ctx_: HubContext = ctx
        async with ctx_.store.transaction() as tx:
            await tx.enqueue_many(
                [entry(i, "hospital-x" if i % 2 else "cie-211") for i in range(7)]
            )
        ids = sorted((r.id for r in await ctx_.store.list_outbox()), reverse=True)
        admin = await make_key(ctx, "shelter-a", "admin")
        partner = await make_key(ctx, "hospital-x")
        assert await pages(http, url, admin, "/admin/outbox?limit=3") == [
            ids[0:3],
            ids[3:6],
            ids[6:7],
        ]
        mine = [r.id for r in await ctx_.store.list_outbox(recipient="hospital-x")]
        got = await pages(http, url, partner, "/admin/outbox?limit=2")
        assert [i for page in got for i in page] == mine
        async with http.get(f"{url}/admin/outbox?before=x", headers=bearer(admin)) as r:
            assert r.status == 400
            assert (await r.json())["message"] == "before must be an outbox entry id"
        for row in await ctx_.store.list_outbox():
            assert await ctx_.store.finish_outbox(row.id, "dead", error="HTTP 410")
        assert await pages(http, url, admin, "/admin/dead-letters?limit=4") == [
            ids[0:4],
            ids[4:7],
        ]
