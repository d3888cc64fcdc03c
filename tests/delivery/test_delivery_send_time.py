"""The send-time re-check decides on the queued data without building records
(``ConsentGate.disclose_data``), and a sink gets the record only when it asks for it
(``LazyDelivery``): what is released, audited and sent stays what the eager path gave."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from consent import ClientFacts
from consent.parsing import parse_consent_file
from hub.audit import entry_from_row
from hub.core.gate import AuditWriter
from hub.core.ports import Delivery, DeliveryOutcome, LazyDelivery
from hub.core.records import Client, Encounter, Record, SourceKey, SourceRow, payload_hash
from hub.core.rows import row_meta
from hub.core.serialize import record_from_payload, record_payload
from hub.delivery import DeliveryWorker
from hub.sinks.webhook import webhook_body
from hub.synthetic import client, health_dv, meta


async def add_consent(ctx: Any, h: Any, value: str) -> None:
    """Import a permitting consent for a client of the delivery fixtures."""
    await ctx.import_consents(
        parse_consent_file(
            json.dumps([h.consent_json(value)]),
            agencies=ctx.config.agencies,
            policy=ctx.config.consent_policy,
        )
    )


def a_client(value: str) -> Client:
    """A client with a name, an address and a phone, matching the fixtures' consents."""
    return client(value, owner="shelter", source="hmis:1", system="urn:hmis")


async def audit_entries(ctx: Any) -> list[Any]:
    """Every audit entry, in order."""
    return [entry_from_row(r) async for b in ctx.store.iter_audit() for r in b]


