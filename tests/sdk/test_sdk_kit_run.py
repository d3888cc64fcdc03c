"""The kit as an author runs it: a pytest session with the kit's pytest plugin.

One run of pytest in a subprocess, on a test module written here: the log scan fails a codec
that logs a client's name, an exemption without a reason fails, and the plugin's
``gated_hub`` and ``kit_records`` fixtures work.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE = """
import logging

import pytest

from hub.sinks.webhook import WebhookSink
from hub.testing import codec_test_class, open_receiver
from plugins.hl7.codec import Hl7Codec


class LoggingCodec(Hl7Codec):
    def decode(self, data, *, source, owner):
        records = super().decode(data, source=source, owner=owner)
        for record in records:
            names = getattr(record, "names", ())
            logging.getLogger("kitdemo").debug("decoded %s", [n.family for n in names])
        return records


TestLoggingCodec = codec_test_class(LoggingCodec(), exemptions={"config": "a demo"})
TestNoReason = codec_test_class(Hl7Codec(), exemptions={"config": ""})


def test_kit_records(kit_records):
    assert len(kit_records) > 10


@pytest.mark.asyncio
async def test_gated_hub(gated_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_RUN_SECRET", "s")
    sink = WebhookSink()
    async with open_receiver("http", tmp_path) as receiver:
        options = {"url": receiver.url, "secret_envs": ["KIT_RUN_SECRET"]}
        run = await gated_hub(sink, options, receiver=receiver)
        await sink.close()
    assert run.delivered() == {("client", "C-1001"), ("client", "C-1003"), ("client", "C-1004")}
    assert len(run.arrived) == 3
"""


def outcomes(report: Path) -> dict[str, str]:
    """Test name → passed / failed / error / skipped, from a JUnit XML report."""
    found: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                state = child.tag if state == "passed" else f"{state}+{child.tag}"
        found[name] = state
    return found


def test_the_kit_in_an_authors_pytest_run(tmp_path: Path) -> None:
    (tmp_path / "test_author_kit.py").write_text(MODULE, encoding="utf-8")
    report = tmp_path / "report.xml"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    registered = any(
        ep.name == "cie_hub" for ep in importlib.metadata.entry_points(group="pytest11")
    )
    if not registered:  # until the hub's pytest11 entry point is installed
        args += ["-p", "hub.testing.pytest_plugin"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [*args, "test_author_kit.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    got = outcomes(report)
    assert got["test_author_kit::test_kit_records"] == "passed", done.stdout
    assert got["test_author_kit::test_gated_hub"] == "passed", done.stdout
    logging_run = got["TestLoggingCodec::test_round_trip_each_record"]
    assert "error" in logging_run, done.stdout
    assert "client data reached the logs" in done.stdout
    assert got["TestNoReason::test_exemptions_have_written_reasons"] == "failure"
    assert got["TestNoReason::test_config_errors_name_the_key_path"] == "failure"
    assert got["TestNoReason::test_round_trip_each_record"] == "passed"
    assert done.returncode == 1
