"""The rules of CONSENT.md through ``hub consent check``, the contract the checks use."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson

from hub.synthetic import client

SYSTEM = "hmis:demo"


def write_consents(tmp_path: Path, *records: dict) -> Path:
    path = tmp_path / "consents.jsonl"
    lines = []
    for r in records:
        base = {
            "client": {"system": SYSTEM, "value": r.pop("pid")},
            "signed_on": "2024-01-01",
            "networks": ["hmis", "cie"],
            "purposes": ["coordination", "referral", "treatment", "eligibility"],
            "recorded_by": "shelter-a",
        }
        base.update(r)
        lines.append(orjson.dumps(base).decode())
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def check(
    hub_cli,
    pid: str,
    *extra: str,
    recipient: str = "hospital-x",
    owner: str = "shelter-a",
    purpose: str = "coordination",
    at: str = "2025-01-15T12:00:00+00:00",
) -> dict:
    result = hub_cli(
        "consent",
        "check",
        "--client",
        pid,
        "--client-system",
        SYSTEM,
        "--owner",
        owner,
        "--recipient",
        recipient,
        "--purpose",
        purpose,
        "--at",
        at,
        *extra,
    )
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert set(out) == {"decision", "released", "redacted", "reasons", "consent_id"}
    return out


def setup(tmp_path, hub_dir, hub_cli, seed_records, consents: list[dict], clients=()) -> None:
    config = hub_dir()
    if clients:
        seed_records(config, list(clients))
    result = hub_cli("consent", "import", str(write_consents(tmp_path, *consents)))
    assert result.exit_code == 0, result.output


def test_full_consent_permits_default_categories(tmp_path, hub_dir, hub_cli, seed_records) -> None:
    setup(
        tmp_path,
        hub_dir,
        hub_cli,
        seed_records,
        [{"id": "c1", "pid": "1"}],
        [client("1", birth_date=date(1980, 1, 1))],
    )
    out = check(hub_cli, "1")
    assert out["decision"] == "permit"
    assert out["released"] == [
        "demographics",
        "health",
        "housing",
        "identity",
        "income",
        "services",
    ]
    assert out["consent_id"] == "c1"


def test_unknown_client_answers_exactly_like_no_consent(
    tmp_path, hub_dir, hub_cli, seed_records
) -> None:
    setup(
        tmp_path,
        hub_dir,
        hub_cli,
        seed_records,
        [{"id": "c1", "pid": "1"}],
        [client("2", birth_date=date(1980, 1, 1))],
    )
    unknown = check(hub_cli, "does-not-exist")
    known_without = check(hub_cli, "2")
    assert unknown == known_without
    assert unknown["decision"] == "deny" and unknown["reasons"] == ["NO_CONSENT"]
    assert unknown["consent_id"] is None


def test_same_agency_unknown_recipient_and_vsp(tmp_path, hub_dir, hub_cli, seed_records) -> None:
    setup(tmp_path, hub_dir, hub_cli, seed_records, [{"id": "c1", "pid": "1"}])
    assert check(hub_cli, "1", recipient="shelter-a")["reasons"] == ["SAME_AGENCY"]
    assert check(hub_cli, "1", recipient="nobody")["reasons"] == ["RECIPIENT_UNKNOWN"]
    assert check(hub_cli, "1", owner="safe-haven")["reasons"] == ["VSP_RECORD"]


def test_revoked_expired_and_not_yet_valid(tmp_path, hub_dir, hub_cli, seed_records) -> None:
    setup(
        tmp_path,
        hub_dir,
        hub_cli,
        seed_records,
        [
            {"id": "r", "pid": "1", "revoked_on": "2025-01-15"},
            {"id": "e", "pid": "2", "expires_on": "2025-01-15"},
            {"id": "f", "pid": "3", "signed_on": "2025-02-01"},
        ],
    )
    assert check(hub_cli, "1")["reasons"] == ["CONSENT_REVOKED"]  # the day of revocation
    assert check(hub_cli, "2")["reasons"] == ["CONSENT_EXPIRED"]  # the day of expiry
    assert check(hub_cli, "2", at="2025-01-14T23:59:00+00:00")["decision"] == "permit"
    assert check(hub_cli, "3")["reasons"] == ["CONSENT_NOT_YET_VALID"]


def test_minor_needs_guardian_until_the_18th_birthday(
    tmp_path, hub_dir, hub_cli, seed_records
) -> None:
    setup(
        tmp_path,
        hub_dir,
        hub_cli,
        seed_records,
        [{"id": "m", "pid": "1"}],
        [client("1", birth_date=date(2007, 1, 15))],
    )
    assert check(hub_cli, "1", at="2025-01-14T12:00:00+00:00")["reasons"] == [
        "MINOR_NEEDS_GUARDIAN"
    ]
    assert check(hub_cli, "1", at="2025-01-15T12:00:00+00:00")["decision"] == "permit"


def test_network_exclusion_and_purpose(tmp_path, hub_dir, hub_cli, seed_records) -> None:
    setup(
        tmp_path,
        hub_dir,
        hub_cli,
        seed_records,
        [
            {"id": "n", "pid": "1", "networks": ["hmis"]},
            {"id": "x", "pid": "2", "exclude_agencies": ["hospital-x"]},
            {"id": "p", "pid": "3", "purposes": ["referral"]},
        ],
    )
    assert check(hub_cli, "1")["reasons"] == ["OUT_OF_NETWORK_SCOPE"]
    assert check(hub_cli, "2")["reasons"] == ["AGENCY_EXCLUDED"]
    assert check(hub_cli, "2", recipient="cie-211")["decision"] == "permit"
    assert check(hub_cli, "3")["reasons"] == ["PURPOSE_NOT_PERMITTED"]
    assert check(hub_cli, "3", purpose="research")["reasons"] == ["PURPOSE_NOT_PERMITTED"]


def test_sensitive_categories_and_part2(tmp_path, hub_dir, hub_cli, seed_records) -> None:
    setup(
        tmp_path,
        hub_dir,
        hub_cli,
        seed_records,
        [
            {"id": "s", "pid": "1", "sensitive": ["behavioral_health", "substance_use"]},
            {"id": "v", "pid": "2", "sensitive": ["hiv"], "method": "verbal"},
        ],
    )
    cats = ("--categories", "identity,behavioral_health,substance_use")
    to_cie = check(hub_cli, "1", *cats, recipient="cie-211", purpose="referral")
    assert to_cie["decision"] == "permit-redacted"
    assert to_cie["redacted"] == ["substance_use"]
    assert "PART2_RECIPIENT_NOT_NAMED" in to_cie["reasons"]
    to_health = check(hub_cli, "1", *cats, purpose="treatment")
    assert to_health["decision"] == "permit"
    verbal = check(hub_cli, "2", "--categories", "identity,hiv")
    assert verbal["redacted"] == ["hiv"] and "VERBAL_NOT_ACCEPTED" in verbal["reasons"]
    nothing = check(hub_cli, "2", "--categories", "hiv")
    assert nothing["decision"] == "deny" and "NOTHING_LEFT" in nothing["reasons"]


def test_newest_consent_wins_and_revoke_command(tmp_path, hub_dir, hub_cli, seed_records) -> None:
    setup(
        tmp_path,
        hub_dir,
        hub_cli,
        seed_records,
        [
            {"id": "old", "pid": "1", "signed_on": "2023-01-01"},
            {
                "id": "new",
                "pid": "1",
                "signed_on": "2024-06-01",
                "exclude_agencies": ["hospital-x"],
            },
        ],
    )
    assert check(hub_cli, "1")["consent_id"] == "new"
    result = hub_cli("consent", "revoke", "new", "--on", "2025-01-01")
    assert result.exit_code == 0, result.output
    assert check(hub_cli, "1")["reasons"] == ["CONSENT_REVOKED"]
    shown = orjson.loads(hub_cli("consent", "show", "--client", "1").stdout)
    assert [c["id"] for c in shown] == ["new", "old"]


def test_bad_consent_file_is_rejected_whole(tmp_path, hub_dir, hub_cli, seed_records) -> None:
    hub_dir()
    assert hub_cli("migrate").exit_code == 0
    path = write_consents(
        tmp_path, {"id": "ok", "pid": "1"}, {"id": "bad", "pid": "2", "colour": 1}
    )
    result = hub_cli("consent", "import", str(path))
    assert result.exit_code != 0
    assert "record 1" in result.output and "colour" in result.output
    shown = hub_cli("consent", "show", "--client", "1")
    assert orjson.loads(shown.stdout) == []  # nothing half-imported


def test_a_part2_programs_record_is_decided_as_substance_use_whole(
    tmp_path, hub_dir, hub_cli, seed_records
) -> None:
    # Anything from a part2 agency is substance_use (CONSENT.md): asked for housing, a CIE
    # partner not named in part2_recipients gets nothing, as the gate itself withholds it.
    setup(tmp_path, hub_dir, hub_cli, seed_records, [{"id": "c1", "pid": "1"}])
    out = check(hub_cli, "1", "--categories", "housing", owner="recovery-p2", recipient="cie-211")
    assert out["decision"] == "deny" and out["released"] == []
    assert "NOTHING_LEFT" in out["reasons"] and "substance_use" in out["redacted"]
    # The same ask of an HMIS agency's record is permitted.
    assert check(hub_cli, "1", "--categories", "housing", recipient="cie-211")["decision"] == (
        "permit"
    )
