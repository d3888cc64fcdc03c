"""The contract test kit itself: its fixtures, and that its checks catch broken connectors."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from consent.categories import CATEGORIES
from hub.context import make_plugins
from hub.core.ports import Delivery, DeliveryOutcome
from hub.core.records import Client, Encounter, Enrollment, Record, Referral
from hub.plugin_api import Codec, CodecError
from hub.sinks.webhook import WebhookSink
from hub.testing import (
    CodecContract,
    HttpReceiver,
    codec_test_class,
    fixtures,
    open_receiver,
    sink_test_class,
)
from hub.testing.pii import leaks_in_logs
from plugins.hl7.codec import Hl7Codec

Failed = pytest.fail.Exception
Skipped = pytest.skip.Exception

# ---- the fixtures ----------------------------------------------------------------------------


def test_fixtures_carry_every_consent_category() -> None:
    covered: set[str] = set()
    for record in fixtures.RECORDS:
        covered.update(record.field_categories().values())
        covered.update(record.meta.sensitivity)
    assert covered >= set(CATEGORIES)


def test_fixtures_hold_the_edge_cases() -> None:
    clients = fixtures.CLIENTS
    names = [" ".join((*c.names[0].given, c.names[0].family)) for c in clients]
    assert any(n.count("é") for n in names) and any("ñ" in n for n in names)
    assert any("漢字" in n for n in names)
    assert len(names) - len(set(names)) == 1, "exactly one repeated name"
    assert any(c.birth_date is None for c in clients)
    vsp = [c for c in clients if c.meta.owner == fixtures.VSP_OWNER]
    assert vsp and all(c.meta.restricted for c in vsp)
    kinds = {type(r) for r in fixtures.RECORDS}
    assert {Client, Enrollment, Encounter, Referral} <= kinds
    assert {c.meta.key.id for c in clients} == fixtures.GATE_PERMITTED | fixtures.GATE_REFUSED


def test_pii_strings_hold_names_ssns_and_birth_dates_in_several_forms() -> None:
    pii = fixtures.pii_strings()
    assert {"Quintanilla-Ruiz", "219-45-8876", "219458876", "1984-02-29", "19840229"} <= pii
    assert "02/29/1984" in pii and "漢字" in pii
    # two people share a name: only what tells the refused one apart can prove a leak
    distinct = fixtures.distinct_pii([fixtures.CLIENT_MARISOL_B], [fixtures.CLIENT_MARISOL_A])
    assert "Etxeberria" not in distinct and "1972-11-03" in distinct


def test_log_scan_finds_client_data_in_messages_and_extras() -> None:
    def record(msg: str, **extra: Any) -> logging.LogRecord:
        rec = logging.LogRecord("hub.kit", logging.DEBUG, __file__, 1, msg, (), None)
        rec.__dict__.update(extra)
        return rec

    clean = record("delivered %s", outbox_id=7)
    leaky = [record("client Zubizarreta arrived"), record("ok", dob="1990-05-17")]
    found = leaks_in_logs([clean, *leaky], fixtures.pii_strings())
    assert [hits for _n, _l, hits in found] == [["Zubizarreta"], ["1990-05-17"]]


def test_codec_error_names_where() -> None:
    exc = CodecError("not a date (YYYY-MM-DD)", location="Client.csv line 3 column DOB")
    assert isinstance(exc, ValueError)
    assert str(exc) == "Client.csv line 3 column DOB: not a date (YYYY-MM-DD)"
    assert exc.location == "Client.csv line 3 column DOB"


def test_built_in_codecs_register_through_the_hook() -> None:
    found = [c for result in make_plugins().hook.hub_codecs() for c in result or []]
    names = {c.name for c in found}
    assert {"hl7v2", "fhir-r4", "csv"} <= names
    assert all(isinstance(c, Codec) for c in found)


# ---- exemptions ------------------------------------------------------------------------------


def test_an_exemption_needs_a_written_reason() -> None:
    cls = codec_test_class(Hl7Codec(), exemptions={"round_trip": "  "})
    with pytest.raises(AssertionError, match="needs a written reason"):
        cls().test_exemptions_have_written_reasons()
    with pytest.raises(Failed, match="needs a written reason"):
        cls().test_round_trip_each_record()


def test_an_exemption_must_name_a_check() -> None:
    cls = codec_test_class(Hl7Codec(), exemptions={"speed": "too slow to measure"})
    with pytest.raises(AssertionError, match="names no check"):
        cls().test_exemptions_have_written_reasons()


def test_an_exemption_with_a_reason_skips_with_it() -> None:
    cls = codec_test_class(Hl7Codec(), exemptions={"config": "no configuration of its own"})
    with pytest.raises(Skipped, match="no configuration of its own"):
        cls().test_config_errors_name_the_key_path()


def test_a_missing_config_declaration_fails_instead_of_passing() -> None:
    with pytest.raises(Failed, match="exempt 'config'"):
        codec_test_class(Hl7Codec())().test_config_errors_name_the_key_path()


# ---- broken codecs are caught ---------------------------------------------------------------


class ForgetfulCodec(Hl7Codec):
    """Loses the birth date on the way back."""

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        return [
            dataclasses.replace(r, birth_date=None) if isinstance(r, Client) else r
            for r in super().decode(data, source=source, owner=owner)
        ]


class CrashingCodec(Hl7Codec):
    """Raises IndexError on input it cannot read."""

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        if not data.startswith(b"MSH"):
            raise IndexError("boom")
        return super().decode(data, source=source, owner=owner)


class TellingCodec(Hl7Codec):
    """Repeats client data in its errors."""

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        raise CodecError("Quintanilla-Ruiz is not expected here", location="line 1")


def test_round_trip_catches_a_lost_field() -> None:
    with pytest.raises(AssertionError, match="birth_date"):
        codec_test_class(ForgetfulCodec())().test_round_trip_each_record()


def test_bad_input_catches_a_crash() -> None:
    with pytest.raises(Failed, match="raised IndexError, not CodecError"):
        codec_test_class(CrashingCodec())().test_bad_input_is_a_codec_error()


def test_bad_input_catches_client_data_in_an_error() -> None:
    with pytest.raises(AssertionError, match="repeats client data"):
        codec_test_class(TellingCodec())().test_bad_input_is_a_codec_error()


def test_interface_catches_carried_fields_that_do_not_exist() -> None:
    class Typo(CodecContract):
        codec = Hl7Codec()
        carries: ClassVar[dict[str, frozenset[str]]] = {"client": frozenset({"birthdate"})}

    with pytest.raises(AssertionError, match="birthdate"):
        Typo().test_declares_its_interface()


# ---- broken sinks are caught ----------------------------------------------------------------

SECRET_ENV = "KIT_SELFTEST_SECRET"


class KeylessSink:
    """Posts the payload but drops the idempotency key."""

    name = "keyless"

    def __init__(self) -> None:
        self.inner = WebhookSink()

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        renamed = [dataclasses.replace(d, idempotency_key="same-for-all") for d in deliveries]
        return await self.inner.deliver(renamed)

    async def close(self) -> None:
        await self.inner.close()


class RaisingSink(KeylessSink):
    """Raises instead of answering retry outcomes when the partner is down."""

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        outcomes = await self.inner.deliver(deliveries)
        if any(not o.ok for o in outcomes):
            raise RuntimeError("partner down")
        return outcomes


class LeakySink(KeylessSink):
    """Sends every fixture client, not only what it was handed (what the gate must catch)."""

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        from hub.testing import make_deliveries

        options = deliveries[0].options if deliveries else {}
        await self.inner.deliver(make_deliveries(list(fixtures.CLIENTS), options))
        return [DeliveryOutcome(ok=True) for _ in deliveries]


class HalfFileSink:
    """Writes its file in pieces in the event loop and leaves the temporary file behind."""

    name = "half-file"

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        folder = Path(str(deliveries[0].options["dir"]))
        tmp = folder / f".batch-{deliveries[0].outbox_id}.tmp"
        with tmp.open("wb") as handle:
            for d in deliveries:
                handle.write(d.idempotency_key.encode() + b"\n")
                await asyncio.sleep(0)
        tmp.rename(folder / f"batch-{deliveries[0].outbox_id}.txt")
        return [DeliveryOutcome(ok=True) for _ in deliveries]

    async def close(self) -> None:
        return None


def _webhook_options(receiver: Any) -> dict[str, Any]:
    return {"url": receiver.url, "secret_envs": [SECRET_ENV], "timeout_seconds": 5}


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "kit-selftest")


async def test_idempotency_check_catches_a_sink_that_drops_the_key(
    tmp_path: Path, secret: None
) -> None:
    cls = sink_test_class(lambda folder: KeylessSink(), options=_webhook_options)
    async with open_receiver("http", tmp_path) as receiver:
        with pytest.raises(AssertionError, match="idempotency key did not reach"):
            await cls().test_idempotent_under_retry(receiver, tmp_path)


async def test_partner_failure_check_catches_a_sink_that_raises(
    tmp_path: Path, secret: None
) -> None:
    cls = sink_test_class(lambda folder: RaisingSink(), options=_webhook_options)
    async with open_receiver("http", tmp_path) as receiver:
        with pytest.raises(RuntimeError, match="partner down"):
            await cls().test_partner_failure_is_a_retry_outcome(receiver, tmp_path)


async def test_gate_check_catches_a_sink_that_sends_refused_clients(
    tmp_path: Path, secret: None
) -> None:
    cls = sink_test_class(lambda folder: LeakySink(), options=_webhook_options)
    async with open_receiver("http", tmp_path) as receiver:
        assert isinstance(receiver, HttpReceiver)
        with pytest.raises(AssertionError, match="clients the gate refused reached"):
            await cls().test_only_gated_data_reaches_the_sink(receiver, tmp_path)


async def test_cancellation_check_catches_a_left_temporary_file(tmp_path: Path) -> None:
    cls = sink_test_class(
        lambda folder: HalfFileSink(),
        receiver="folder",
        options=lambda r: {"dir": str(r.path)},
        settle_seconds=0.2,
    )
    async with open_receiver("folder", tmp_path) as receiver:
        with pytest.raises(AssertionError, match="left partial files"):
            await cls().test_cancellation_leaves_nothing_half_written(receiver, tmp_path)
