"""The key ring: blind-index key, audit signing key, field encryption keys.

Keys come from a JSON key file with 0600 permissions (``hub init`` writes one) or from the
``HUB_KEYS`` environment variable holding the same JSON. They are never in the repository or
the store.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hub.crypto import FieldCipher
from hub.crypto import KeyError_ as KeyError_  # defined beside DecryptionError, its subclass
from hub.fileio import fsync_dir
from hub.hmac_sha256 import Hmac256

DATA_KEY_SIZES = (16, 24, 32)
"""AES key lengths in bytes; the hub generates 32."""
MIN_INDEX_KEY_SIZE = 16
"""The shortest blind-index (HMAC) key accepted, in bytes; the hub generates 32."""
INDEX_CHECK_MESSAGE = b"cie-hub index key check v1"
"""What the blind-index key's check value is the HMAC of."""


def index_key_check(key: bytes) -> str:
    """The check value of a blind-index key: 16 hex characters of the HMAC of a fixed
    message. The store keeps it to recognise the key it was built with; it tells keys apart
    and gives nothing of them away (it is no blind value of any identity either)."""
    return hmac.digest(key, INDEX_CHECK_MESSAGE, "sha256").hex()[:16]


class IndexKeyMismatch(KeyError_):
    """The blind-index key is not the one the store was built with: the hub would match no
    one. The CLI prints it as a one-line error."""


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
    source: Path | None = field(default=None, repr=False, compare=False)
    """The key file the ring was read from (None: generated, or from ``$HUB_KEYS``)."""
    pending_index_key: bytes | None = field(default=None, repr=False)
    """The blind-index key ``hub keys rotate-index`` is moving the store to (None: no
    rotation under way); the active ``index_key`` blinds until the rotation promotes it."""
    _mac: Hmac256 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_mac", Hmac256(self.index_key))

    def __getstate__(self) -> dict[str, Any]:
        # Hash states cannot be pickled (nor deep-copied): they are rebuilt from the key.
        return {k: v for k, v in self.__dict__.items() if k != "_mac"}

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
        return self._mac.digest(value.encode("utf-8"))[:16].hex()

    @property
    def index_check(self) -> str:
        """The check value of the active blind-index key (see :func:`index_key_check`)."""
        return index_key_check(self.index_key)

    @property
    def pending_index_check(self) -> str | None:
        """The check value of the pending blind-index key; None when there is none."""
        pending = self.pending_index_key
        return None if pending is None else index_key_check(pending)

    def with_pending_index_key(self, key: bytes) -> KeyRing:
        """This ring with ``key`` as the pending blind-index key (the active one unchanged)."""
        return dataclasses.replace(self, pending_index_key=key)

    def promoted(self) -> KeyRing:
        """This ring with its pending blind-index key made the active one (the old one is
        dropped); itself when there is no pending key."""
        if self.pending_index_key is None:
            return self
        return dataclasses.replace(self, index_key=self.pending_index_key, pending_index_key=None)

    def cipher(self) -> FieldCipher:
        """The field cipher over the ring's data keys (the active one encrypts).

        A ring read from a key file gives a cipher that reads the file again when it meets a
        token of a key it does not hold: ``hub keys rotate`` writes the new key to the file,
        then re-encrypts while hubs keep running, and those hubs must still read every row.
        """
        source = self.source
        reload = None if source is None else (lambda: _data_keys_of(source))
        return FieldCipher(dict(self.data_keys), self.active_data_key, reload=reload)

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
        """The key file's JSON text (``pending_index_key`` only while a rotation is under
        way: a file without it is read as before)."""
        data: dict[str, Any] = {"index_key": _b64(self.index_key)}
        if self.pending_index_key is not None:
            data["pending_index_key"] = _b64(self.pending_index_key)
        data |= {
            "signing_key": _b64(self.signing_key),
            "signing_key_id": self.signing_key_id,
            "data_keys": [{"id": k, "key": _b64(v)} for k, v in self.data_keys],
            "active_data_key": self.active_data_key,
        }
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str, source: Path | None = None) -> KeyRing:
        """Parse key file JSON; errors name ``where`` and the missing field, never a key.

        A key of the wrong length (a truncated or hand-edited file), an active key that is
        not in the ring, or two data keys with one id are refused here, before anything is
        decrypted or written with them.
        """
        try:
            data = json.loads(text)
            pending = data.get("pending_index_key")
            ring = cls(
                index_key=_unb64(data["index_key"]),
                pending_index_key=None if pending is None else _unb64(pending),
                signing_key=_unb64(data["signing_key"]),
                signing_key_id=str(data["signing_key_id"]),
                data_keys=tuple((str(d["id"]), _unb64(d["key"])) for d in data["data_keys"]),
                active_data_key=str(data["active_data_key"]),
                source=source,
            )
            ring.check()
            return ring
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyError_(f"{where}: malformed key file ({type(exc).__name__}: {exc})") from None

    def check(self) -> None:
        """Raise ``ValueError`` (naming key ids and lengths, never a key) when the ring
        cannot work: a key of the wrong length, an unknown active key, a repeated key id."""
        if len(self.index_key) < MIN_INDEX_KEY_SIZE:
            raise ValueError(f"index_key is {len(self.index_key)} bytes, at least 16 needed")
        pending = self.pending_index_key
        if pending is not None and len(pending) < MIN_INDEX_KEY_SIZE:
            raise ValueError(f"pending_index_key is {len(pending)} bytes, at least 16 needed")
        if len(self.signing_key) != 32:
            raise ValueError(f"signing_key is {len(self.signing_key)} bytes, 32 needed")
        ids = [kid for kid, _ in self.data_keys]
        if len(set(ids)) != len(ids):
            raise ValueError("two data keys have the same id")
        for kid, key in self.data_keys:
            if len(key) not in DATA_KEY_SIZES:
                raise ValueError(f"data key {kid!r} is {len(key)} bytes, 16, 24 or 32 needed")
        if self.active_data_key not in ids:
            raise ValueError(f"active data key {self.active_data_key!r} is not in data_keys")

    def write(self, path: Path) -> None:
        """Write the key file with 0600 permissions, atomically.

        The keys go to a new 0600 file beside it, flushed to disk, which then replaces the
        old file in one step: a crash or a full disk mid-write leaves the old key file whole
        (never a truncated one, which would leave every stored value unreadable), and the
        keys are never in a file others can read. A symbolic link is followed.
        """
        self.check()
        target = path.resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(self.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)


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
    return _read_key_file(path)


def _read_key_file(path: Path) -> KeyRing:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KeyError_(f"{path}: malformed key file (not UTF-8 text)") from None
    return KeyRing.from_json(text, str(path), source=path)


def _data_keys_of(path: Path) -> tuple[dict[str, bytes], str]:
    """The data keys and the active key id the key file holds now (for a running cipher)."""
    ring = _read_key_file(path)
    return dict(ring.data_keys), ring.active_data_key
