"""``hub consent import`` at the edges of its input: dates near year 9999 and JSON nested
too deeply are refused with the usual one-line error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

RECORD = {"id": "a", "client": {"system": "hmis:demo", "value": "1"}}


def import_file(tmp_path: Path, hub_dir, hub_cli, name: str, text: str):
    hub_dir()
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return hub_cli("consent", "import", str(path))


def test_consent_input_signed_near_year_9999_names_the_field(tmp_path, hub_dir, hub_cli) -> None:
    text = orjson.dumps([{**RECORD, "signed_on": "9999-06-01"}]).decode()
    result = import_file(tmp_path, hub_dir, hub_cli, "late.json", text)
    assert result.exit_code != 0
    assert "record 0 (id a): field 'signed_on': impossible date '9999-06-01'" in result.stderr
    assert "nothing imported" in result.stderr
    assert "Traceback" not in result.output


def test_consent_input_explicit_expiry_in_year_9999_is_accepted(tmp_path, hub_dir, hub_cli) -> None:
    record = {**RECORD, "signed_on": "9999-06-01", "expires_on": "9999-12-31"}
    result = import_file(tmp_path, hub_dir, hub_cli, "late.json", orjson.dumps([record]).decode())
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["imported"] == 1


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "file: field '<file>': invalid JSON"),
        (
            "deep.jsonl",
            '{"id":' + "[" * 100_000 + "]" * 100_000 + "}",
            "record 0: field '<json>': invalid JSON on line 1",
        ),
    ],
)
def test_consent_input_nested_too_deeply_is_invalid_json(
    tmp_path, hub_dir, hub_cli, name: str, text: str, where: str
) -> None:
    result = import_file(tmp_path, hub_dir, hub_cli, name, text)
    assert result.exit_code != 0
    assert where in result.stderr and "nested too deeply" in result.stderr
    assert "nothing imported" in result.stderr
