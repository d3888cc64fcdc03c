"""``hub bench --sql-profile``: every SQLite statement of a path round, timed per item."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from hub.bench.model import Benchmark
from hub.bench.runner import RunOptions, SuiteRunner
from hub.bench.sqlprofile import SqlProfile, statement_key
from tests.bench import bench_fakes

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_statement_key_folds_whitespace_and_in_lists_of_any_length() -> None:
    one = statement_key("SELECT a\n  FROM t WHERE k IN (?, ?,?)")
    other = statement_key("SELECT a FROM t WHERE k IN (?,?,?,?,?,?)")
    assert one == other == "SELECT a FROM t WHERE k IN (?…)"
    assert statement_key("INSERT INTO t VALUES (?)") == "INSERT INTO t VALUES (?)"


def test_only_statements_run_while_recording_count_with_their_fetches() -> None:
    profile = SqlProfile()
    original = sqlite3.connect
    with profile.installed():
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (a INTEGER)")  # before recording: not counted
        profile.recording = True
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50)])
        assert len(conn.execute("SELECT a FROM t").fetchall()) == 50
        assert sum(1 for _row in conn.execute("SELECT a FROM t WHERE a < ?", (10,))) == 10
        profile.recording = False
        conn.execute("DELETE FROM t")  # after: not counted
    assert sqlite3.connect is original  # put back when the block ends
    keys = {sql: entry.calls for (_thread, sql), entry in profile.times.items()}
    assert keys == {
        "INSERT INTO t VALUES (?)": 1,
        "SELECT a FROM t": 1,
        "SELECT a FROM t WHERE a < ?": 1,
    }
    assert all(entry.seconds > 0 for entry in profile.times.values())


def test_statements_are_filed_by_the_thread_that_ran_them() -> None:
    profile = SqlProfile(recording=True)
    with profile.installed():
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("SELECT 1")
        worker = threading.Thread(target=conn.execute, args=("SELECT 2",), name="checkpoints")
        worker.start()
        worker.join()
    threads = {thread for thread, _sql in profile.times}
    assert threads == {threading.current_thread().name, "checkpoints"}
    report = profile.report(items=4, seconds=0.01)
    assert "SQL in thread checkpoints:" in report
    assert "2,500.0 µs per item" in report  # the round's own time per item, for scale


async def test_the_runner_writes_a_report_per_path_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # children import the fakes
    bench = Benchmark(
        name="fake.sqlite",
        title="fake",
        unit="item",
        path=bench_fakes.SqliteCase,
        floor=bench_fakes.CountingCase,
        floor_title="counting",
        prepare=bench_fakes.prepare_marker,
        sizes={"tiny": (200,)},
    )
    reports = tmp_path / "sql"
    runner = SuiteRunner(
        RunOptions(profile="tiny", rounds=2, workdir=tmp_path / "work", sql_profile_dir=reports)
    )
    suite = await runner.run([bench])
    assert suite.benchmarks[0].status == "ok"
    names = sorted(p.name for p in reports.iterdir())
    assert names == ["fake.sqlite-200-round1.sql.txt", "fake.sqlite-200-round2.sql.txt"]
    text = (reports / names[0]).read_text(encoding="utf-8")
    assert text.startswith("200 items in ")
    lines = {line.split(": ", 1)[1]: line for line in text.splitlines() if "MainThread: " in line}
    assert "1.000" in lines["INSERT INTO items (n, label) VALUES (?…)"]  # one call per item
    assert "0.005" in lines["SELECT n FROM items"]  # one call in the round
    assert not any("CREATE TABLE" in sql for sql in lines)  # set-up is not timed
