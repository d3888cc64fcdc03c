"""Contract test classes for codecs and sinks (the model: singer-sdk's tap/target test classes).

A connector author gets every check with one line (a store adapter's author subclasses
:class:`StoreContract`)::

    TestMyCodec = codec_test_class(MyCodec())

    class TestMySink(SinkContract):
        sink_factory = staticmethod(lambda folder: MySink())
        receiver = "http"
        options = staticmethod(lambda receiver: {"url": receiver.url})

Each check has a name (:data:`CODEC_CHECKS`, :data:`SINK_CHECKS`). A check that cannot
apply is exempted with a written reason — ``exemptions = {"round_trip": "write-only: …"}``
— and shows as skipped with that reason; an exemption without a reason, or naming no check,
fails. Every contract test also runs with logging captured at DEBUG and fails when a log
record carries a fixture client's name, SSN, birth date, address, phone or free text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import pytest_asyncio

from hub.core.ports import Delivery, DeliveryOutcome, RecordRow, Sink, Store
from hub.core.records import RECORD_TYPES, Record, SourceRow
from hub.plugin_api import Codec, CodecError
from hub.testing import fixtures
from hub.testing.deliveries import make_deliveries
from hub.testing.gated import run_gated_hub
from hub.testing.pii import found_in, found_in_bytes, leaks_in_logs
from hub.testing.receivers import Receiver, ReceiverFactory, open_receiver

PSEUDO_FIELDS = frozenset({"key", "version", "restricted", "sensitivity", "deleted", "flags"})
"""Names a codec's ``carries`` may use for the record envelope (``key`` is ``meta.key``)."""

COMMON_CHECKS = frozenset({"config", "no_pii_in_logs"})
CODEC_CHECKS = COMMON_CHECKS | {"interface", "round_trip", "batch_round_trip", "bad_input"}
"""The checks of :class:`CodecContract`."""
SINK_CHECKS = COMMON_CHECKS | {
    "options",
    "outcomes",
    "idempotent_retry",
    "partner_failure",
    "cancellation",
    "close_twice",
    "gate",
}
"""The checks of :class:`SinkContract`."""

GARBAGE: tuple[bytes, ...] = (
    b"",
    b"\x00\x01\x02 not a record \xff\xfe",
    b"{",
    b'{"resourceType": 12, "entry": "x"}',
    b"[1, 2",
    b"MSH|",
    b"MSH|^~\\&|\rPID|",
    b"\xef\xbb\xbf",
    b"a,b\n1,2,3\n",
    b"\n\n\n",
    b'"unterminated, "quote\n',
    bytes(random.Random(7).randrange(256) for _ in range(512)),
)
"""Inputs no codec can read as records; each must give a CodecError or an empty result."""

CANCEL_STEPS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)
"""Event-loop turns after which a delivery is cancelled in the cancellation check."""


def _static(owner: object, name: str) -> Any:
    """A class attribute as declared: a function or ``staticmethod`` is returned unbound."""
    for klass in type(owner).__mro__:
        if name in vars(klass):
            value = vars(klass)[name]
            if isinstance(value, staticmethod):
                return value.__func__
            return value
    return None


async def _bounded(awaitable: Any, seconds: float, what: str) -> Any:
    """Await with a time limit; a connector that hangs fails the check, naming the step."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        pytest.fail(f"{what} did not finish within {seconds:g}s")


async def _poll(condition: Callable[[], bool], seconds: float, step: float = 0.01) -> None:
    """Return once ``condition()`` holds, or after ``seconds`` (the caller checks again)."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / step) + 1):
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(step)


def carried_values(record: Record, names: frozenset[str]) -> dict[str, Any]:
    """The values of a record's carried fields (pseudo-fields read from its envelope)."""
    out: dict[str, Any] = {}
    for name in sorted(names):
        if name in PSEUDO_FIELDS:
            out[name] = getattr(record.meta, name)
        elif isinstance(record, SourceRow) and name in ("fields", "categories"):
            out[name] = dict(getattr(record, name))
        else:
            out[name] = getattr(record, name, None)
    return out


def field_names(kind: str) -> frozenset[str]:
    """The data fields of a record kind (SourceRow's for kinds without their own type)."""
    cls: Any = RECORD_TYPES.get(kind, SourceRow)
    return frozenset(f.name for f in dataclasses.fields(cls) if f.name != "meta")


def _differences(original: Record, decoded: Record, names: frozenset[str]) -> list[str]:
    want = carried_values(original, names)
    got = carried_values(decoded, names)
    return [f"{n}: expected {want[n]!r}, decoded {got[n]!r}" for n in want if want[n] != got[n]]


