"""The key ring: blind-index key, audit signing key, field encryption keys.

Keys come from a JSON key file with 0600 permissions (``hub init`` writes one) or from the
``HUB_KEYS`` environment variable holding the same JSON. They are never in the repository or
the store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hub.crypto import FieldCipher


class KeyError_(RuntimeError):
    """The key file is missing, unreadable, too open, or malformed."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


@dataclass(frozen=True)
class KeyRing:
    """Keys the hub works with; ``repr`` shows ids only."""

    index_key: bytes
    signing_key: bytes
    signing_key_id: str
    data_keys: tuple[tuple[str, bytes], ...]
    active_data_key: str
    _pads: tuple[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pads", _hmac_pads(self.index_key))

    def __getstate__(self) -> dict[str, Any]:
        # Hash states cannot be pickled (nor deep-copied): they are rebuilt from the key.
        return {k: v for k, v in self.__dict__.items() if k != "_pads"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def __repr__(self) -> str:
        return f"<KeyRing signing={self.signing_key_id} data={self.active_data_key}>"

    def blind(self, value: str) -> str:
        """Blind index of a normalised value: HMAC-SHA256, hex, 128 bits kept.

        The HMAC is computed from SHA-256 states with the key's pads already hashed (RFC
        2104), which gives ``hmac.digest(index_key, value, "sha256")`` at less than half
        its cost: blinding runs five times per client record stored.
        """
        inner_pad, outer_pad = self._pads
        inner = inner_pad.copy()
        inner.update(value.encode("utf-8"))
        outer = outer_pad.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest[:16].hex()

    def cipher(self) -> FieldCipher:
        """The field cipher over the ring's data keys (the active one encrypts)."""
        return FieldCipher(dict(self.data_keys), self.active_data_key)

    def signer(self) -> Ed25519PrivateKey:
        """The Ed25519 key that signs audit checkpoints."""
        return Ed25519PrivateKey.from_private_bytes(self.signing_key)

    def verifier(self) -> Ed25519PublicKey:
        """The public half, for checking checkpoints."""
        return self.signer().public_key()

    @classmethod
    def generate(cls) -> KeyRing:
        """Fresh random keys."""
        kid = "k" + secrets.token_hex(4)
        return cls(
            index_key=secrets.token_bytes(32),
            signing_key=Ed25519PrivateKey.generate().private_bytes_raw(),
            signing_key_id="s" + secrets.token_hex(4),
            data_keys=((kid, secrets.token_bytes(32)),),
            active_data_key=kid,
        )

    def to_json(self) -> str:
        """The key file's JSON text."""
        return json.dumps(
            {
                "index_key": _b64(self.index_key),
                "signing_key": _b64(self.signing_key),
                "signing_key_id": self.signing_key_id,
                "data_keys": [{"id": k, "key": _b64(v)} for k, v in self.data_keys],
                "active_data_key": self.active_data_key,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> KeyRing:
        """Parse key file JSON; errors name ``where`` and the missing field, never a key."""
        try:
            data = json.loads(text)
            return cls(
                index_key=_unb64(data["index_key"]),
                signing_key=_unb64(data["signing_key"]),
                signing_key_id=str(data["signing_key_id"]),
                data_keys=tuple((d["id"], _unb64(d["key"])) for d in data["data_keys"]),
                active_data_key=str(data["active_data_key"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyError_(f"{where}: malformed key file ({type(exc).__name__}: {exc})") from None

    def write(self, path: Path) -> None:
        """Write the key file with 0600 permissions."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
        os.chmod(path, 0o600)


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states that have hashed the HMAC inner and outer pads of ``key`` (RFC 2104)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in key)),
        hashlib.sha256(bytes(b ^ 0x5C for b in key)),
    )


def load_keyring(path: Path | None) -> KeyRing:
    """Keys from ``HUB_KEYS`` or the key file; refuse a file others can read."""
    env = os.environ.get("HUB_KEYS")
    if env:
        return KeyRing.from_json(env, "HUB_KEYS")
    if path is None:
        raise KeyError_("no key file configured: set [keys] file in hub.toml or run 'hub init'")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyError_(f"{path}: key file not found (run 'hub init' to create one)") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(f"{path}: key file is readable by others; run 'chmod 600 {path}'")
    return KeyRing.from_json(path.read_text(encoding="utf-8"), str(path))
