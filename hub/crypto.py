"""PII encryption at rest: AES-GCM per field, bound to the record and field it belongs to.

The store adapters call this on the way in and out, so nothing above the store ever sees a
ciphertext and nothing below it ever sees a name, an SSN, a birth date, an address, a phone
number or free text in clear. Each value is encrypted on its own with a random 96-bit nonce;
the associated data names the record (kind, source, id) and the field, so a ciphertext
copied to another record or field fails to decrypt. A token names its key id, so data keys
can be rotated online (``hub keys rotate``) while old tokens still decrypt.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.core.records import RECORD_TYPES, Referral

PREFIX = "enc1:"
# Free-text fields (notes may name people and places) are protected like identity fields.
FREE_TEXT: Mapping[str, frozenset[str]] = {Referral.KIND: frozenset({"notes", "reason"})}
PROTECTED_CATEGORY = "identity"


class DecryptionError(RuntimeError):
    """A stored value could not be decrypted: wrong key ring, or the data was tampered with."""


def _protected_fields(kind: str) -> frozenset[str]:
    cls = RECORD_TYPES.get(kind)
    if cls is None:
        return frozenset()
    fields = {f for f, c in cls.FIELD_CATEGORIES.items() if c == PROTECTED_CATEGORY}
    return frozenset(fields | FREE_TEXT.get(kind, frozenset()))


_BY_KIND = {kind: _protected_fields(kind) for kind in RECORD_TYPES}


class FieldCipher:
    """Encrypts and decrypts protected values with the key ring's data keys."""

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise ValueError(f"active data key {active!r} is not in the key ring")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active
        self._active_aead = self._aead[active]
        self._prefix = f"{PREFIX}{active}:"

    # ---- single values -------------------------------------------------------------------

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        """A token for ``plaintext`` under the active key."""
        nonce = os.urandom(12)
        ct = self._active_aead.encrypt(nonce, plaintext, aad)
        return self._prefix + base64.b64encode(nonce + ct).decode()

    def open(self, token: str, aad: bytes) -> bytes:
        """The plaintext of a token (any key of the ring)."""
        try:
            _, kid, body = token.split(":", 2)
            raw = base64.b64decode(body)
            return self._aead[kid].decrypt(raw[:12], raw[12:], aad)
        except (ValueError, KeyError, InvalidTag):
            raise DecryptionError(
                "a protected value does not decrypt (unknown key id or tampered data)"
            ) from None

    def key_of(self, token: str) -> str:
        """The key id a token was made with."""
        return token.split(":", 2)[1]

    # ---- record payloads -----------------------------------------------------------------

    def protect_payload(self, kind: str, source: str, source_id: str, payload: bytes) -> bytes:
        """Encrypt the protected fields of a stored record payload."""
        data = orjson.loads(payload)
        changed = self._walk(kind, source, source_id, data, self._seal_value)
        return orjson.dumps(data) if changed else payload

    def reveal_payload(self, kind: str, source: str, source_id: str, payload: bytes) -> bytes:
        """Decrypt the protected fields of a stored record payload."""
        if PREFIX.encode() not in payload:
            return payload
        data = orjson.loads(payload)
        self._walk(kind, source, source_id, data, self._open_value)
        return orjson.dumps(data)

    def _walk(self, kind: str, source: str, source_id: str, data: Any, fn: Any) -> bool:
        changed = False
        base = f"{kind}|{source}|{source_id}|"
        for name in _BY_KIND.get(kind, ()):
            if name in data:
                data[name] = fn(data[name], (base + name).encode())
                changed = True
        fields = data.get("fields")
        categories = data.get("categories")
        if isinstance(fields, dict) and isinstance(categories, dict):
            for name, category in categories.items():
                if category == PROTECTED_CATEGORY and name in fields:
                    fields[name] = fn(fields[name], (base + "fields." + name).encode())
                    changed = True
        return changed

    def _seal_value(self, value: Any, aad: bytes) -> Any:
        if isinstance(value, str) and value.startswith(PREFIX):
            return value
        return self.seal(orjson.dumps(value), aad)

    def _open_value(self, value: Any, aad: bytes) -> Any:
        if isinstance(value, str) and value.startswith(PREFIX):
            return orjson.loads(self.open(value, aad))
        return value

    # ---- whole blobs (outbox payloads, consent bodies) --------------------------------------

    def seal_blob(self, data: bytes, aad: str) -> bytes:
        """Encrypt a whole blob; the result is ASCII bytes."""
        return self.seal(data, aad.encode()).encode()

    def open_blob(self, data: bytes, aad: str) -> bytes:
        """Decrypt a blob made by :meth:`seal_blob` (plain blobs pass through)."""
        if not data.startswith(PREFIX.encode()):
            return data
        return self.open(data.decode(), aad.encode())

    def needs_rotation(self, stored: bytes | str | None) -> bool:
        """Whether a stored value holds a token of a key other than the active one."""
        if stored is None:
            return False
        text = stored.decode("ascii", "ignore") if isinstance(stored, bytes) else stored
        return (PREFIX in text and f"{PREFIX}{self.active}:" not in text) or (
            text.count(PREFIX) != text.count(f"{PREFIX}{self.active}:")
        )
