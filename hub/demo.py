"""``hub demo``: the main job end to end, on the embedded SQLite store, with invented people.

Agencies: a shelter (HMIS), a hospital (HIPAA covered entity), 211 (CIE partner) and a
victim service provider. The shelter's HMIS records arrive; consents are recorded (one full,
one excluding the hospital, one revoked, one client with none, one revoked after queueing);
feeds to the hospital and to 211 run through the consent gate into the outbox; delivery
workers post them, signed, to a local receiver standing in for each partner; the demo prints
what each partner received and what was withheld, and why, then verifies the audit chain.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from rich.console import Console
from rich.table import Table

from consent.parsing import parse_consent_file
from hub.audit import verify_store
from hub.config import load_config
from hub.context import HubContext, make_plugins, open_context
from hub.keys import KeyRing
from hub.synthetic import client, enrollment, health_dv

DEMO_TOML = """
[store]
url = "sqlite:///hub-data/hub.db"

[keys]
file = "hub-data/keys.json"

[delivery]
backoff_base_seconds = 0.05
poll_seconds = 0.05

[[agencies]]
id = "shelter-a"
name = "Shelter A"
kind = "hmis"
networks = ["hmis", "cie"]

[[agencies]]
id = "hospital-x"
name = "Mercy General"
kind = "health"
networks = ["cie"]

[[agencies]]
id = "cie-211"
name = "211 San Diego"
kind = "cie"
networks = ["cie"]

[[agencies]]
id = "safe-haven"
name = "Safe Haven (victim service provider)"
kind = "vsp"
networks = ["hmis"]

[[feeds]]
name = "hospital-clients"
recipient = "hospital-x"
kinds = ["client", "enrollment"]
purpose = "treatment"
categories = ["identity", "demographics", "housing"]
connector = "webhook"
options = {{url = "{url}/hospital-x", secret_envs = ["HUB_DEMO_SECRET"]}}

