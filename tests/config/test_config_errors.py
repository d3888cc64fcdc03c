"""Bad configuration: one line naming the file, line, key and the fix; exit non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config

GOOD = """
[store]
url = "sqlite:///hub-data/hub.db"

[[agencies]]
id = "a"
kind = "hmis"
networks = ["hmis"]

[[agencies]]
id = "b"
kind = "cie"
networks = ["cie"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ('[storage]\nurl = "x"\n', "line 15: key 'storage': unknown section"),
        ('[http]\nport = "eighty"\n', "key 'http.port': expected int, got str"),
        ("[http]\nport = 70000\n", "key 'http.port': port 70000 out of range"),
        (
            '[[feeds]]\nrecipient = "zz"\nconnector = "webhook"\n',
            "key 'feeds[0].recipient': unknown agency 'zz'",
        ),
        ('[[feeds]]\nrecipient = "b"\n', "key 'feeds[0].connector': required"),
        (
            '[[feeds]]\nrecipient = "b"\nconnector = "webhook"\ncategories = ["gossip"]\n',
            "unknown category 'gossip'",
        ),
        # a typo in a kind or an owner made a feed that silently selected nothing
        (
            '[[feeds]]\nrecipient = "b"\nconnector = "webhook"\nkinds = ["encounters"]\n',
            "key 'feeds[0].kinds': unknown record kind 'encounters'",
        ),
        (
            '[[feeds]]\nrecipient = "b"\nconnector = "webhook"\nperson_has = ["adt"]\n',
            "key 'feeds[0].person_has': unknown record kind 'adt'",
        ),
        (
            '[[feeds]]\nrecipient = "b"\nconnector = "webhook"\nowners = ["nobody"]\n',
            "key 'feeds[0].owners': unknown agency 'nobody'",
        ),
        ('[consent]\nage_of_majority = "18"\n', "key 'consent'"),
        ('[logging]\nlevel = "LOUD"\n', "key 'logging.level': unknown level 'LOUD'"),
        # A negative age pruned what was delivered a second ago; a huge one failed every run.
        ("[retention]\ndelivered_days = -1\n", "'retention.delivered_days': must be from 1 to"),
        ("[retention]\npayload_days = 1000000\n", "'retention.payload_days': must be from 1 to"),
        ("[retention]\naudit_years = 1\n", "'retention.audit_years': must be from 6 to 100"),
        ("[delivery]\nbatch_size = 0\n", "'delivery.batch_size': must be from 1 to 10000"),
        ("[delivery]\nmax_attempts = -3\n", "'delivery.max_attempts': must be from 1 to"),
        ("[delivery]\nlease_seconds = 0\n", "'delivery.lease_seconds': must be from 0.1 to"),
        ("[delivery]\npoll_seconds = nan\n", "'delivery.poll_seconds': must be from 0.001 to"),
        # 0 answered every authenticated request with a 500; a negative number meant no limit.
        ("[auth]\nrequests_per_minute = 0\n", "'auth.requests_per_minute': must be from 1 to"),
        ("[auth]\nrequests_per_minute = -5\n", "'auth.requests_per_minute': must be from 1 to"),
        ("[auth]\ntoken_lifetime_seconds = 0\n", "'auth.token_lifetime_seconds': must be from"),
        # "10MB" stopped the hub at start with a bare ValueError; -1 refused every body.
        ('[http]\nmax_body_bytes = "10MB"\n', "'http.max_body_bytes': expected int, got str"),
        ("[http]\nmax_body_bytes = -1\n", "'http.max_body_bytes': must be from 1 to"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD + "\n" + extra))
    assert needle in str(err.value)
    assert str(tmp_path / "hub.toml") in str(err.value)


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    text = GOOD.replace('kind = "cie"', 'kind = "cie"\ncolour = "blue"')
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert "line 13: key 'agencies[1].colour': unknown key" in str(err.value)


def test_bad_agency_kind_and_duplicate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agencies\[1\].kind': unknown kind 'shop'"):
        load_config(write(tmp_path, GOOD.replace('kind = "cie"', 'kind = "shop"')))
    with pytest.raises(ConfigError, match="duplicate agency id 'a'"):
        load_config(write(tmp_path, GOOD.replace('id = "b"', 'id = "a"')))


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[store\n"))


def test_good_config_gives_typed_settings(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert set(cfg.agencies) == {"a", "b"}
    assert cfg.agencies["a"].networks == frozenset({"hmis"})
    assert cfg.consent_policy.default_term_days == 1095


def hub_cmd(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "hub"
    return subprocess.run(
        [str(exe), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_cli_reports_config_error_in_one_line_without_traceback(tmp_path: Path) -> None:
    write(tmp_path, GOOD + '\n[http]\nport = "x"\n')
    result = hub_cmd(tmp_path, "migrate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and "http.port" in result.stderr


def test_cli_unreachable_store_and_missing_migration(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("sqlite:///hub-data/hub.db", "postgresql://u@127.0.0.1:1/x"))
    result = hub_cmd(tmp_path, "migrate")
    assert result.returncode == 2 and "cannot reach PostgreSQL at 127.0.0.1:1/x" in result.stderr
    assert "Traceback" not in result.stderr
    write(tmp_path, GOOD)
    from hub.keys import KeyRing

    KeyRing.generate().write(tmp_path / "hub-data" / "keys.json")
    result = hub_cmd(tmp_path, "consent", "show", "--client", "1")
    assert result.returncode == 2 and "run 'hub migrate'" in result.stderr


def test_cli_debug_shows_traceback(tmp_path: Path) -> None:
    write(tmp_path, GOOD + '\n[http]\nport = "x"\n')
    result = hub_cmd(tmp_path, "--debug", "migrate")
    assert result.returncode != 0 and "Traceback" in result.stderr
