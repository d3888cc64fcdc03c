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


def import_file(tmp_path: Path, hub_cli, **changes: str) -> None:
    path = tmp_path / "again.json"
    body = {"id": "mpa-1", "client": {"system": SYSTEM, "value": "1"}, "signed_on": "2025-01-01"}
    path.write_text(orjson.dumps([{**body, **changes}]).decode(), encoding="utf-8")
    result = hub_cli("consent", "import", str(path))
    assert result.exit_code == 0, result.output


def shown_revocations(hub_cli) -> list[str | None]:
    return [
        c["revoked_on"] for c in orjson.loads(hub_cli("consent", "show", "--client", "1").stdout)
    ]


def test_importing_the_consent_again_does_not_undo_its_revocation(
    tmp_path, hub_dir, hub_cli
) -> None:
    # An agency re-sends its old roster (the consent as signed, without the revocation):
    # the client's revocation stands.
    setup(tmp_path, hub_dir, hub_cli)
    assert revoke(hub_cli, "2025-03-01").exit_code == 0
    import_file(tmp_path, hub_cli)
    assert shown_revocations(hub_cli) == ["2025-03-01"]
    out = decision_at(hub_cli, "2025-04-01T12:00:00+00:00")
    assert (out["decision"], out["reasons"]) == ("deny", ["CONSENT_REVOKED"])
    # Imported with a later revocation date: the earlier one stands; an earlier one wins.
    import_file(tmp_path, hub_cli, revoked_on="2025-09-01")
    assert shown_revocations(hub_cli) == ["2025-03-01"]
    import_file(tmp_path, hub_cli, revoked_on="2025-02-01")
    assert shown_revocations(hub_cli) == ["2025-02-01"]


def test_a_new_signature_under_the_same_id_replaces_the_revocation(
    tmp_path, hub_dir, hub_cli
) -> None:
    # Rule 4: a consent signed after the revocation replaces it, even under the same id.
    setup(tmp_path, hub_dir, hub_cli)
    assert revoke(hub_cli, "2025-03-01").exit_code == 0
    import_file(tmp_path, hub_cli, signed_on="2025-05-01")
    assert shown_revocations(hub_cli) == [None]
    assert decision_at(hub_cli, "2025-06-01T12:00:00+00:00")["decision"] == "permit"
