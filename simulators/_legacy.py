# SPDX-License-Identifier: Apache-2.0
"""The card's half of the DES-family authentications of a factory DESFire.

A DESFire leaves the factory with a DES PICC master key of zeros (key
version 0); tools that format or personalise a card start with the legacy
Authenticate (0x0A, DESFire D40 style) or AuthenticateISO (0x1A) under it.
This module is the card side of both, for the virtual card only: the SDK's
own client speaks AES and EV2.

- 0x0A: the card sends E(K, RndB) (8 bytes, IV zero). The reader "deciphers
  in send mode" (c1 = D(RndA), c2 = D(RndB' ^ c1)), so the card takes
  RndA = E(c1) and RndB' = E(c2) ^ c1, then answers E(K, RndA'), IV zero again.
- 0x1A: plain CBC with the IV carried through the handshake, as EV1's
  AuthenticateAES does: E(K, RndB) with IV zero, the reader's answer
  decrypted with the challenge as IV, the reply encrypted with the last
  block of the answer as IV.

A DES key is kept as 16 bytes with equal halves (the 2K3DES form a card
stores); its session key is RndA[0:4] || RndB[0:4] repeated, a 2K3DES key's
RndA[0:4] || RndB[0:4] || RndA[4:8] || RndB[4:8]. A real blank-card trace
pins the 0x0A half down (tests/cards/test_desfire_conformance.py).
"""

from __future__ import annotations

import os

import attrs
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.modes import ECB

from loyaltysdk._errors import CardAuthenticationFailed

DES_BLOCK = 8


def _cipher(key: bytes) -> Cipher[ECB]:
    if len(key) != 16:
        raise ValueError("a DES or 2K3DES key is kept as 16 bytes")
    # ECB: one block at a time, as the protocol defines its chaining itself.
    return Cipher(TripleDES(key + key[:8]), ECB())


def des_encrypt(key: bytes, data: bytes) -> bytes:
    """The block cipher E(K, .) over whole 8-byte blocks, each on its own."""
    encryptor = _cipher(key).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def des_decrypt(key: bytes, data: bytes) -> bytes:
    """D(K, .) over whole 8-byte blocks, each on its own."""
    decryptor = _cipher(key).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _blocks(data: bytes) -> list[bytes]:
    if len(data) % DES_BLOCK:
        raise ValueError("DES data must be whole 8-byte blocks")
    return [data[i : i + DES_BLOCK] for i in range(0, len(data), DES_BLOCK)]


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Ordinary CBC encryption (the card's outgoing direction)."""
    out, previous = [], iv
    for block in _blocks(data):
        previous = des_encrypt(key, _xor(block, previous))
        out.append(previous)
    return b"".join(out)


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Ordinary CBC decryption (0x1A: what the reader encrypted)."""
    out, previous = [], iv
    for block in _blocks(data):
        out.append(_xor(des_decrypt(key, block), previous))
        previous = block
    return b"".join(out)


def undo_send_mode(key: bytes, data: bytes) -> bytes:
    """Invert the D40 reader's "send mode" (c_i = D(p_i ^ c_i-1), IV zero)."""
    out, previous = [], bytes(DES_BLOCK)
    for block in _blocks(data):
        out.append(_xor(des_encrypt(key, block), previous))
        previous = block
    return b"".join(out)


def crc16_a(data: bytes) -> bytes:
    """CRC_A of ISO/IEC 14443-3 (the D40 ChangeKey checksum), least significant byte first."""
    crc = 0x6363
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def is_single_des(key: bytes) -> bool:
    """Whether a 16-byte DES-family key is single DES (equal halves, parity bits ignored)."""
    return bytes(b & 0xFE for b in key[:8]) == bytes(b & 0xFE for b in key[8:16])


def legacy_session_key(key: bytes, rnd_a: bytes, rnd_b: bytes) -> bytes:
    """The 16-byte session key after 0x0A or 0x1A with a DES or 2K3DES key."""
    if is_single_des(key):
        return (rnd_a[:4] + rnd_b[:4]) * 2
    return rnd_a[:4] + rnd_b[:4] + rnd_a[4:8] + rnd_b[4:8]


@attrs.frozen
class LegacySession:
    """What the card keeps after a DES-family authentication.

    Attributes:
        key_no: the key authenticated with.
        iso: True after 0x1A (EV1 secure messaging), False after 0x0A (D40).
        session_key: 16 bytes.
    """

    key_no: int
    iso: bool
    session_key: bytes = attrs.field(repr=False)


class LegacyCardAuthentication:
    """The card's side of Authenticate (0x0A) or AuthenticateISO (0x1A) with a DES key."""

    def __init__(self, key_no: int, key: bytes, *, iso: bool, rnd_b: bytes | None = None) -> None:
        self.key_no = key_no
        self.iso = iso
        self._key = bytes(key)
        self._rnd_b = rnd_b if rnd_b is not None else os.urandom(DES_BLOCK)
        self._challenge = des_encrypt(self._key, self._rnd_b)

    def challenge(self) -> bytes:
        """E(K, RndB), 8 bytes."""
        return self._challenge

    def verify(self, answer: bytes) -> tuple[bytes, LegacySession]:
        """Check the reader's 16-byte answer; return the card's reply and the session.

        Raises:
            CardAuthenticationFailed: wrong length, or the reader does not hold the key.
        """
        if len(answer) != 2 * DES_BLOCK:
            raise CardAuthenticationFailed("authentication answer is not 16 bytes")
        if self.iso:
            plain = cbc_decrypt(self._key, self._challenge, answer)
        else:
            plain = undo_send_mode(self._key, answer)
        rnd_a, rotated = plain[:DES_BLOCK], plain[DES_BLOCK:]
        if rotated != self._rnd_b[1:] + self._rnd_b[:1]:
            raise CardAuthenticationFailed("the reader did not prove the key")
        proof = rnd_a[1:] + rnd_a[:1]
        iv = answer[-DES_BLOCK:] if self.iso else bytes(DES_BLOCK)
        reply = cbc_encrypt(self._key, iv, proof)
        session = LegacySession(
            self.key_no, self.iso, legacy_session_key(self._key, rnd_a, self._rnd_b)
        )
        return reply, session
