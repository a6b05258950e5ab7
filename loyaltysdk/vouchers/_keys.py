# SPDX-License-Identifier: Apache-2.0
"""Issuer keys: a private Ed25519 key at head office, public keys (by id) at every till."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._errors import ConfigurationError


@attrs.frozen
class IssuerKey:
    """The private key that signs vouchers, with the id that names it in payloads."""

    key_id: str
    private_key: Ed25519PrivateKey = attrs.field(repr=False)

    @classmethod
    def generate(cls, key_id: str) -> IssuerKey:
        if not key_id or len(key_id) > 16 or not key_id.isascii():
            raise ConfigurationError("a key id is 1 to 16 ASCII characters")
        return cls(key_id, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def save(self, path: str | Path) -> None:
        """Write the private key (PKCS#8 PEM, mode 0600) with its id in a header line."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(f"key-id: {self.key_id}\n".encode() + pem)

    @classmethod
    def load(cls, path: str | Path) -> IssuerKey:
        """Read a key written by `save`.

        Raises:
            ConfigurationError: not such a key file.
        """
        try:
            text = Path(path).read_bytes()
            header, _, pem = text.partition(b"\n")
            if not header.startswith(b"key-id: "):
                raise ValueError("missing key-id header")
            key = serialization.load_pem_private_key(pem, password=None)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigurationError(f"cannot read issuer key {path}: {error}") from error
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"{path} is not an Ed25519 key")
        return cls(header[8:].decode().strip(), key)


class Keyring:
    """The issuers' public keys a till trusts, by key id."""

    def __init__(self, keys: dict[str, Ed25519PublicKey] | None = None) -> None:
        self.keys: dict[str, Ed25519PublicKey] = dict(keys or {})

    def add(self, key_id: str, key: Ed25519PublicKey) -> None:
        self.keys[key_id] = key

    def to_json(self) -> dict[str, str]:
        return {
            key_id: base64.b64encode(
                key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            ).decode()
            for key_id, key in sorted(self.keys.items())
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Keyring:
        try:
            return cls(
                {
                    key_id: Ed25519PublicKey.from_public_bytes(base64.b64decode(raw))
                    for key_id, raw in data.items()
                }
            )
        except (ValueError, TypeError, AttributeError) as error:
            raise ConfigurationError(f"not a keyring: {error}") from error

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Keyring:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as error:
            raise ConfigurationError(f"cannot read keyring {path}: {error}") from error
