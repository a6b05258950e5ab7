# SPDX-License-Identifier: Apache-2.0
"""Where card keys come from: a `KeyStore` that hands out per-card diversified keys.

The till never stores a card's key, only the chain's master keys, and here
only encrypted: `SoftwareKeyStore` keeps them in a file sealed with AES-GCM
under a key stretched from a passphrase with scrypt. Every card key is
derived on demand with NXP AN10922 from the master key of its role, the
card UID, the application id and the chain's system identifier. A SAM
(secure access module) can later implement the same interface.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .._errors import CardError, ConfigurationError
from .crypto import diversify_aes128

_FORMAT = "loyaltysdk-keystore"


class KeyRole(enum.StrEnum):
    """What a key is for; each role has its own master key."""

    MASTER = "master"  # the application master key: personalisation only
    DEBIT = "debit"  # debit and limited credit
    CREDIT = "credit"  # top-ups
    READ = "read"  # balance and log
    SUN = "sun"  # NTAG 424 DNA SUN messages (SDM meta read and file read)


class KeyStoreError(CardError):
    """The keystore cannot be opened (wrong passphrase, damaged file) or lacks a key."""


class KeyStore(Protocol):
    """Per-card keys for the card layer."""

    @property
    def system_identifier(self) -> bytes:
        """The chain's system identifier, part of every diversification."""
        ...

    def card_key(self, role: KeyRole, uid: bytes, aid: bytes) -> bytes:
        """The AES-128 key of `role` on the card `uid` in application `aid` (3 bytes)."""
        ...

    def key_version(self, role: KeyRole) -> int:
        """The version byte written with the key (for rotation)."""
        ...


class SoftwareKeyStore:
    """Master keys in an encrypted file; card keys diversified on demand.

    Create one with `create`, open it with `open`. The passphrase never
    touches the disk; the file holds the scrypt salt and parameters, the
    GCM nonce and the ciphertext, with the header bound as associated data.
    """

    def __init__(
        self,
        masters: Mapping[KeyRole, bytes],
        system_identifier: bytes,
        versions: Mapping[KeyRole, int] | None = None,
    ) -> None:
        for role, key in masters.items():
            if len(key) != 16:
                raise ConfigurationError(f"master key for {role} must be 16 bytes")
        if not 1 <= len(system_identifier) <= 20:
            raise ConfigurationError("the system identifier is 1 to 20 bytes")
        self._masters = dict(masters)
        self._versions = dict(versions or {})
        self._system_identifier = bytes(system_identifier)

    @property
    def system_identifier(self) -> bytes:
        return self._system_identifier

    def card_key(self, role: KeyRole, uid: bytes, aid: bytes) -> bytes:
        try:
            master = self._masters[role]
        except KeyError:
            raise KeyStoreError(f"the keystore holds no {role} key") from None
        return diversify_aes128(master, uid, aid, self._system_identifier)

    def key_version(self, role: KeyRole) -> int:
        return self._versions.get(role, 1)

    @classmethod
    def generate(cls, system_identifier: bytes) -> SoftwareKeyStore:
        """Fresh random master keys for every role (a new chain, or a test)."""
        return cls({role: os.urandom(16) for role in KeyRole}, system_identifier)

    # -- the encrypted file --------------------------------------------------

    def save(self, path: str | Path, passphrase: str, *, scrypt_n: int = 2**15) -> None:
        """Seal the master keys into `path` under `passphrase` (written atomically)."""
        salt, nonce = os.urandom(16), os.urandom(12)
        header = {"format": _FORMAT, "version": 1, "kdf": "scrypt", "n": scrypt_n, "r": 8, "p": 1}
        header["salt"] = salt.hex()
        payload = json.dumps(
            {
                "system_identifier": self._system_identifier.hex(),
                "masters": {role.value: key.hex() for role, key in self._masters.items()},
                "versions": {role.value: v for role, v in self._versions.items()},
            }
        ).encode()
        aad = json.dumps(header, sort_keys=True).encode()
        sealed = AESGCM(_stretch(passphrase, salt, scrypt_n)).encrypt(nonce, payload, aad)
        document = {**header, "nonce": nonce.hex(), "ciphertext": sealed.hex()}
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    @classmethod
    def open(cls, path: str | Path, passphrase: str) -> SoftwareKeyStore:
        """Open a keystore file.

        Raises:
            KeyStoreError: wrong passphrase, or the file was altered or is not a keystore.
        """
        try:
            document: dict[str, Any] = json.loads(Path(path).read_text())
            header = {k: document[k] for k in ("format", "version", "kdf", "n", "r", "p", "salt")}
            if header["format"] != _FORMAT or header["version"] != 1:
                raise KeyStoreError(f"{path} is not a loyaltysdk keystore")
            key = _stretch(passphrase, bytes.fromhex(header["salt"]), int(header["n"]))
            aad = json.dumps(header, sort_keys=True).encode()
            payload = AESGCM(key).decrypt(
                bytes.fromhex(document["nonce"]), bytes.fromhex(document["ciphertext"]), aad
            )
        except InvalidTag:
            raise KeyStoreError(f"wrong passphrase for {path}, or the file was altered") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise KeyStoreError(f"cannot read keystore {path}: {error}") from error
        data = json.loads(payload)
        return cls(
            {KeyRole(r): bytes.fromhex(k) for r, k in data["masters"].items()},
            bytes.fromhex(data["system_identifier"]),
            {KeyRole(r): int(v) for r, v in data["versions"].items()},
        )


def _stretch(passphrase: str, salt: bytes, n: int) -> bytes:
    if not passphrase:
        raise KeyStoreError("an empty passphrase cannot protect a keystore")
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())


__all__ = [
    "KeyRole",
    "KeyStore",
    "KeyStoreError",
    "SoftwareKeyStore",
]