[[feeds]]
name = "211-referrals"
recipient = "cie-211"
kinds = ["client", "enrollment"]
purpose = "referral"
categories = ["identity", "housing"]
connector = "webhook"
options = {{url = "{url}/cie-211", secret_envs = ["HUB_DEMO_SECRET"]}}
"""

PEOPLE = [
    # personal id, given, family, owner, consent story
    ("1001", "Ana", "Alvarez", "shelter-a", "full consent"),
    ("1002", "Ben", "Brooks", "shelter-a", "consent excludes the hospital"),
    ("1003", "Cara", "Chen", "shelter-a", "consent revoked before the data arrived"),
    ("1004", "Dan", "Diaz", "shelter-a", "no consent on file"),
    ("1005", "Eve", "Evans", "safe-haven", "full consent, but owned by a victim service provider"),
    ("1006", "Fay", "Flores", "shelter-a", "full consent, currently fleeing DV"),
    ("1007", "Gus", "Garcia", "shelter-a", "consent revoked after queueing, before delivery"),
]


def _consents() -> str:
    def mpa(cid: str, pid: str, **extra: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": cid,
            "client": {"system": "hmis:demo", "value": pid},
            "signed_on": "2024-06-01",
            "method": "written",
            "given_by": "client",
            "networks": ["hmis", "cie"],
            "purposes": ["coordination", "referral", "treatment"],
            "recorded_by": "shelter-a",
        }
        base.update(extra)
        return base

    return "\n".join(
        orjson.dumps(c).decode()
        for c in [
            mpa("mpa-ana", "1001"),
            mpa("mpa-ben", "1002", exclude_agencies=["hospital-x"]),
            mpa("mpa-cara", "1003", revoked_on="2024-12-01"),
            mpa("mpa-eve", "1005"),
            mpa("mpa-fay", "1006"),
            mpa("mpa-gus", "1007"),
        ]
    )


class Receiver:
    """A local HTTP endpoint standing in for the partners' systems."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        """Listen on an OS-chosen loopback port."""
        app = web.Application()
        app.router.add_post("/{partner}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def handle(self, request: web.Request) -> web.Response:
        """Record a delivery."""
        body = await request.json()
        self.received[request.match_info["partner"]].append(body)
        return web.json_response({"ok": True})

    async def stop(self) -> None:
        """Stop listening."""
        if self.runner is not None:
            await self.runner.cleanup()


async def _deliver_all(ctx: HubContext) -> None:
    """Run one delivery worker until the outbox has nothing due."""
    from hub.delivery import DeliveryWorker, collect_sinks

    sinks = collect_sinks(ctx)
    worker = DeliveryWorker(ctx, sinks, "demo")
    try:
        for _ in range(100):
            if await worker.run_once() == 0:
                depth = await ctx.store.outbox_depth()
                if not depth.get("pending") and not depth.get("retry"):
                    break
                await asyncio.sleep(0.05)
    finally:
        for sink in sinks.values():
            await sink.close()


async def _run(directory: Path, console: Console) -> int:
    import os

    os.environ.setdefault("HUB_DEMO_SECRET", KeyRing.generate().index_key.hex())
    receiver = Receiver()
    await receiver.start()
    try:
        config_path = directory / "hub.toml"
        config_path.write_text(DEMO_TOML.format(url=receiver.url), encoding="utf-8")
        KeyRing.generate().write(directory / "hub-data" / "keys.json")
        cfg = load_config(config_path)
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            console.print(f"[bold]CIE Hub demo[/bold] in {directory} (SQLite)")
            records = await _people(ctx)
            await ctx.import_consents(
                parse_consent_file(_consents(), agencies=cfg.agencies, policy=cfg.consent_policy)
            )
            console.print(f"recorded {len(ctx.gate.all_consents())} consents")
            result = await ctx.engine.ingest(records)
            console.print(
                f"imported {len(records)} HMIS records for {len(PEOPLE)} people: "
                f"{result.enqueued} queued for partners, {result.withheld} withheld at the gate"
            )
            gus = next(c for c in ctx.gate.all_consents() if c.id == "mpa-gus")
            import dataclasses

            await ctx.import_consents([dataclasses.replace(gus, revoked_on=date.today())])
            console.print("Gus revoked his consent after his records were queued")
            await _deliver_all(ctx)
            _report(console, ctx, receiver, await _withheld(ctx))
            report = await verify_store(ctx.store, ctx.keys)
            console.print(
                f"audit log: {report.entries} decisions, chain "
                + ("[green]intact[/green]" if report.ok else "[red]BROKEN[/red]")
            )
            return 0 if report.ok else 1
    finally:
        await receiver.stop()


async def _people(ctx: HubContext) -> list[Any]:
    records: list[Any] = []
    for pid, given, family, owner, _story in PEOPLE:
        records.append(
            client(
                pid,
                given=given,
                family=family,
                owner=owner,
                birth_date=date(1985, 1, 1 + int(pid[-1])),
                restricted=owner == "safe-haven",
            )
        )
        records.append(enrollment(f"E{pid}", pid, owner=owner))
    records.append(health_dv("HDV1006", "1006", fleeing=True))
    return records


async def _withheld(ctx: HubContext) -> list[dict[str, Any]]:
    from hub.audit import entry_from_row

    out: list[dict[str, Any]] = []
    async for batch in ctx.store.iter_audit():
        for row in batch:
            e = entry_from_row(row)
            if e.decision != "permit" or e.withheld:
                out.append(
                    {
                        "recipient": e.recipient,
                        "record": e.record,
                        "decision": e.decision,
                        "withheld": list(e.withheld),
                        "reasons": list(e.reasons),
                    }
                )
    return out


def _who(record_ref: str | None) -> str:
    """The demo person a record reference or id is about."""
    pid = (record_ref or "").rsplit("/", 1)[-1].lstrip("EHDV")
    for p, given, family, _o, _s in PEOPLE:
        if p == pid:
            return f"{given} {family}"
    return pid


def _received_person(item: dict[str, Any]) -> str:
    record = item["record"]
    if item["kind"] == "client":
        ids = record.get("identifiers") or [{}]
        return _who(str(ids[0].get("value", "?")))
    return _who(str((record.get("client") or {}).get("id", "?")))


def _report(
    console: Console, ctx: HubContext, receiver: Receiver, withheld: list[dict[str, Any]]
) -> None:
    for _pid, given, family, _owner, story in PEOPLE:
        console.print(f"  {given} {family}: {story}")
    for partner in ("hospital-x", "cie-211"):
        table = Table(title=f"{ctx.config.agencies[partner].name} received")
        table.add_column("person")
        table.add_column("record")
        table.add_column("fields released")
        for item in receiver.received.get(partner, []):
            table.add_row(_received_person(item), item["kind"], ", ".join(sorted(item["record"])))
        console.print(table)
    table = Table(title="Withheld or redacted by the consent gate")
    table.add_column("person")
    table.add_column("record")
    table.add_column("to")
    table.add_column("decision")
    table.add_column("withheld")
    table.add_column("why")
    for w in withheld:
        table.add_row(
            _who(w["record"]),
            (w["record"] or "").split("/", 1)[0],
            w["recipient"],
            w["decision"],
            ", ".join(w["withheld"]) or "location (addresses)",
            ", ".join(w["reasons"]),
        )
    console.print(table)


def run_demo(directory: Path | None) -> int:
    """Run the demo in ``directory`` (a temporary one by default); the exit code."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    temp = directory is None
    where = Path(tempfile.mkdtemp(prefix="hub-demo-")) if temp else directory
    assert where is not None
    where.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(_run(where, console))
    finally:
        if temp:
            shutil.rmtree(where, ignore_errors=True)
