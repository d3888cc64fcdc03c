"""TLS contexts for the hub's servers (HTTP, MLLP), with optional mutual TLS."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterable
from typing import Any

from hub.config import ClientCertificate, TlsConfig


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca_file``, clients must present a
    certificate signed by that CA (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(cafile=str(tls.client_ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def certificate_mapping(
    ssl_object: ssl.SSLObject | None, mappings: Iterable[ClientCertificate]
) -> ClientCertificate | None:
    """The ``[[auth.certificates]]`` entry a verified peer certificate matches (by SHA-256
    fingerprint or subject CN), or None: no TLS, no certificate, or not mapped."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    fingerprint = hashlib.sha256(der).hexdigest()
    cn = ""
    subject: Any = (ssl_object.getpeercert() or {}).get("subject", ())
    for rdn in subject:
        for name, value in rdn:
            if name == "commonName":
                cn = str(value)
    for mapping in mappings:
        if (mapping.sha256 and mapping.sha256 == fingerprint) or (
            mapping.subject_cn and mapping.subject_cn == cn
        ):
            return mapping
    return None
