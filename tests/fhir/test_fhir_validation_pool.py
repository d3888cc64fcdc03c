"""Large Bundles validated in a worker process while the hub maps and stores them: the same
answers as validating first, nothing stored from an invalid Bundle, a dead worker replaced."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from hub.audit import entry_from_row
from hub.config import load_config
from hub.context import make_plugins
from plugins.fhir.bench import patient_bundle
from plugins.fhir.ingest import ingest_bundle
from plugins.fhir.outcome import FhirError
from plugins.fhir.validation import validate_bundle
from plugins.fhir.validation_pool import OFFLOAD_MIN_ENTRIES, ValidationPool, running_pool
from tests.conftest import write_hub

FEED = """
[[feeds]]
name = "to-partner"
recipient = "shelter-a"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
options = {url = "http://127.0.0.1:9/none"}
"""

SIZE = OFFLOAD_MIN_ENTRIES + 5


@asynccontextmanager
async def pooled(hub_factory: Callable[..., Any]) -> AsyncIterator[Any]:
    async with hub_factory(FEED) as ctx:
        pool = ValidationPool(ctx, 1)
        await pool.start()
        try:
            assert running_pool(ctx) is pool
            yield ctx
        finally:
            await pool.stop()
        assert running_pool(ctx) is None


async def nothing_stored(ctx: Any) -> None:
    assert (await ctx.store.count_records()).get("client", 0) == 0
    assert await ctx.store.list_outbox() == []
    assert [entry_from_row(r) async for b in ctx.store.iter_audit() for r in b] == []


def inline_error(body: bytes) -> FhirError:
    with pytest.raises(FhirError) as err:
        validate_bundle(orjson.loads(body))
    return err.value


async def test_a_valid_bundle_is_stored_as_when_validated_first(
    hub_factory: Callable[..., Any],
) -> None:
    async with pooled(hub_factory) as ctx:
        response = await ingest_bundle(ctx, "hospital-x", patient_bundle(SIZE))
        assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * SIZE
        assert (await ctx.store.count_records())["client"] == SIZE


@pytest.mark.parametrize(
    "spoil",
    [
        # a bad element deep in a late entry: found by the worker only
        lambda data: data["entry"][SIZE - 2]["resource"].update(contact=[{"bogus": True}]),
        # data that makes the hub's own mapping fail (a given name that is a number)
        lambda data: data["entry"][SIZE - 1]["resource"].update(name=[{"given": 5}]),
        # data the mapping turns into its own error (an identifier that is not a list)
        lambda data: data["entry"][SIZE - 1]["resource"].update(identifier="x"),
        # a Bundle type the hub refuses before mapping anything
        lambda data: data.update(type="batch", timestamp="yesterday"),
    ],
    ids=["bad-element", "mapping-crashes", "mapping-refuses", "refused-type"],
)
async def test_an_invalid_bundle_answers_its_validation_errors_and_stores_nothing(
    hub_factory: Callable[..., Any], spoil: Callable[[dict[str, Any]], None]
) -> None:
    data = orjson.loads(patient_bundle(SIZE))
    spoil(data)
    body = orjson.dumps(data)
    expected = inline_error(body)
    async with pooled(hub_factory) as ctx:
        with pytest.raises(FhirError) as err:
            await ingest_bundle(ctx, "hospital-x", body)
        assert err.value.status == expected.status == 400
        assert err.value.issues == expected.issues
        await nothing_stored(ctx)


def worker_pids() -> list[int]:
    """This process's children that are multiprocessing workers."""
    me = os.getpid()
    pids = []
    for task in Path(f"/proc/{me}/task").iterdir():
        children = (task / "children").read_text().split()
        for pid in children:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                pids.append(int(pid))
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
async def test_a_killed_worker_is_replaced_and_its_bundle_still_checked(
    hub_factory: Callable[..., Any],
) -> None:
    async with pooled(hub_factory) as ctx:
        before = worker_pids()
        assert before
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        data = orjson.loads(patient_bundle(SIZE))
        data["entry"][3]["resource"]["contact"] = [{"bogus": True}]
        with pytest.raises(FhirError) as err:
            await ingest_bundle(ctx, "hospital-x", orjson.dumps(data))
        assert err.value.issues[0].expression == ("Bundle.entry[3].resource.contact[0].bogus",)
        await nothing_stored(ctx)
        response = await ingest_bundle(ctx, "hospital-x", patient_bundle(SIZE))
        assert len(response["entry"]) == SIZE
        assert set(worker_pids()) - set(before)


