"""PII encryption at rest: AES-GCM, one sealed token per stored record.

The store adapters call this on the way in and out, so nothing above the store ever sees a
ciphertext and nothing below it ever sees a name, an SSN, a birth date, an address, a phone
number or free text in clear.

Record payloads (:meth:`FieldCipher.protect_payload` / :meth:`FieldCipher.reveal_payload`):
the protected values of a record (its identity-category fields, the free text of a referral,
the identity-category columns of a source row's ``fields``) are taken out of the payload and
sealed together, as one JSON object, in one AES-GCM token (random 96-bit nonce) stored under
the reserved last key ``"__sealed__"``::

    {"race":["white"],"sex":"Female","veteran_status":"0","__sealed__":"enc1:<key id>:<b64>"}

The associated data is a format tag, the record's kind, source and source id, and every byte
of the stored payload before the token, so a token copied to another record, an altered token
and an altered clear field all fail to decrypt (:class:`DecryptionError`). Reading gives back
the payload as it was written (keys sorted, as the engine writes them).

Payloads written by earlier releases hold one token per protected value instead (associated
data ``kind|source|source_id|field``); they still decrypt, and re-encryption rewrites them in
the sealed form. Blobs (outbox payloads, consent bodies) and single values (birth dates of
persons) are one token each (:meth:`FieldCipher.seal_blob`, :meth:`FieldCipher.seal`).

A token names its key id, so data keys can be rotated online (``hub keys rotate``) while old
tokens still decrypt. A cipher given a ``reload`` (the key ring's, for a key file) reads the
keys again when it meets a token of a key id it does not hold, so a hub that was running when
``hub keys rotate`` wrote a new key reads what the rotation re-encrypted, and from then on
encrypts with the new active key.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.core.records import RECORD_TYPES, Referral

PREFIX = "enc1:"
# Free-text fields (notes may name people and places) are protected like identity fields.
FREE_TEXT: Mapping[str, frozenset[str]] = {Referral.KIND: frozenset({"notes", "reason"})}
PROTECTED_CATEGORY = "identity"
SEALED_KEY = "__sealed__"
"""The reserved payload key that holds a record's sealed protected values (always last)."""
RECORD_FORMAT = "hub-record-sealed/1"
"""Format tag in the associated data of a record's sealed token."""

_PREFIX_B = PREFIX.encode()
_MARK = b'"' + SEALED_KEY.encode() + b'":"'
_TAIL = b'"}'
_FIELDS = "fields"
_CATEGORIES = "categories"
_ERROR = "a protected value does not decrypt (unknown key id or tampered data)"


class KeyError_(RuntimeError):
    """The key file is missing, unreadable, too open, or malformed (re-exported by
    :mod:`hub.keys`); the CLI prints it as a one-line error."""


class DecryptionError(KeyError_):
    """A stored value could not be decrypted: wrong key ring, or the data was tampered with."""


MISSING_KEYS_REMEMBERED = 1000
"""Key ids looked for in vain that a cipher remembers (it does not read the file again)."""


def _protected_fields(kind: str) -> frozenset[str]:
    cls = RECORD_TYPES.get(kind)
    if cls is None:
        return frozenset()
    fields = {f for f, c in cls.FIELD_CATEGORIES.items() if c == PROTECTED_CATEGORY}
    return frozenset(fields | FREE_TEXT.get(kind, frozenset()))


_BY_KIND = {kind: _protected_fields(kind) for kind in RECORD_TYPES}
# The sealed object keeps a source row's protected columns under "fields" and the protected
# top-level fields under their own names, so no record type may protect a field of that name.
if any(_FIELDS in names or SEALED_KEY in names for names in _BY_KIND.values()):
    raise RuntimeError(f"no record type may protect a field named {_FIELDS!r} or {SEALED_KEY!r}")
# Canonical kinds without protected fields and without a "fields" mapping never need a look.
_NOTHING = frozenset(
    kind
    for kind, cls in RECORD_TYPES.items()
    if not _BY_KIND[kind] and _FIELDS not in cls.FIELD_CATEGORIES
)


