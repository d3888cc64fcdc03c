"""``hub demo``: the main job end to end, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_shows_consented_and_withheld_deliveries(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "hub"
    result = subprocess.run(
        [str(exe), "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Mercy General received" in out and "211 San Diego received" in out
    for reason in (
        "AGENCY_EXCLUDED",
        "CONSENT_REVOKED",
        "NO_CONSENT",
        "VSP_RECORD",
        "DV_LOCATION_WITHHELD",
    ):
        assert reason in out, reason
    assert "chain intact" in out
    # Eve (a victim service provider's client) and Dan (no consent) reach nobody
    received = out.split("Mercy General received")[1].split("Withheld or redacted")[0]
    assert "Eve Evans" not in received and "Dan Diaz" not in received
