"""Review findings on hub.toml: crontab days of week as crontab counts them, schedules that
never fire, a named config file that is missing, inputs of the wrong shape or encoding,
line numbers beside ``[feeds.options]``, and a bad ``HUB_STORE_URL``: each a one-line
error naming where, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config
from hub.delivery import DeliveryScheduler, validate_schedule
from hub.plugin_api import ScheduledJob
from tests.config.test_config_errors import GOOD

FEED = """
[[feeds]]
name = "weekly"
recipient = "b"
connector = "webhook"
schedule = "{schedule}"
"""

WEDNESDAY = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
"""A Wednesday: the next runs of a weekly schedule fall on the days it names."""


def write(tmp_path: Path, text: str, name: str = "hub.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def hub_cmd(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    exe = Path(sys.executable).parent / "hub"
    environ = {k: v for k, v in os.environ.items() if k not in ("HUB_CONFIG", "HUB_STORE_URL")}
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )


async def next_runs(schedule: str, count: int = 4, fmt: str = "%a %H:%M") -> list[str]:
    """The days (``Mon 02:00``) the hub's own scheduler fires a feed with this schedule."""
    cfg = load_config(None, text=GOOD + FEED.format(schedule=schedule))

    async def nothing() -> None:
        return None

    job = ScheduledJob(name="feed:weekly", func=nothing, cron=cfg.feeds[0].schedule)
    scheduler = DeliveryScheduler([job])
    scheduler.start()
    try:
        assert scheduler._scheduler is not None
        trigger = scheduler._scheduler.get_jobs()[0].trigger
        runs: list[str] = []
        after = WEDNESDAY
        for _ in range(count):
            fire = trigger.get_next_fire_time(None, after)
            runs.append(fire.strftime(fmt))
            after = fire.replace(minute=fire.minute + 1)
        return runs
    finally:
        scheduler.shutdown()


@pytest.mark.parametrize(
    ("schedule", "days"),
    [
        ("0 2 * * 1", ["Mon"] * 4),
        ("0 2 * * 0", ["Sun"] * 4),
        ("0 2 * * 7", ["Sun"] * 4),
        ("0 2 * * 1-5", ["Thu", "Fri", "Mon", "Tue"]),
        ("0 2 * * 5-7", ["Fri", "Sat", "Sun", "Fri"]),
        ("0 2 * * 0-2", ["Sun", "Mon", "Tue", "Sun"]),
        ("0 2 * * */2", ["Thu", "Sat", "Sun", "Tue"]),
        ("0 2 * * 0,6", ["Sat", "Sun", "Sat", "Sun"]),
        ("0 2 * * sun,wed", ["Sun", "Wed", "Sun", "Wed"]),
        ("0 2 * * mon-fri", ["Thu", "Fri", "Mon", "Tue"]),
    ],
)
async def test_day_of_week_counts_as_crontab_does(schedule: str, days: list[str]) -> None:
    assert await next_runs(schedule) == [f"{d} 02:00" for d in days]


@pytest.mark.parametrize(
    ("schedule", "days"),
    [
        # both days restricted: either one (the 13th, and every Friday)
        ("0 2 13 * fri", ["Fri 03", "Fri 10", "Mon 13", "Fri 17", "Fri 24", "Fri 31"]),
        # in February only: Mondays, although 31 February never comes
        ("0 2 31 2 mon", ["Mon 03", "Mon 10", "Mon 17", "Mon 24", "Mon 02", "Mon 09"]),
        # a day field starting with "*" is unrestricted: both must match (odd days, Mondays)
        ("0 2 */2 * mon", ["Mon 13", "Mon 27", "Mon 03", "Mon 17", "Mon 03", "Mon 17"]),
        ("0 2 13 * *", ["Mon 13", "Thu 13", "Thu 13", "Sun 13", "Tue 13", "Fri 13"]),
    ],
)
async def test_day_of_month_and_day_of_week_both_restricted_fire_on_either(
    schedule: str, days: list[str]
) -> None:
    assert await next_runs(schedule, count=len(days), fmt="%a %d") == days


@pytest.mark.parametrize("schedule", ["0 2 * * 8", "0 2 * * 3-1", "0 2 * * 1/2", "0 2 * *"])
def test_a_bad_day_of_week_names_the_schedule_key(tmp_path: Path, schedule: str) -> None:
    with pytest.raises(ConfigError, match=r"line 19: key 'feeds\[0\].schedule': not 'on-change'"):
        load_config(write(tmp_path, GOOD + FEED.format(schedule=schedule)))
    assert validate_schedule(schedule) is not None


def test_a_schedule_that_never_fires_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD + FEED.format(schedule="0 0 31 2 *")))
    assert "line 19: key 'feeds[0].schedule'" in str(err.value)
    assert "never fires" in str(err.value)
    assert "never fires" in (validate_schedule("0 0 31 2 *") or "")
    # 29 February comes round again
    assert validate_schedule("0 0 29 2 *") is None