def _record_aad(kind: str, source: str, source_id: str, head: bytes) -> bytes:
    """The associated data of a record's sealed token: tag and record key (as one JSON array,
    so no separator inside an id can make two records alike), then the payload's clear head."""
    return orjson.dumps([RECORD_FORMAT, kind, source, source_id]) + head


def _sealed_at(payload: bytes) -> int:
    """Where the sealed key starts in a stored payload, or -1 (not in the sealed form).

    The sealed key is the last one and its value a string, so the payload ends '"}'; a source
    row column of that name sits inside "fields", followed by more '}' or ']'.
    """
    return payload.rfind(_MARK) if payload.endswith(_TAIL) else -1


class FieldCipher:
    """Encrypts and decrypts protected values with the key ring's data keys."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active: str,
        reload: Callable[[], tuple[Mapping[str, bytes], str]] | None = None,
    ) -> None:
        """``reload``, when given, returns the data keys and active key id as they are now
        (the key file read again); it is called for a token of a key id not held."""
        if active not in keys:
            raise ValueError(f"active data key {active!r} is not in the key ring")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self._reload = reload
        self._missing: set[str] = set()
        self._use(active)

    def _use(self, active: str) -> None:
        self.active = active
        self._active_aead = self._aead[active]
        self._prefix = f"{PREFIX}{active}:"
        self._prefix_b = self._prefix.encode()

    def _aead_of(self, kid: str) -> AESGCM:
        """The cipher of a key id; unknown ones are looked for once in the reloaded keys
        (adding the keys found and using the active key found). ``KeyError`` if not found."""
        aead = self._aead.get(kid)
        if aead is not None:
            return aead
        if self._reload is None or kid in self._missing:
            raise KeyError(kid)
        try:
            keys, active = self._reload()
        except (KeyError_, OSError):
            keys, active = {}, self.active
        if kid not in keys:
            if len(self._missing) >= MISSING_KEYS_REMEMBERED:
                self._missing.clear()
            self._missing.add(kid)
            raise KeyError(kid)
        for new_kid, key in keys.items():
            self._aead.setdefault(new_kid, AESGCM(key))
        self._use(active)
        return self._aead[kid]

    # ---- single values -------------------------------------------------------------------

    def _seal_raw(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        ct = self._active_aead.encrypt(nonce, plaintext, aad)
        return self._prefix_b + binascii.b2a_base64(nonce + ct, newline=False)

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        """A token for ``plaintext`` under the active key."""
        return self._seal_raw(plaintext, aad).decode()

    def open(self, token: str, aad: bytes) -> bytes:
        """The plaintext of a token (any key of the ring)."""
        try:
            _, kid, body = token.split(":", 2)
            raw = binascii.a2b_base64(body)
            return self._aead_of(kid).decrypt(raw[:12], raw[12:], aad)
        except (ValueError, KeyError, InvalidTag, binascii.Error):
            raise DecryptionError(_ERROR) from None

    def key_of(self, token: str) -> str:
        """The key id a token was made with."""
        return token.split(":", 2)[1]

    # ---- record payloads -----------------------------------------------------------------

    def protect_payload(self, kind: str, source: str, source_id: str, payload: bytes) -> bytes:
        """The stored form of a record payload (clear JSON bytes): its protected values taken
        out and sealed together in one token under :data:`SEALED_KEY` (see the module doc).

        A payload with nothing to protect, or one already sealed, is returned as it is.
        """
        if kind in _NOTHING:
            return payload
        names = _BY_KIND.get(kind)
        if names is None and b'"' + PROTECTED_CATEGORY.encode() + b'"' not in payload:
            return payload  # a source row with no identity column
        data = orjson.loads(payload)
        if not isinstance(data, dict):
            return payload
        secret: dict[str, Any] = {}
        for name in names or ():
            if name in data:
                secret[name] = data.pop(name)
        fields = data.get(_FIELDS)
        categories = data.get(_CATEGORIES)
        if isinstance(fields, dict) and isinstance(categories, dict):
            columns = {
                name: fields.pop(name)
                for name, category in categories.items()
                if category == PROTECTED_CATEGORY and name in fields
            }
            if columns:
                secret[_FIELDS] = columns
        if SEALED_KEY in data:
            if secret:  # never store a value in clear next to a sealed token
                raise ValueError("a sealed payload also holds protected values in clear")
            return payload
        if not secret:
            return payload
        clear = orjson.dumps(data)
        head = (clear[:-1] + b"," if len(clear) > 2 else b"{") + _MARK
        token = self._seal_raw(orjson.dumps(secret), _record_aad(kind, source, source_id, head))
        return head + token + _TAIL

    def reveal_payload(self, kind: str, source: str, source_id: str, payload: bytes) -> bytes:
        """The clear payload of a stored record payload (sealed or earlier per-value form)."""
        at = _sealed_at(payload)
        if at < 0:
            if _PREFIX_B not in payload:
                return payload
            return self._reveal_per_value(kind, source, source_id, payload)
        start = at + len(_MARK)
        end = len(payload) - len(_TAIL)
        if end < start:
            raise DecryptionError(_ERROR)
        try:
            token = payload[start:end].decode("ascii")
        except UnicodeDecodeError:
            raise DecryptionError(_ERROR) from None
        head = payload[:start]
        secret = orjson.loads(self.open(token, _record_aad(kind, source, source_id, head)))
        # The head is authenticated: it is the clear JSON object we wrote, minus its "}".
        data = orjson.loads(payload[: at - 1] + b"}" if at > 1 else b"{}")
        columns = secret.pop(_FIELDS, None)
        data.update(secret)
        if columns:
            fields = data.get(_FIELDS)
            if isinstance(fields, dict):
                fields.update(columns)
            else:
                data[_FIELDS] = columns
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def payload_needs_rewrite(self, payload: bytes | None) -> bool:
        """Whether a stored record payload should be re-encrypted: it holds a token of a key
        other than the active one, or protected values in the earlier per-value form."""
        if payload is None or _PREFIX_B not in payload:
            return False
        at = _sealed_at(payload)
        return at < 0 or not payload.startswith(self._prefix_b, at + len(_MARK))

    # ---- earlier format: one token per protected value -------------------------------------

    def _reveal_per_value(self, kind: str, source: str, source_id: str, payload: bytes) -> bytes:
        data = orjson.loads(payload)
        if isinstance(data, dict):
            self._walk_per_value(kind, source, source_id, data, self._open_value)
        return orjson.dumps(data)

    def _walk_per_value(
        self,
        kind: str,
        source: str,
        source_id: str,
        data: dict[str, Any],
        fn: Callable[[Any, bytes], Any],
    ) -> None:
        base = f"{kind}|{source}|{source_id}|"
        for name in _BY_KIND.get(kind, ()):
            if name in data:
                data[name] = fn(data[name], (base + name).encode())
        fields = data.get(_FIELDS)
        categories = data.get(_CATEGORIES)
        if isinstance(fields, dict) and isinstance(categories, dict):
            for name, category in categories.items():
                if category == PROTECTED_CATEGORY and name in fields:
                    fields[name] = fn(fields[name], (base + "fields." + name).encode())

    def _open_value(self, value: Any, aad: bytes) -> Any:
        if isinstance(value, str) and value.startswith(PREFIX):
            return orjson.loads(self.open(value, aad))
        return value

    # ---- whole blobs (outbox payloads, consent bodies) --------------------------------------

    def seal_blob(self, data: bytes, aad: str) -> bytes:
        """Encrypt a whole blob; the result is ASCII bytes."""
        return self._seal_raw(data, aad.encode())

    def open_blob(self, data: bytes, aad: str) -> bytes:
        """Decrypt a blob made by :meth:`seal_blob` (plain blobs pass through)."""
        if not data.startswith(_PREFIX_B):
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