def _failing_pool(self: ValidationPool) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=os._exit, initargs=(3,)
    )


async def test_workers_that_cannot_start_leave_validation_in_process(
    hub_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(ValidationPool, "_new_pool", _failing_pool)
    async with hub_factory(FEED) as ctx:
        pool = ValidationPool(ctx, 1)
        await pool.start()
        assert running_pool(ctx) is None
        assert "could not start" in caplog.text
        response = await ingest_bundle(ctx, "hospital-x", patient_bundle(SIZE))
        assert len(response["entry"]) == SIZE
        await pool.stop()


def test_hub_serve_runs_the_configured_workers(tmp_path: Path) -> None:
    def pools(toml: str) -> list[str]:
        plugins = make_plugins()
        cfg = load_config(write_hub(tmp_path, toml), owned_sections=plugins.owned_sections())
        services = plugins.hook.hub_services(ctx=SimpleNamespace(config=cfg, extras={}))
        return [s.name for group in services for s in group if isinstance(s, ValidationPool)]

    assert pools("") == ["fhir-validation"]
    assert pools("[fhir]\nvalidation_workers = 0\n") == []


async def test_the_api_answers_a_large_invalid_bundle_with_its_errors(
    fhir_hub: Callable[..., Any],
) -> None:
    async with fhir_hub() as hub:
        pool = ValidationPool(hub.ctx, 1)
        await pool.start()
        data = orjson.loads(patient_bundle(SIZE))
        data["entry"][SIZE - 3]["resource"]["gender"] = "sometimes"
        status, body, _ = await hub.call("hospital-x", "POST", "", raw=orjson.dumps(data))
        assert status == 400 and body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["expression"] == [f"Bundle.entry[{SIZE - 3}].resource.gender"]
        assert "sometimes" not in orjson.dumps(body).decode()
        assert (await hub.ctx.store.count_records()).get("client", 0) == 0
        status, body, _ = await hub.call("hospital-x", "POST", "", raw=patient_bundle(SIZE))
        assert status == 200 and len(body["entry"]) == SIZE
        await pool.stop()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
async def test_a_worker_that_died_idle_is_replaced(hub_factory: Callable[..., Any]) -> None:
    async with pooled(hub_factory) as ctx:
        before = worker_pids()
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(1.0)  # the pool has noticed: submitting now fails at once
        for start in (0, 100):
            response = await ingest_bundle(ctx, "hospital-x", patient_bundle(SIZE, start))
            assert len(response["entry"]) == SIZE
        assert set(worker_pids()) - set(before)


def conditional_creates(n: int, spoil: bool) -> bytes:
    data = orjson.loads(patient_bundle(n))
    for entry in data["entry"]:
        mrn = entry["resource"]["identifier"][0]
        entry["request"]["ifNoneExist"] = f"identifier={mrn['system']}|{mrn['value']}"
    if spoil:
        data["entry"][n - 1]["resource"]["gender"] = "sometimes"
    return orjson.dumps(data)


async def test_an_invalid_bundle_leaves_no_gate_decision_in_the_audit_log(
    hub_factory: Callable[..., Any],
) -> None:
    async with pooled(hub_factory) as ctx:
        await ingest_bundle(ctx, "hospital-x", patient_bundle(SIZE))
        audited = len([r async for b in ctx.store.iter_audit() for r in b])
        # Conditional creates of stored clients ask the gate about them (audited reads).
        with pytest.raises(FhirError):
            await ingest_bundle(ctx, "hospital-x", conditional_creates(SIZE, spoil=True))
        assert len([r async for b in ctx.store.iter_audit() for r in b]) == audited
        response = await ingest_bundle(ctx, "hospital-x", conditional_creates(SIZE, spoil=False))
        assert {e["response"]["status"] for e in response["entry"]} == {"200 OK"}
        assert len([r async for b in ctx.store.iter_audit() for r in b]) > audited
