"""``hub consent revoke ID --on DATE``: a revocation stands or moves earlier, never later."""

from __future__ import annotations

from pathlib import Path

import orjson

SYSTEM = "hmis:demo"


def setup(tmp_path: Path, hub_dir, hub_cli) -> None:
    hub_dir()
    path = tmp_path / "consents.json"
    path.write_text(
        orjson.dumps(
            [{"id": "mpa-1", "client": {"system": SYSTEM, "value": "1"}, "signed_on": "2025-01-01"}]
        ).decode(),
        encoding="utf-8",
    )
    result = hub_cli("consent", "import", str(path))
    assert result.exit_code == 0, result.output


def decision_at(hub_cli, at: str) -> dict:
    result = hub_cli(
        "consent",
        "check",
        "--client",
        "1",
        "--client-system",
        SYSTEM,
        "--owner",
        "shelter-a",
        "--recipient",
        "cie-211",
        "--purpose",
        "coordination",
        "--at",
        at,
    )
    assert result.exit_code == 0, result.output
    out: dict = orjson.loads(result.stdout)
    return out


def revoke(hub_cli, on: str):
    return hub_cli("consent", "revoke", "mpa-1", "--on", on)


def test_a_later_date_keeps_the_earlier_revocation_and_says_so(tmp_path, hub_dir, hub_cli) -> None:
    setup(tmp_path, hub_dir, hub_cli)
    assert revoke(hub_cli, "2025-03-01").exit_code == 0
    result = revoke(hub_cli, "2025-12-31")
    assert result.exit_code == 0, result.output
    kept = {"revoked": "mpa-1", "on": "2025-03-01", "unchanged": True}
    assert orjson.loads(result.stdout) == kept
    assert "mpa-1" in result.stderr and "already revoked on 2025-03-01" in result.stderr
    assert "2025-12-31 not recorded" in result.stderr
    # Sharing does not reopen between the two dates.
    out = decision_at(hub_cli, "2025-04-01T12:00:00+00:00")
    assert (out["decision"], out["reasons"]) == ("deny", ["CONSENT_REVOKED"])
    shown = orjson.loads(hub_cli("consent", "show", "--client", "1").stdout)
    assert [c["revoked_on"] for c in shown] == ["2025-03-01"]


def test_the_same_date_again_changes_nothing(tmp_path, hub_dir, hub_cli) -> None:
    setup(tmp_path, hub_dir, hub_cli)
    assert revoke(hub_cli, "2025-03-01").exit_code == 0
    result = revoke(hub_cli, "2025-03-01")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["unchanged"] is True
    assert "already revoked on 2025-03-01" in result.stderr


def test_an_earlier_date_moves_the_revocation_earlier(tmp_path, hub_dir, hub_cli) -> None:
    setup(tmp_path, hub_dir, hub_cli)
    assert revoke(hub_cli, "2025-06-01").exit_code == 0
    assert decision_at(hub_cli, "2025-04-01T12:00:00+00:00")["decision"] == "permit"
    result = revoke(hub_cli, "2025-03-01")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"revoked": "mpa-1", "on": "2025-03-01"}
    assert result.stderr == ""
    assert decision_at(hub_cli, "2025-04-01T12:00:00+00:00")["decision"] == "deny"


def test_a_date_before_signing_is_refused(tmp_path, hub_dir, hub_cli) -> None:
    setup(tmp_path, hub_dir, hub_cli)
    result = revoke(hub_cli, "2024-12-31")
    assert result.exit_code == 2
    assert "before it was signed" in result.stderr
    assert decision_at(hub_cli, "2025-04-01T12:00:00+00:00")["decision"] == "permit"


def test_help_says_a_revocation_never_moves_later(hub_dir, hub_cli) -> None:
    hub_dir()
    result = hub_cli("consent", "revoke", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "only stands or moves earlier, never later" in text
    assert "the earlier date is kept" in text