class _Contract:
    """What every contract shares: exemptions, the config check, the log scan."""

    CHECKS: ClassVar[frozenset[str]] = COMMON_CHECKS
    exemptions: ClassVar[Mapping[str, str]] = {}
    """Check name → the written reason it does not apply."""
    plugin: ClassVar[object | None] = None
    """The module (or object) with the connector's ``hub_validate_config`` hookimpl."""
    config_section: ClassVar[str | None] = None
    """The ``hub.toml`` section the plugin owns."""
    valid_config: ClassVar[Any] = None
    """A valid value of that section (as TOML decodes it: dicts, lists, strings …)."""
    invalid_configs: ClassVar[Sequence[tuple[Any, str]]] = ()
    """(invalid section value, key path the first error must start with) pairs."""
    agencies: ClassVar[frozenset[str]] = frozenset(
        {fixtures.OWNER, fixtures.VSP_OWNER, fixtures.RECIPIENT}
    )
    """The configured agency ids handed to ``hub_validate_config``."""
    loggers: ClassVar[Sequence[str]] = ()
    """Loggers of the connector with their own level, lowered to DEBUG during the checks."""

    # ---- exemptions ------------------------------------------------------------------------

    def exempt(self, check: str) -> None:
        """Skip the running check when it is exempted with a reason; fail when the reason
        is missing."""
        if check not in self.exemptions:
            return
        reason = self.exemptions[check]
        if not isinstance(reason, str) or not reason.strip():
            pytest.fail(f"the exemption of check {check!r} needs a written reason")
        pytest.skip(f"exempt from {check!r}: {reason.strip()}")

    def test_exemptions_have_written_reasons(self) -> None:
        """Every exemption names a check of this contract and says why in words."""
        for check, reason in self.exemptions.items():
            assert check in self.CHECKS, (
                f"exemption {check!r} names no check (checks: {', '.join(sorted(self.CHECKS))})"
            )
            assert isinstance(reason, str) and reason.strip(), (
                f"the exemption of check {check!r} needs a written reason"
            )

    # ---- logs ------------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _kit_no_pii_in_logs(self, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
        """Capture logs at DEBUG during each check; fail when one carries client data."""
        caplog.set_level(logging.DEBUG)
        for name in ("hub", "plugins", *self.loggers):
            caplog.set_level(logging.DEBUG, logger=name)
        yield
        if "no_pii_in_logs" in self.exemptions:
            return
        logged = [*caplog.get_records("setup"), *caplog.get_records("call")]
        leaks = leaks_in_logs(logged, fixtures.pii_strings())
        if leaks:
            shown = "; ".join(f"{name} {level}: {', '.join(hits)}" for name, level, hits in leaks)
            pytest.fail(f"client data reached the logs: {shown}")

    # ---- configuration --------------------------------------------------------------------

    def _validate(self, section: str, value: Any) -> list[str]:
        from hub.plugins import PluginManager

        pm = PluginManager()
        pm.register(self.plugin, name="connector-under-test")
        results = pm.hook.hub_validate_config(section=section, value=value, agencies=self.agencies)
        errors: list[str] = []
        for result in results:
            assert isinstance(result, list), "hub_validate_config must return a list or None"
            errors.extend(result)
        return errors

    def test_config_errors_name_the_key_path(self) -> None:
        """A bad value in the connector's section gives an error starting with its key path;
        a valid section gives none; another plugin's section is not judged."""
        self.exempt("config")
        section = self.config_section
        if self.plugin is None or section is None or not self.invalid_configs:
            pytest.fail(
                "declare plugin, config_section, valid_config and invalid_configs, "
                "or exempt 'config' with a written reason"
            )
        assert self._validate(section, self.valid_config) == [], "the valid config was refused"
        assert self._validate("kit-not-a-section", {"x": 1}) == [], (
            "hub_validate_config must return None for sections the plugin does not own"
        )
        for value, path in self.invalid_configs:
            errors = self._validate(section, value)
            assert errors, f"an invalid value at {path} was accepted"
            assert all(isinstance(e, str) for e in errors)
            first = errors[0]
            assert first.startswith(path) and first[len(path) : len(path) + 1] in (
                ":",
                ".",
                "[",
                " ",
            ), f"the first error should start with the key path {path!r}: {first!r}"
            leaked = [e for e in errors if found_in(e, fixtures.pii_strings())]
            assert not leaked, f"client data in config errors: {leaked}"


# ---- codecs --------------------------------------------------------------------------------


