"""The webhook sink and its signature: what a receiver sees and how it verifies it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from hub.core.ports import Delivery
from hub.delivery import backoff_seconds
from hub.sinks.signing import (
    SigningError,
    check_url,
    outcome_for_status,
    parse_retry_after,
    secrets_from_env,
    signature_header,
)
from hub.sinks.webhook import WebhookSink, verify_signature

BODY = b'{"idempotency_key":"k1","record":{}}'


def test_delivery_signature_verifies_with_the_secret() -> None:
    header = signature_header(BODY, [b"secret-a"], timestamp=1_700_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000"
    expected = hmac.new(b"secret-a", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert v1 == f"v1={expected}"
    assert verify_signature(header, BODY, [b"secret-a"], now=1_700_000_010)
    assert verify_signature(header, BODY, ["secret-a"], now=1_700_000_010)


def test_delivery_signature_rejects_wrong_secret_or_altered_body() -> None:
    header = signature_header(BODY, [b"secret-a"], timestamp=1_700_000_000)
    assert not verify_signature(header, BODY, [b"secret-b"], now=1_700_000_000)
    assert not verify_signature(header, BODY + b" ", [b"secret-a"], now=1_700_000_000)
    assert not verify_signature("garbage", BODY, [b"secret-a"], now=1_700_000_000)
    assert not verify_signature("t=1700000000", BODY, [b"secret-a"], now=1_700_000_000)


def test_delivery_signature_rotation_either_secret_verifies() -> None:
    header = signature_header(BODY, [b"old", b"new"], timestamp=1_700_000_000)
    assert header.count("v1=") == 2
    assert verify_signature(header, BODY, [b"old"], now=1_700_000_000)
    assert verify_signature(header, BODY, [b"new"], now=1_700_000_000)
    assert verify_signature(header, BODY, [b"other", b"new"], now=1_700_000_000)
    assert not verify_signature(header, BODY, [b"other"], now=1_700_000_000)


def test_delivery_signature_replay_window_is_five_minutes() -> None:
    header = signature_header(BODY, [b"s"], timestamp=1_700_000_000)
    assert verify_signature(header, BODY, [b"s"], now=1_700_000_300)
    assert not verify_signature(header, BODY, [b"s"], now=1_700_000_301)
    assert not verify_signature(header, BODY, [b"s"], now=1_699_999_699)
    assert verify_signature(header, BODY, [b"s"], tolerance=600, now=1_700_000_500)


def test_delivery_secrets_come_from_named_env_vars_never_echoed() -> None:
    env = {"A": "zq-secret-zq", "B": ""}
    assert secrets_from_env(["A", "B"], env) == [b"zq-secret-zq"]
    with pytest.raises(SigningError, match="A, B") as err:
        secrets_from_env(["A", "B"], {"A": "", "B": ""})
    assert "zq-secret-zq" not in str(err.value)
    with pytest.raises(SigningError) as err:
        secrets_from_env([123], env)
    assert "zq-secret-zq" not in str(err.value)
    with pytest.raises(SigningError, match="secret_envs"):
        secrets_from_env(None, env)


def test_delivery_http_status_classification() -> None:
    assert outcome_for_status(200).ok
    assert outcome_for_status(204).ok
    too_many = outcome_for_status(429, "7")
    assert (too_many.ok, too_many.retry, too_many.retry_after) == (False, True, 7.0)
    assert outcome_for_status(503).retry
    assert outcome_for_status(408).retry
    gone = outcome_for_status(404)
    assert (gone.ok, gone.retry, gone.error) == (False, False, "HTTP 404 (not retried)")
    assert not outcome_for_status(301).retry


def test_delivery_retry_after_http_date() -> None:
    now = time.time()
    when = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    got = parse_retry_after(when, now=now)
    assert got is not None and 28 <= got <= 31
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("²") is None  # a digit to isdigit(), not to int()
    assert parse_retry_after("99999999999999999999999") is None


def test_a_signature_header_with_a_non_ascii_timestamp_is_invalid_not_an_error() -> None:
    assert not verify_signature("t=²,v1=00", BODY, [b"secret-a"], now=1_700_000_000)
    # a non-ASCII signature: compare_digest() raises TypeError on such str values
    assert not verify_signature("t=1700000000,v1=é", BODY, [b"secret-a"], now=1_700_000_000)


def test_delivery_url_policy() -> None:
    assert check_url("https://partner.example/hook") is None
    assert check_url("http://127.0.0.1:8080/hook") is None
    assert check_url("http://localhost/hook") is None
    assert "https" in str(check_url("http://partner.example/hook"))
    assert check_url("http://partner.example/hook", allow_insecure_http=True) is None
    assert check_url("ftp://x/y") is not None
    assert check_url(None) is not None


def test_delivery_backoff_grows_with_jitter_caps_and_honours_retry_after() -> None:
    assert backoff_seconds(1, 2.0, 3600, rand=0.0) == 1.0
    assert backoff_seconds(1, 2.0, 3600, rand=0.999) == pytest.approx(2.0, rel=0.01)
    assert backoff_seconds(4, 2.0, 3600, rand=0.0) == 8.0
    assert backoff_seconds(30, 2.0, 3600, rand=0.999) <= 3600
    assert backoff_seconds(1, 2.0, 3600, retry_after=120, rand=0.5) == 120
    assert backoff_seconds(1, 2.0, 60, retry_after=600, rand=0.5) == 600
    assert backoff_seconds(1, 2.0, 60, retry_after=1e9, rand=0.5) == 86_400


def _delivery(i: int, options: dict[str, Any]) -> Delivery:
    from hub.core.records import Client, Provenance, RecordMeta, SourceKey

    meta = RecordMeta(
        "client", SourceKey("s", f"c{i}"), "o", Provenance("t", datetime.now(UTC), ""), "1"
    )
    return Delivery(
        i, "feed-a", "partner", f"key-{i}", Client(meta=meta), {"sex": "Female"}, options
    )


async def test_delivery_webhook_sink_posts_signed_json(receiver: Any, h: Any) -> None:
    options = {"url": receiver.url, "secret_envs": ["OLD_SECRET", "NEW_SECRET"]}
    sink = WebhookSink(environ={"OLD_SECRET": "old", "NEW_SECRET": "new"})
    try:
        outcomes = await sink.deliver([_delivery(1, options), _delivery(2, options)])
    finally:
        await sink.close()
    assert [o.ok for o in outcomes] == [True, True]
    seen = sorted(receiver.requests, key=lambda s: s.key)
    assert [s.key for s in seen] == ["key-1", "key-2"]
    first = seen[0]
    assert first.headers["Content-Type"] == "application/json"
    assert first.json == {
        "idempotency_key": "key-1",
        "feed": "feed-a",
        "recipient": "partner",
        "kind": "client",
        "record": {"sex": "Female"},
    }
    assert first.headers["X-Hub-Signature"].count("v1=") == 2
    assert verify_signature(first.headers["X-Hub-Signature"], first.body, [b"new"])


async def test_delivery_webhook_sink_answers_each_failure_kind(receiver: Any) -> None:
    env = {"S": "x"}

    def behaviour(seen: Any) -> tuple[int, dict[str, str]]:
        return {"key-1": (429, {"Retry-After": "3"}), "key-2": (410, {})}.get(seen.key, (200, {}))

    receiver.behaviour = behaviour
    ok_options = {"url": receiver.url, "secret_envs": ["S"]}
    sink = WebhookSink(environ=env)
    try:
        limited, gone, fine = await sink.deliver(
            [_delivery(1, ok_options), _delivery(2, ok_options), _delivery(3, ok_options)]
        )
        (no_secret,) = await sink.deliver(
            [_delivery(4, {"url": receiver.url, "secret_envs": ["NOPE"]})]
        )
        (plain_http,) = await sink.deliver(
            [_delivery(5, {"url": "http://partner.example/x", "secret_envs": ["S"]})]
        )
        (refused,) = await sink.deliver(
            [
                _delivery(
                    6, {"url": "http://127.0.0.1:9/x", "secret_envs": ["S"], "timeout_seconds": 2}
                )
            ]
        )
    finally:
        await sink.close()
    assert (limited.retry, limited.retry_after, limited.error) == (True, 3.0, "HTTP 429")
    assert (gone.ok, gone.retry) == (False, False)
    assert fine.ok
    assert (no_secret.retry, no_secret.error) == (
        False,
        "none of the signing secret variables is set: NOPE",
    )
    assert not plain_http.retry and "https" in plain_http.error
    assert refused.retry and refused.error.startswith("connection error")


async def test_delivery_webhook_sink_timeout_is_retryable(receiver: Any) -> None:
    async def hang(_seen: Any) -> tuple[int, dict[str, str]]:
        await asyncio.sleep(2)
        return 200, {}

    receiver.behaviour = hang
    sink = WebhookSink(environ={"S": "x"})
    try:
        (outcome,) = await sink.deliver(
            [_delivery(1, {"url": receiver.url, "secret_envs": ["S"], "timeout_seconds": 0.2})]
        )
    finally:
        await sink.close()
    assert (outcome.ok, outcome.retry, outcome.error) == (False, True, "timeout after 0.2s")


async def test_delivery_worker_honours_retry_after(hub: Any, receiver: Any, h: Any) -> None:
    from hub.delivery import DeliveryWorker, collect_sinks

    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    times: list[float] = []

    def behaviour(_seen: Any) -> tuple[int, dict[str, str]]:
        times.append(time.monotonic())
        return (429, {"Retry-After": "1"}) if len(times) == 1 else (200, {})

    receiver.behaviour = behaviour
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        sinks = collect_sinks(ctx)
        worker = DeliveryWorker(ctx, sinks, "w")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await h.wait_until(lambda: len(times) == 2, within=5)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await sinks["webhook"].close()
        assert times[1] - times[0] >= 0.95
        (row,) = await ctx.store.list_outbox()
        assert (row.status, row.attempts) == ("delivered", 2)


def test_delivery_documented_receiver_code_verifies_hub_signatures() -> None:
    """The copy-paste verifier in docs/webhooks.md agrees with the hub's signer."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    verify = namespace["verify_signature"]
    header = signature_header(BODY, [b"old", b"new"], timestamp=1_700_000_000)
    assert verify(header, BODY, [b"new"], now=1_700_000_100)
    assert not verify(header, BODY, [b"new"], now=1_700_000_301)
    assert not verify(header, BODY + b"x", [b"new"], now=1_700_000_000)
    assert not verify("t=1700000000,v1=é", BODY, [b"new"], now=1_700_000_000)