class RecordingSink:
    """A sink that renders nothing: it keeps what it was given and answers delivered."""

    name = "webhook"

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Keep the deliveries; every one is delivered."""
        self.deliveries.extend(deliveries)
        return [DeliveryOutcome(ok=True) for _ in deliveries]

    async def close(self) -> None:
        """Nothing to close."""


async def test_a_send_time_redaction_changes_the_body_the_receiver_gets(
    hub: Any, receiver: Any, h: Any
) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    async with hub.open() as ctx:
        await add_consent(ctx, h, "P1")
        await ctx.engine.ingest([a_client("P1")])
        [queued] = await ctx.store.list_outbox()
        assert "addresses" in orjson.loads(queued.payload)
        # After queueing, the client is reported fleeing domestic violence.
        await ctx.engine.ingest(
            [health_dv("D1", "P1", fleeing=True, owner="shelter", source="hmis:1")]
        )
        worker = DeliveryWorker(ctx, {"webhook": _webhook(ctx)}, "w")
        try:
            assert await worker.run_once() == 1
        finally:
            await worker.sinks["webhook"].close()
        [seen] = receiver.requests
        sent = seen.json["record"]
        assert "addresses" not in sent and sent["names"] and sent["identifiers"]
        assert seen.json["kind"] == "client"
        last = (await audit_entries(ctx))[-1]
        assert "DV_LOCATION_WITHHELD" in last.reasons
        assert last.payload_hash == payload_hash(orjson.dumps(sent, option=orjson.OPT_SORT_KEYS))
        [row] = await ctx.store.list_outbox()
        assert row.status == "delivered"


def _webhook(ctx: Any) -> Any:
    from hub.delivery import collect_sinks

    return collect_sinks(ctx)["webhook"]


async def test_a_sink_that_reads_the_record_gets_the_queued_version_as_released(
    hub: Any, h: Any
) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", "http://127.0.0.1:9/hook"))
    async with hub.open() as ctx:
        await add_consent(ctx, h, "P2")
        await ctx.engine.ingest([a_client("P2")])
        [queued] = await ctx.store.list_outbox()
        sink = RecordingSink()
        assert await DeliveryWorker(ctx, {"webhook": sink}, "w").run_once() == 1
        [delivery] = sink.deliveries
        assert isinstance(delivery, LazyDelivery)
        assert delivery.payload == orjson.loads(queued.payload)
        async with ctx.store.transaction() as tx:
            stored = await tx.get_record("client", "hmis:1", "P2")
        assert stored is not None
        eager = record_from_payload(row_meta(stored, queued.record_version), delivery.payload)
        assert isinstance(delivery.record, Client)
        assert delivery.record == eager
        assert delivery.kind == "client"


def test_a_lazy_delivery_builds_its_record_once_when_asked_and_equals_the_eager_one() -> None:
    record = a_client("P3")
    payload = record_payload(record)
    built: list[Record] = []

    def build() -> Record:
        made = record_from_payload(record.meta, payload)
        built.append(made)
        return made

    lazy = LazyDelivery.of(
        7, "feed", "partner", "key", kind="client", build=build, payload=payload, options={}
    )
    eager = Delivery(7, "feed", "partner", "key", record, payload, {})
    assert lazy.kind == eager.kind == "client"
    assert webhook_body(lazy) == webhook_body(eager)
    assert built == []  # the webhook body needs no record
    assert lazy.record == record
    assert lazy.record is lazy.record and len(built) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy.record = None  # type: ignore[misc]
    renamed = dataclasses.replace(lazy, idempotency_key="other")
    assert (renamed.record, renamed.kind, renamed.idempotency_key) == (record, "client", "other")
    assert len(built) == 1


def _shapes() -> list[tuple[Record, frozenset[str] | None, ClientFacts]]:
    """Records of every kind of shape the gate treats apart, with what is asked and facts."""
    plain = a_client("P4")
    sensitive = Encounter(
        meta=meta("encounter", "hmis:1", "V1", "shelter", sensitivity=frozenset({"hiv"})),
        client=SourceKey("hmis:1", "P4"),
        event="A01",
        location="ER^1^A",
        diagnoses=("B20",),
    )
    restricted = client("P4", owner="shelter", source="hmis:1", system="urn:hmis", restricted=True)
    row = SourceRow(
        meta=meta("hmis.CurrentLivingSituation", "hmis:1", "CLS1", "shelter"),
        fields={"CurrentLivingSituation": "116", "LocationDetails": "behind the library"},
        categories={"CurrentLivingSituation": "housing", "LocationDetails": "housing"},
        client=SourceKey("hmis:1", "P4"),
        locations=frozenset({"LocationDetails"}),
    )
    adult = ClientFacts(None, False)
    fleeing = ClientFacts(None, True)
    return [
        (plain, None, adult),
        (plain, None, fleeing),
        (plain, frozenset({"identity"}), adult),
        (sensitive, None, adult),
        (sensitive, frozenset({"health", "hiv"}), adult),
        (restricted, None, adult),
        (row, None, fleeing),
        (row, frozenset({"housing"}), adult),
    ]


async def test_deciding_on_meta_and_data_equals_deciding_on_the_built_record(
    hub: Any, h: Any
) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", "http://127.0.0.1:9/hook"))
    async with hub.open() as ctx:
        await add_consent(ctx, h, "P4")
        result = await ctx.engine.ingest([a_client("P4")])
        person = result.persons["hmis:1/P4"]
        gate = ctx.gate
        released: list[dict[str, Any] | None] = []
        async with ctx.store.transaction() as tx:
            audit = AuditWriter(tx, batch=True)
            for record, categories, facts in _shapes():
                data = record_payload(record)
                asked: dict[str, Any] = {
                    "person_id": person,
                    "recipient": "partner",
                    "purpose": "coordination",
                    "categories": categories,
                    "at": ctx.engine.clock(),
                    "record_ref": "ref",
                    "facts": facts,
                }
                eager = await gate.disclose(tx, audit, record=record, data=data, **asked)
                lean = await gate.disclose_data(tx, audit, meta=record.meta, data=data, **asked)
                assert lean.decision == eager.decision
                assert lean.payload == eager.payload
                assert _unchained(lean.audit) == _unchained(eager.audit)
                released.append(lean.payload)
            await audit.flush()
        outcomes = [e.decision for e in await audit_entries(ctx)][-2 * len(_shapes()) :]
        assert {"permit", "permit-redacted", "deny"} <= set(outcomes)
        # the shapes took their own paths: location withheld, clinical fields guarded, a
        # restricted record denied, a source row's location column dropped
        assert released[0] is not None and "addresses" in released[0]
        assert released[1] is not None and "addresses" not in released[1]
        assert released[3] is None or "diagnoses" not in released[3]
        assert released[5] is None
        assert released[6] == {
            "fields": {"CurrentLivingSituation": "116"},
            "categories": {"CurrentLivingSituation": "housing"},
            "client": {"source": "hmis:1", "id": "P4"},
        }


def _unchained(entry: Any) -> Any:
    """An audit entry without its place in the chain."""
    return dataclasses.replace(entry, seq=0, prev_hash="", hash="")