def test_a_named_config_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "etc" / "hub.toml"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(missing)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_CONFIG", "hub.toml")
    with pytest.raises(ConfigError, match=r"hub\.toml: config file not found"):
        load_config(Path("hub.toml"))
    monkeypatch.delenv("HUB_CONFIG")
    assert load_config(Path("hub.toml")).path is None  # the implicit ./hub.toml: defaults
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Path("hub.toml"), implicit=False)


def test_cli_with_a_missing_named_hub_toml_fails_and_creates_nothing(tmp_path: Path) -> None:
    missing = str(tmp_path / "etc" / "hub.toml")
    for result in (
        hub_cmd(tmp_path, "--config", missing, "migrate"),
        hub_cmd(tmp_path, "audit", "verify", HUB_CONFIG=missing),
    ):
        assert result.returncode == 2, result.stderr
        assert (
            result.stderr
            == f"error: {missing}: config file not found (create one with 'hub init')\n"
        )
    assert not (tmp_path / "hub-data").exists()
    # with neither option nor variable, a folder without hub.toml runs on the defaults
    assert hub_cmd(tmp_path, "migrate").returncode == 0
    assert (tmp_path / "hub-data" / "hub.db").is_file()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            '[[agencies]]\nid = "x"\nidentifiers = 5\n',
            "line 17: key 'agencies[2].identifiers': expected a list of tables, got int",
        ),
        (
            '[[agencies]]\nid = "x"\nidentifiers = ["urn:x"]\n',
            "line 17: key 'agencies[2].identifiers[0]': expected a table, got str",
        ),
        (
            '[[agencies]]\nid = "x"\nhmis_organization_ids = 7\n',
            "line 17: key 'agencies[2].hmis_organization_ids': expected a list of strings",
        ),
        (
            "[auth]\nclients = 3\n",
            "line 16: key 'auth.clients': expected a list of tables, got int",
        ),
        (
            '[auth]\ncertificates = "abc"\n',
            "line 16: key 'auth.certificates': expected a list of tables, got str",
        ),
    ],
)
def test_wrong_shapes_name_file_line_and_key(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD + "\n" + extra))
    assert str(err.value) == f"{tmp_path / 'hub.toml'} {needle}"


def test_organization_ids_may_be_numbers(tmp_path: Path) -> None:
    extra = '[[agencies]]\nid = "x"\nhmis_organization_ids = ["12", 13]\n'
    cfg = load_config(write(tmp_path, GOOD + "\n" + extra))
    assert cfg.organization_agencies == {"12": "x", "13": "x"}


def test_cli_reports_a_latin1_config_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.toml").write_bytes(
        (GOOD + '\n[[agencies]]\nid = "c"\nname = "Niños"\n').encode("latin-1")
    )
    with pytest.raises(ConfigError, match=r"latin1.toml line 17: not UTF-8 text"):
        load_config(tmp_path / "latin1.toml")
    result = hub_cmd(tmp_path, "--config", "latin1.toml", "migrate")
    assert result.returncode == 2
    assert result.stderr == "error: latin1.toml line 17: not UTF-8 text (save the file as UTF-8)\n"


LINES = (
    GOOD
    + """
[[feeds]]
name = "one"
recipient = "b"
connector = "webhook"
[feeds.options]
url = "https://example.org/a"

[[feeds]]
name = "two"
recipient = "b"
connector = "webhook"
purpose = "bogus"
[feeds.options]
url = "https://example.org/b"
"""
)


def test_errors_in_the_second_feed_point_at_its_line(tmp_path: Path) -> None:
    assert LINES.splitlines()[25] == 'purpose = "bogus"'
    with pytest.raises(ConfigError, match=r"line 26: key 'feeds\[1\].purpose': unknown purpose"):
        load_config(write(tmp_path, LINES))
    text = LINES.replace('purpose = "bogus"\n', "").replace('name = "two"', 'name = "one"')
    with pytest.raises(ConfigError, match=r"line 23: key 'feeds\[1\].name': duplicate feed"):
        load_config(write(tmp_path, text))


def test_a_bad_options_value_points_into_the_sub_table(tmp_path: Path) -> None:
    from hub.config import line_of

    assert line_of(LINES, "feeds[1].options.url") == 28
    assert line_of(LINES, "feeds[0].options.url") == 20
    assert line_of(LINES, "feeds[1]") == 22


def test_a_bad_hub_store_url_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_STORE_URL", "mysql://hub:S3cret@db/hub")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD))
    assert str(err.value) == (
        "environment variable HUB_STORE_URL: "
        "expected sqlite:///path or postgresql://user@host:port/db"
    )
    result = hub_cmd(tmp_path, "audit", "verify", HUB_STORE_URL="mysql://hub:S3cret@db/hub")
    assert result.returncode == 2
    assert result.stderr.startswith("error: environment variable HUB_STORE_URL: ")
    assert "hub.toml" not in result.stderr and "S3cret" not in result.stderr
