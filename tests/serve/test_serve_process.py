"""``hub serve`` as a real process: it starts, answers, and stops gracefully on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVE_TOML = """
[http]
host = "127.0.0.1"
port = 0

[hl7]
port = 0
"""


def start(config: Path) -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).parent / "hub"
    proc = subprocess.Popen(
        [str(exe), "--config", str(config), "serve"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "HUB_LOG_LEVEL": "WARNING"},
    )
    assert proc.stderr is not None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"http listening on (https?://[\d.]+:\d+)", line)
        if m:
            url = m.group(1)
        if "hub ready" in line:
            return proc, url
    proc.kill()
    raise AssertionError("hub serve did not become ready")


def test_serve_answers_and_stops_gracefully_on_sigterm(hub_dir) -> None:
    config = hub_dir(SERVE_TOML)
    proc, url = start(config)
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        rest = proc.stderr.read()
        assert "stopped" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
