"""The ``[hl7]`` section: validation through the plugin hook and ``hub.toml`` loading, typed
settings, and the service the plugin gives ``hub serve``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError
from hub.context import make_plugins, open_context
from plugins.hl7.listener import MllpListener
from plugins.hl7.settings import load_settings, validate_section
from tests.hl7.conftest import HL7_TOML, load_hub_config, write_config

AGENCIES = frozenset({"hospital-x", "clinic-y"})
OK_SENDER = {"facility": "A", "agency": "hospital-x"}
UNKNOWN_AGENCY = "hl7.senders[1].agency: unknown agency 'x'"


def test_valid_section_has_no_errors() -> None:
    section = {
        "port": 2575,
        "host": "0.0.0.0",
        "max_frame_bytes": 2048,
        "idle_timeout_seconds": 5,
        "senders": [{"facility": "MERCY", "agency": "hospital-x", "validation": "strict"}],
        "tls": {"cert_file": "a.pem", "key_file": "a.key", "client_ca_file": "ca.pem"},
    }
    assert validate_section(section, AGENCIES) == []


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"port": "x"}, "hl7.port: expected integer, got str"),
        ({"port": 70000}, "hl7.port: port 70000 out of range 0-65535"),
        ({"prot": 1}, "hl7.prot: unknown key"),
        ({"max_frame_bytes": 10}, "hl7.max_frame_bytes: must be at least 1024"),
        ({"idle_timeout_seconds": 0}, "hl7.idle_timeout_seconds: must be greater than 0"),
        ({"senders": [{"agency": "hospital-x"}]}, "hl7.senders[0].facility: required"),
        (
            {
                "senders": [
                    {"facility": "A", "agency": "hospital-x"},
                    {"facility": "B", "agency": "x"},
                ]
            },
            "hl7.senders[1].agency: unknown agency 'x'",
        ),
        (
            {"senders": [{"facility": "A", "agency": "hospital-x", "validation": "lax"}]},
            "hl7.senders[0].validation: unknown mode 'lax' (one of none, strict)",
        ),
        (
            {"senders": [{"facility": "A", "agency": "hospital-x"}] * 2},
            "hl7.senders[1].facility: duplicate facility 'A'",
        ),
        ({"tls": {"cert_file": "a.pem"}}, "hl7.tls.key_file: required"),
        ({"senders": "MERCY"}, "hl7.senders: expected array of tables, got str"),
        ({"processing_ids": ["X"]}, "hl7.processing_ids: a non-empty list of P, T, D"),
        ({"processing_ids": []}, "hl7.processing_ids: a non-empty list of P, T, D"),
    ],
)
def test_errors_name_the_key(section: dict[str, object], error: str) -> None:
    errors = validate_section(section, AGENCIES)
    assert any(e.startswith(error) for e in errors), errors


def test_hub_toml_error_names_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, HL7_TOML.replace('agency = "cie-211"', 'agency = "nobody"'))
    with pytest.raises(ConfigError) as info:
        load_hub_config(path)
    message = str(info.value)
    assert "hub.toml" in message
    assert "key 'hl7.senders[1].agency': unknown agency 'nobody'" in message


def test_load_settings_resolves_paths_and_defaults(tmp_path: Path) -> None:
    section = {
        "senders": [{"facility": " MERCY ", "agency": "hospital-x"}],
        "tls": {"cert_file": "c.pem", "key_file": "/abs/k.pem"},
    }
    settings = load_settings(section, lambda p: tmp_path / p)
    assert settings.port == 2575 and settings.host == "127.0.0.1"
    assert settings.max_frame_bytes == 1 << 20
    assert settings.processing_ids == {"P"}  # production messages only
    sender = settings.sender("MERCY")
    assert sender is not None and sender.agency == "hospital-x" and not sender.strict
    assert settings.sender("OTHER") is None
    assert settings.tls is not None
    assert settings.tls.cert_file == tmp_path / "c.pem"
    assert settings.tls.key_file == Path("/abs/k.pem")


async def test_hub_services_gives_a_listener_unless_port_is_zero(tmp_path: Path) -> None:
    for toml, expected in ((HL7_TOML, 0), (HL7_TOML.replace("port = 0", "port = 2599"), 1)):
        cfg = load_hub_config(write_config(tmp_path, toml))
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            services = [
                s
                for g in ctx.plugins.hook.hub_services(ctx=ctx)
                for s in g
                if isinstance(s, MllpListener)
            ]
            assert len(services) == expected
            if services:
                assert isinstance(services[0], MllpListener)
                assert services[0].name == "hl7-mllp-listener"
                assert services[0].port == 2599


async def test_no_hl7_section_means_no_service(tmp_path: Path) -> None:
    cfg = load_hub_config(write_config(tmp_path, ""))
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        services = [s for g in ctx.plugins.hook.hub_services(ctx=ctx) for s in g]
        assert not any(isinstance(s, MllpListener) for s in services)
