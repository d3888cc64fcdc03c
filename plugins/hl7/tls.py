"""TLS contexts for the MLLP listener (optionally mutual) and the MLLP sender."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plugins.hl7.settings import TlsSettings


class TlsConfigError(ValueError):
    """A TLS file is missing or unusable; the message names the setting, not secrets."""


def _existing(path: Path, key: str) -> str:
    if not path.is_file():
        raise TlsConfigError(f"{key}: file not found: {path}")
    return str(path)


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's short reason (``PEM_lib`` …): never a file's content or a secret."""
    return str(exc.reason or "unreadable file")


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context: TLS 1.2+, the hub's certificate, client certificates required when
    ``client_ca_file`` is set (mutual TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(
            _existing(tls.cert_file, "hl7.tls.cert_file"),
            _existing(tls.key_file, "hl7.tls.key_file"),
        )
        if tls.client_ca_file is not None:
            ctx.load_verify_locations(_existing(tls.client_ca_file, "hl7.tls.client_ca_file"))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except ssl.SSLError as exc:
        raise TlsConfigError(f"hl7.tls: unusable certificate or key ({_reason(exc)})") from None
    return ctx


def client_context(
    options: Mapping[str, Any], resolve: Callable[[str], Path] = Path
) -> ssl.SSLContext | None:
    """The sender's context from a feed's ``tls`` option: ``true`` (system CAs) or a table
    with ``ca_file``, ``cert_file``/``key_file`` (client certificate), ``verify`` (default
    true). None when the option is absent or false."""
    tls = options.get("tls")
    if not tls:
        return None
    table: Mapping[str, Any] = tls if isinstance(tls, Mapping) else {}
    ca = table.get("ca_file")
    cafile = _existing(resolve(str(ca)), "tls.ca_file") if ca else None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except ssl.SSLError as exc:
        raise TlsConfigError(f"tls.ca_file: unusable CA certificates ({_reason(exc)})") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if table.get("verify", True) is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    cert, key = table.get("cert_file"), table.get("key_file")
    if cert:
        certfile = _existing(resolve(str(cert)), "tls.cert_file")
        keyfile = _existing(resolve(str(key)), "tls.key_file") if key else None
        try:
            ctx.load_cert_chain(certfile, keyfile)
        except ssl.SSLError as exc:
            raise TlsConfigError(
                f"tls.cert_file: unusable certificate or key ({_reason(exc)})"
            ) from None
    return ctx