class CodecContract(_Contract):
    """The checks every codec passes. Set ``codec`` (an instance); see :func:`codec_test_class`.

    ``carries`` (or the codec's own ``carries``) names, per kind, the fields the format
    keeps; round trips compare those. ``records`` replaces the fixture records the codec is
    tried on; ``bad_inputs`` adds inputs that must be refused with a :class:`CodecError`.
    """

    CHECKS: ClassVar[frozenset[str]] = CODEC_CHECKS
    codec: ClassVar[Any] = None
    carries: ClassVar[Mapping[str, frozenset[str]] | None] = None
    records: ClassVar[Sequence[Record] | None] = None
    bad_inputs: ClassVar[Sequence[bytes]] = ()

    def the_codec(self) -> Codec:
        """The codec under test (a class is instantiated without arguments)."""
        codec = _static(self, "codec")
        if codec is None:
            pytest.fail("set `codec` to the codec under test")
        if isinstance(codec, type):
            codec = codec()
        return cast(Codec, codec)

    def carried(self) -> dict[str, frozenset[str]]:
        """Kind → fields compared after a round trip (all data fields when undeclared)."""
        codec = self.the_codec()
        declared = self.carries or getattr(codec, "carries", None)
        if declared:
            return {k: frozenset(v) for k, v in declared.items()}
        return {kind: field_names(kind) | {"key"} for kind in codec.kinds}

    def fixture_records(self) -> list[Record]:
        """The records the codec is tried on: the fixtures of its kinds, unless replaced."""
        if self.records is not None:
            return list(self.records)
        return fixtures.records_of(self.the_codec().kinds)

    def _decode(self, data: bytes, record: Record) -> list[Record]:
        codec = self.the_codec()
        decoded = codec.decode(data, source=record.meta.key.source, owner=record.meta.owner)
        assert isinstance(decoded, list), "decode must return a list of records"
        for d in decoded:
            assert isinstance(d, Record), f"decode returned a {type(d).__name__}, not a Record"
            assert d.meta.key.source == record.meta.key.source, "decode must key in `source`"
            assert d.meta.owner == record.meta.owner, "decode must make `owner` the owner"
        return decoded

    def test_declares_its_interface(self) -> None:
        """Name, kinds and carried fields are declared and name real kinds and fields."""
        self.exempt("interface")
        codec = self.the_codec()
        assert isinstance(codec, Codec), "the codec lacks name, kinds, encode or decode"
        assert isinstance(codec.name, str) and codec.name, "a codec needs a name"
        assert codec.kinds and all(isinstance(k, str) for k in codec.kinds), "declare kinds"
        for kind, names in self.carried().items():
            assert kind in codec.kinds, f"carries names kind {kind!r} the codec does not handle"
            unknown = set(names) - field_names(kind) - PSEUDO_FIELDS
            assert not unknown, f"carries names fields {sorted(unknown)} that {kind} lacks"
        assert self.fixture_records(), "no fixture record has a kind this codec handles"

    def test_round_trip_each_record(self) -> None:
        """Each record, encoded alone and decoded, keeps every carried field."""
        self.exempt("round_trip")
        codec = self.the_codec()
        carried = self.carried()
        problems: list[str] = []
        for record in self.fixture_records():
            data = codec.encode([record])
            assert isinstance(data, bytes), "encode must return bytes"
            same = [d for d in self._decode(data, record) if d.meta.kind == record.meta.kind]
            if len(same) != 1:
                problems.append(f"{record.meta.key}: decoded {len(same)} {record.meta.kind}s")
                continue
            names = carried.get(record.meta.kind, frozenset())
            problems += [f"{record.meta.key} {d}" for d in _differences(record, same[0], names)]
        assert not problems, "round trip lost data:\n" + "\n".join(problems)

    def test_round_trip_batch(self) -> None:
        """The records of one kind and owner, encoded together, decode in order."""
        self.exempt("batch_round_trip")
        codec = self.the_codec()
        carried = self.carried()
        groups: dict[tuple[str, str, str], list[Record]] = {}
        for record in self.fixture_records():
            m = record.meta
            groups.setdefault((m.kind, m.owner, m.key.source), []).append(record)
        problems: list[str] = []
        for (kind, _owner, _source), group in groups.items():
            decoded = self._decode(codec.encode(group), group[0])
            same = [d for d in decoded if d.meta.kind == kind]
            if len(same) != len(group):
                problems.append(f"{len(group)} {kind} records decoded as {len(same)}")
                continue
            names = carried.get(kind, frozenset())
            for original, back in zip(group, same, strict=True):
                problems += [
                    f"{original.meta.key} {d}" for d in _differences(original, back, names)
                ]
        assert not problems, "batch round trip lost data:\n" + "\n".join(problems)

    def _bad_inputs(self) -> list[tuple[str, bytes]]:
        codec = self.the_codec()
        inputs = [(f"garbage #{i}", g) for i, g in enumerate(GARBAGE)]
        for record in self.fixture_records():
            data = codec.encode([record])
            for cut in sorted({len(data) // 4, len(data) // 2, 3 * len(data) // 4, len(data) - 1}):
                inputs.append((f"{record.meta.key} cut at byte {cut}", data[:cut]))
        return inputs

    def test_bad_input_is_a_codec_error(self) -> None:
        """Unreadable input gives a CodecError naming where (or nothing), never a crash, and
        the error never repeats client data."""
        self.exempt("bad_input")
        codec = self.the_codec()
        refused = 0
        pii = fixtures.pii_strings()
        for label, data in self._bad_inputs():
            try:
                decoded = codec.decode(data, source=fixtures.SOURCE, owner=fixtures.OWNER)
            except CodecError as exc:
                refused += 1
                assert isinstance(exc.location, str) and exc.location.strip(), (
                    f"{label}: the CodecError names no location"
                )
                assert not found_in(str(exc), pii), f"{label}: the error repeats client data"
            except Exception as exc:
                pytest.fail(f"{label}: decode raised {type(exc).__name__}, not CodecError")
            else:
                assert isinstance(decoded, list), f"{label}: decode must return a list"
        assert refused, "no garbage input was refused with a CodecError"
        for i, data in enumerate(self.bad_inputs):
            with pytest.raises(CodecError) as caught:
                codec.decode(data, source=fixtures.SOURCE, owner=fixtures.OWNER)
            assert caught.value.location.strip(), f"bad_inputs[{i}]: the error names no location"


def codec_test_class(
    codec: Any,
    *,
    name: str | None = None,
    carries: Mapping[str, frozenset[str]] | None = None,
    exemptions: Mapping[str, str] | None = None,
    **attributes: Any,
) -> type[CodecContract]:
    """A ready-made contract test class: ``TestMyCodec = codec_test_class(MyCodec())``.

    Keyword ``attributes`` set any other :class:`CodecContract` attribute (``plugin``,
    ``config_section``, ``valid_config``, ``invalid_configs``, ``records``, ``bad_inputs``).
    """
    label = name or getattr(codec, "name", type(codec).__name__)
    body: dict[str, Any] = {
        "codec": codec,
        "carries": carries,
        "exemptions": dict(exemptions or {}),
        "__doc__": f"Contract checks of the {label} codec.",
        **attributes,
    }
    return type(f"Test{_camel(str(label))}Codec", (CodecContract,), body)


# ---- sinks ---------------------------------------------------------------------------------


class SinkContract(_Contract):
    """The checks every sink passes.

    Set ``sink_factory`` (a function of a scratch folder returning a fresh sink),
    ``receiver`` (``"http"``, ``"mllp"``, ``"folder"`` or a factory of your own) and
    ``options`` (a function of the receiver returning the feed options that aim the sink at
    it). ``kinds`` are the record kinds delivered; ``invalid_options`` lists (options to
    merge in, option name the error must mention) — a ``None`` value removes the option;
    ``environ`` sets environment variables (signing secrets) during the checks.
    """

    CHECKS: ClassVar[frozenset[str]] = SINK_CHECKS
    sink_factory: ClassVar[Callable[[Path], Sink] | None] = None
    receiver: ClassVar[str | ReceiverFactory] = "http"
    options: ClassVar[Callable[[Receiver], Mapping[str, Any]] | None] = None
    kinds: ClassVar[Sequence[str]] = ("client",)
    invalid_options: ClassVar[Sequence[tuple[Mapping[str, Any], str]]] = ()
    environ: ClassVar[Mapping[str, str]] = {}
    file_is_complete: ClassVar[Callable[[bytes], bool] | None] = None
    """For a file sink: whether a file's bytes are a whole file (default: ends in a newline)."""
    timeout_seconds: ClassVar[float] = 30.0
    settle_seconds: ClassVar[float] = 5.0
    """How long a cancelled file write may take to finish or clean up after itself."""

    # ---- fixtures -------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _kit_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.environ.items():
            monkeypatch.setenv(name, value)

    @pytest_asyncio.fixture
    async def kit_receiver(self, tmp_path: Path) -> AsyncIterator[Receiver]:
        """The receiver the sink delivers to, opened for one check."""
        kind = _static(self, "receiver")
        async with open_receiver(kind, tmp_path / "receiver") as receiver:
            yield receiver

    # ---- helpers --------------------------------------------------------------------------

    def new_sink(self, folder: Path) -> Sink:
        """A fresh sink from ``sink_factory`` (given a scratch folder)."""
        factory = _static(self, "sink_factory")
        if factory is None:
            pytest.fail("set `sink_factory` to a function of a folder returning a new sink")
        folder.mkdir(parents=True, exist_ok=True)
        sink = factory(folder)
        assert isinstance(getattr(sink, "name", None), str) and sink.name, "a sink needs a name"
        return cast(Sink, sink)

    def feed_options(self, receiver: Receiver) -> dict[str, Any]:
        """The feed options aimed at ``receiver`` (a fresh dict each call)."""
        make = _static(self, "options")
        if make is None:
            pytest.fail("set `options` to a function of the receiver returning feed options")
        return dict(make(receiver))

    def delivery_records(self) -> list[Record]:
        """The fixture records of ``kinds``."""
        records = fixtures.records_of(self.kinds)
        if not records:
            pytest.fail(f"no fixture record has one of the kinds {list(self.kinds)}")
        return records

    async def deliver(self, sink: Sink, batch: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """``sink.deliver(batch)`` within ``timeout_seconds``; checks the outcome list shape."""
        outcomes = await _bounded(sink.deliver(batch), self.timeout_seconds, "deliver()")
        assert isinstance(outcomes, list), "deliver must return a list of outcomes"
        assert len(outcomes) == len(batch), (
            f"deliver answered {len(outcomes)} outcomes for {len(batch)} deliveries"
        )
        for outcome in outcomes:
            assert isinstance(outcome, DeliveryOutcome), "each outcome is a DeliveryOutcome"
            assert not found_in(outcome.error, fixtures.pii_strings()), (
                f"an outcome's error repeats client data: {outcome.error!r}"
            )
        return list(outcomes)

    @staticmethod
    def _all_ok(batch: Sequence[Delivery], outcomes: Sequence[DeliveryOutcome]) -> None:
        failed = [
            f"delivery {d.outbox_id} ({d.record.meta.kind}): {o.error or 'not ok'}"
            for d, o in zip(batch, outcomes, strict=True)
            if not o.ok
        ]
        assert not failed, "deliveries failed with the receiver up:\n" + "\n".join(failed)

    # ---- checks ---------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_bad_options_are_dead_letters_naming_the_option(
        self, kit_receiver: Receiver, tmp_path: Path
    ) -> None:
        """A feed option that cannot work is refused at once (no retry), naming the option."""
        self.exempt("options")
        if not self.invalid_options:
            pytest.fail("declare invalid_options, or exempt 'options' with a written reason")
        sink = self.new_sink(tmp_path / "sink")
        try:
            record = self.delivery_records()[0]
            for change, option in self.invalid_options:
                options = {**self.feed_options(kit_receiver), **change}
                options = {k: v for k, v in options.items() if v is not None}
                outcomes = await self.deliver(sink, make_deliveries([record], options))
                outcome = outcomes[0]
                assert not outcome.ok, f"bad option {option!r} was delivered anyway"
                assert not outcome.retry, f"bad option {option!r} would be retried forever"
                assert option in outcome.error, (
                    f"the error should name option {option!r}: {outcome.error!r}"
                )
        finally:
            await sink.close()

    @pytest.mark.asyncio
    async def test_one_outcome_per_delivery_in_order(
        self, kit_receiver: Receiver, tmp_path: Path
    ) -> None:
        """An empty batch gives no outcome; a batch gives one ok outcome per delivery."""
        self.exempt("outcomes")
        sink = self.new_sink(tmp_path / "sink")
        try:
            assert await self.deliver(sink, []) == []
            batch = make_deliveries(self.delivery_records(), self.feed_options(kit_receiver))
            self._all_ok(batch, await self.deliver(sink, batch))
            assert kit_receiver.bodies(), "the sink answered ok but nothing reached the receiver"
        finally:
            await sink.close()

    @pytest.mark.asyncio
    async def test_idempotent_under_retry(self, kit_receiver: Receiver, tmp_path: Path) -> None:
        """The idempotency key reaches the receiver; a retry with the same key is ok and
        reaches it again."""
        self.exempt("idempotent_retry")
        sink = self.new_sink(tmp_path / "sink")
        try:
            options = self.feed_options(kit_receiver)
            for record in self.delivery_records()[:2]:
                batch = make_deliveries([record], options)
                key = batch[0].idempotency_key
                self._all_ok(batch, await self.deliver(sink, batch))
                seen = kit_receiver.saw(key)
                assert seen >= 1, (
                    "the idempotency key did not reach the receiver: pass "
                    "Delivery.idempotency_key through (a header, a field, a column)"
                )
                self._all_ok(batch, await self.deliver(sink, batch))
                again = kit_receiver.saw(key)
                if kit_receiver.counts_arrivals:
                    assert again > seen, "the retried delivery did not reach the receiver"
                else:
                    assert again >= 1, "the retried delivery left no file with its key"
        finally:
            await sink.close()

    @pytest.mark.asyncio
    async def test_partner_failure_is_a_retry_outcome(
        self, kit_receiver: Receiver, tmp_path: Path
    ) -> None:
        """A partner that is down gives retry outcomes (never an exception); once it is back
        the same deliveries go through."""
        self.exempt("partner_failure")
        sink = self.new_sink(tmp_path / "sink")
        try:
            batch = make_deliveries(self.delivery_records()[:3], self.feed_options(kit_receiver))
            kit_receiver.fail(True)
            try:
                outcomes = await self.deliver(sink, batch)
            finally:
                kit_receiver.fail(False)
            for d, o in zip(batch, outcomes, strict=True):
                assert not o.ok, f"delivery {d.outbox_id} was ok while the partner was down"
                assert o.retry, f"delivery {d.outbox_id}: a partner's outage must be retried"
            self._all_ok(batch, await self.deliver(sink, batch))
        finally:
            await sink.close()

    async def _wait_settled(self, receiver: Receiver) -> None:
        await _poll(lambda: not receiver.leftovers(), self.settle_seconds)
        assert not receiver.leftovers(), (
            f"a cancelled delivery left partial files: {receiver.leftovers()}"
        )

    def _check_files(self, receiver: Receiver) -> None:
        check = _static(self, "file_is_complete") or (lambda body: body.endswith(b"\n"))
        for body in receiver.bodies():
            assert not body or check(body), "a cancelled delivery left a half-written file"

    @pytest.mark.asyncio
    async def test_cancellation_leaves_nothing_half_written(
        self, kit_receiver: Receiver, tmp_path: Path
    ) -> None:
        """A deliver() cancelled at any point stops in bounded time and leaves no partial
        file; a delivery held by the partner can be cancelled; the sink still works after."""
        self.exempt("cancellation")
        sink = self.new_sink(tmp_path / "sink")
        options = self.feed_options(kit_receiver)
        records = self.delivery_records() * 5
        try:
            for step in CANCEL_STEPS:
                batch = make_deliveries(records, options, feed=f"kit-cancel-{step}")
                task = asyncio.ensure_future(sink.deliver(batch))
                for _ in range(step):
                    await asyncio.sleep(0)
                task.cancel()
                await _bounded(
                    asyncio.gather(task, return_exceptions=True), 10.0, "a cancelled deliver()"
                )
                await self._wait_settled(kit_receiver)
                if not kit_receiver.counts_arrivals:
                    self._check_files(kit_receiver)
            if kit_receiver.counts_arrivals:
                await self._cancel_held(sink, kit_receiver, options)
            batch = make_deliveries(self.delivery_records(), options, feed="kit-after-cancel")
            self._all_ok(batch, await self.deliver(sink, batch))
        finally:
            kit_receiver.release()
            await sink.close()
            await sink.close()

    async def _cancel_held(self, sink: Sink, receiver: Receiver, options: dict[str, Any]) -> None:
        """Cancel a delivery while the partner holds its answer back."""
        batch = make_deliveries(self.delivery_records(), options, feed="kit-held")
        receiver.hold()
        try:
            task = asyncio.ensure_future(sink.deliver(batch))
            await _poll(lambda: bool(receiver.pending()) or task.done(), 10.0)
            assert receiver.pending() or task.done(), "the delivery never reached the receiver"
            task.cancel()
            await _bounded(
                asyncio.gather(task, return_exceptions=True), 10.0, "a cancelled deliver()"
            )
        finally:
            receiver.release()

    @pytest.mark.asyncio
    async def test_close_is_safe_twice(self, kit_receiver: Receiver, tmp_path: Path) -> None:
        """close() on an unused sink and on a used one, twice each, never raises."""
        self.exempt("close_twice")
        unused = self.new_sink(tmp_path / "unused")
        await _bounded(unused.close(), 10.0, "close()")
        await _bounded(unused.close(), 10.0, "a second close()")
        sink = self.new_sink(tmp_path / "sink")
        batch = make_deliveries(self.delivery_records()[:1], self.feed_options(kit_receiver))
        self._all_ok(batch, await self.deliver(sink, batch))
        await _bounded(sink.close(), 10.0, "close()")
        await _bounded(sink.close(), 10.0, "a second close()")

    @pytest.mark.asyncio
    async def test_only_gated_data_reaches_the_sink(
        self, kit_receiver: Receiver, tmp_path: Path
    ) -> None:
        """Through a real hub, only records the consent gate released reach the receiver:
        consented clients arrive; unconsented and victim-service-provider clients never do."""
        self.exempt("gate")
        sink = self.new_sink(tmp_path / "sink")
        try:
            run = await run_gated_hub(
                tmp_path / "gated-hub",
                sink,
                self.feed_options(kit_receiver),
                kinds=self.kinds,
                receiver=kit_receiver,
            )
        finally:
            await sink.close()
        refused_keys = {(r.meta.kind, r.meta.key.id) for r in run.refused()}
        queued_refused = sorted(k for k in run.statuses if k in refused_keys)
        assert not queued_refused, f"records the gate refuses were queued: {queued_refused}"
        not_delivered = {k: s for k, s in run.statuses.items() if s != "delivered"}
        assert not not_delivered, f"permitted entries were not delivered: {not_delivered}"
        assert run.delivered(), "nothing was delivered through the gated hub"
        arrived = b"\n".join(run.arrived)
        assert arrived, "the sink reported deliveries but nothing reached the receiver"
        leaks = found_in_bytes(arrived, fixtures.distinct_pii(run.refused(), run.permitted()))
        assert not leaks, f"data of clients the gate refused reached the receiver: {leaks}"
        if "client" in self.kinds:
            for record in run.permitted():
                if record.meta.kind == "client":
                    assert record.meta.key.id.encode() in arrived, (
                        f"consented client {record.meta.key.id} did not arrive"
                    )


def sink_test_class(
    sink_factory: Callable[[Path], Sink],
    *,
    receiver: str | ReceiverFactory = "http",
    options: Callable[[Receiver], Mapping[str, Any]],
    name: str | None = None,
    exemptions: Mapping[str, str] | None = None,
    **attributes: Any,
) -> type[SinkContract]:
    """A ready-made contract test class for a sink.

    ``TestMySink = sink_test_class(lambda folder: MySink(), receiver="http",
    options=lambda r: {"url": r.url})``; keyword ``attributes`` set any other
    :class:`SinkContract` attribute (``kinds``, ``invalid_options``, ``environ``, ``plugin``,
    ``config_section``, ``valid_config``, ``invalid_configs``).
    """
    label = name or "Sink"
    body: dict[str, Any] = {
        "sink_factory": staticmethod(sink_factory),
        "receiver": staticmethod(receiver) if callable(receiver) else receiver,
        "options": staticmethod(options),
        "exemptions": dict(exemptions or {}),
        "__doc__": f"Contract checks of the {label} sink.",
        **{
            k: staticmethod(v) if k == "file_is_complete" and callable(v) else v
            for k, v in attributes.items()
        },
    }
    return type(f"Test{_camel(label)}Sink", (SinkContract,), body)


# ---- stores --------------------------------------------------------------------------------


STORE_CHECKS = frozenset({"deletion_time"})
"""The checks of :class:`StoreContract`."""


class StoreContract:
    """Checks every store adapter passes on when records were marked deleted
    (:attr:`~hub.core.ports.RecordRow.deleted_at`, what a delta export reads to carry
    deletions). Set ``store_factory``: a function of a scratch folder returning an async
    context manager that yields an open, migrated, empty store.

    Rows are written in batches under and over 64 (a bulk path, such as PostgreSQL's
    ``COPY``, must keep the same rule as row-by-row writes).
    """

    CHECKS: ClassVar[frozenset[str]] = STORE_CHECKS
    store_factory: ClassVar[Callable[[Path], AbstractAsyncContextManager[Store]] | None] = None

    @pytest_asyncio.fixture
    async def kit_store(self, tmp_path: Path) -> AsyncIterator[Store]:
        """The store under test, open and migrated, for one check."""
        factory = _static(self, "store_factory")
        if factory is None:
            pytest.fail("set `store_factory` to a function of a folder opening a new store")
        async with factory(tmp_path / "store") as store:
            yield store

    @staticmethod
    def kit_row(source_id: str, version: str, *, deleted: bool = False) -> RecordRow:
        """A small source row of the kit's source (no client data)."""
        payload = b'{"fields":{"n":"' + source_id.encode() + b'"}}'
        return RecordRow(
            kind="kit.row",
            source=fixtures.SOURCE,
            source_id=source_id,
            owner=fixtures.OWNER,
            version=version,
            payload=payload,
            payload_hash=f"{source_id}-{version}-{int(deleted)}",
            source_system="kit",
            received_at=fixtures.RECEIVED_AT.isoformat(timespec="microseconds"),
            deleted=deleted,
        )

    @staticmethod
    async def _stored(store: Store, ids: Sequence[str]) -> dict[str, RecordRow]:
        async with store.transaction() as tx:
            found = await tx.records_by_keys([("kit.row", fixtures.SOURCE, i) for i in ids])
        return {key[2]: row for key, row in found.items()}

    @staticmethod
    def _when(stamp: str | None, before: datetime, after: datetime) -> datetime:
        """A ``deleted_at`` read back: UTC ISO text of a time between ``before`` and
        ``after``."""
        assert stamp is not None, "deleted_at is not set"
        at = datetime.fromisoformat(stamp)
        assert at.tzinfo is not None and at.utcoffset() == UTC.utcoffset(None), (
            f"deleted_at {stamp!r} is not a UTC time"
        )
        assert before <= at <= after, f"deleted_at {stamp!r} is not the time of the write"
        return at

    @pytest.mark.asyncio
    @pytest.mark.parametrize("size", [3, 80])
    async def test_marking_deleted_records_the_time_once(self, kit_store: Store, size: int) -> None:
        """``mark_deleted`` (and ``mark_deleted_except``) give each record they mark the
        transaction's time, one time for all; a record marked deleted already keeps its
        time; live records have none; version and data are kept."""
        ids = [f"m{i:03d}" for i in range(size)]
        async with kit_store.transaction() as tx:
            await tx.upsert_records([self.kit_row(i, "2025-01-01T00:00:00") for i in ids])
        live = await self._stored(kit_store, ids)
        assert all(r.deleted_at is None and not r.deleted for r in live.values())
        before = datetime.now(UTC)
        async with kit_store.transaction() as tx:
            assert await tx.mark_deleted("kit.row", fixtures.SOURCE, ids[:2]) == 2
            keep = ids[:-1]
            assert await tx.mark_deleted_except("kit.row", fixtures.SOURCE, keep) == 1
        after = datetime.now(UTC)
        rows = await self._stored(kit_store, ids)
        marked = [ids[0], ids[1], ids[-1]]
        times = {self._when(rows[i].deleted_at, before, after) for i in marked}
        assert len(times) == 1, "records marked in one transaction have different times"
        assert all(rows[i].deleted for i in marked)
        assert all(rows[i].version == live[i].version for i in marked), "version changed"
        assert all(rows[i].payload == live[i].payload for i in marked), "data changed"
        assert all(rows[i].deleted_at is None for i in ids if i not in marked)
        first = rows[ids[0]].deleted_at
        async with kit_store.transaction() as tx:
            assert await tx.mark_deleted("kit.row", fixtures.SOURCE, ids[:1]) == 0
        assert (await self._stored(kit_store, ids[:1]))[ids[0]].deleted_at == first
        seen: dict[str, str | None] = {}
        async for batch in kit_store.iter_records("kit.row", fixtures.SOURCE):
            seen.update((r.source_id, r.deleted_at) for r in batch)
        assert seen == {i: rows[i].deleted_at for i in ids}, "iter_records lacks deleted_at"

    @pytest.mark.asyncio
    @pytest.mark.parametrize("size", [3, 80])
    async def test_writes_keep_the_deletion_time_in_step(self, kit_store: Store, size: int) -> None:
        """A live version written over a deleted record clears its time; a deleted version
        written over a live or new record gets the transaction's time; one written over a
        record deleted already keeps the first time."""
        ids = [f"w{i:03d}" for i in range(size)]
        v1, v2, v3 = "2025-01-01T00:00:00", "2025-02-01T00:00:00", "2025-03-01T00:00:00"
        async with kit_store.transaction() as tx:
            await tx.upsert_records([self.kit_row(i, v1) for i in ids])
            await tx.mark_deleted("kit.row", fixtures.SOURCE, ids)
        async with kit_store.transaction() as tx:
            outcomes = await tx.upsert_records([self.kit_row(i, v1) for i in ids])
        assert set(outcomes) == {"updated"}, "re-imported alive at the same version: an update"
        rows = await self._stored(kit_store, ids)
        assert all(not r.deleted and r.deleted_at is None for r in rows.values()), (
            "a record written alive keeps a deletion time"
        )
        new = [f"n{i:03d}" for i in range(size)]
        before = datetime.now(UTC)
        async with kit_store.transaction() as tx:
            await tx.upsert_records([self.kit_row(i, v2, deleted=True) for i in ids + new])
        after = datetime.now(UTC)
        rows = await self._stored(kit_store, ids + new)
        times = {self._when(r.deleted_at, before, after) for r in rows.values()}
        assert len(times) == 1 and all(r.deleted for r in rows.values())
        first = rows[ids[0]].deleted_at
        async with kit_store.transaction() as tx:
            await tx.upsert_records([self.kit_row(i, v3, deleted=True) for i in ids])
        rows = await self._stored(kit_store, ids)
        assert {r.version for r in rows.values()} == {v3}
        assert {r.deleted_at for r in rows.values()} == {first}, (
            "a newer deleted version moved the time the record was deleted"
        )


def _camel(text: str) -> str:
    """``hl7-mllp`` → ``Hl7Mllp`` (a class name part)."""
    parts = [p for p in "".join(c if c.isalnum() else " " for c in text).split() if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Connector"
