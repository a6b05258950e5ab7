# SPDX-License-Identifier: Apache-2.0
"""Card cryptography on `cryptography`'s AES: CMAC, key diversification, session keys.

Nothing below AES is written here; each function names the document whose
test vectors pin it down (see tests/cards/test_crypto_vectors.py).
"""

from __future__ import annotations

import hmac
import zlib

from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.ciphers.modes import CBC, ECB
from cryptography.hazmat.primitives.cmac import CMAC

BLOCK = 16
ZERO_IV = bytes(BLOCK)


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != 16:
        raise ValueError("an AES-128 key is 16 bytes")
    return bytes(key)


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """Return the 16-byte AES-CMAC of `message` under `key` (RFC 4493).

    Args:
        key: a 16-, 24- or 32-byte AES key.
        message: any bytes, possibly empty.

    Returns:
        The full 16-byte tag.
    """
    mac = CMAC(AES(key))
    mac.update(message)
    return mac.finalize()


def truncate_mac(mac: bytes) -> bytes:
    """The 8-byte MAC DESFire EV2 and NTAG 424 send: the odd-numbered bytes of the CMAC."""
    return mac[1::2]


def encrypt_block(key: bytes, block: bytes) -> bytes:
    """AES of one 16-byte block (IV derivation); the protocols define it so."""
    if len(block) != BLOCK:
        raise ValueError("encrypt_block takes exactly one 16-byte block")
    encryptor = Cipher(AES(key), ECB()).encryptor()  # noqa: S305 - one block, by protocol
    return encryptor.update(block) + encryptor.finalize()


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC encryption of whole blocks; padding is the caller's choice."""
    if len(data) % BLOCK:
        raise ValueError("CBC data must be whole 16-byte blocks")
    encryptor = Cipher(AES(key), CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC decryption of whole blocks."""
    if len(data) % BLOCK:
        raise ValueError("CBC data must be whole 16-byte blocks")
    decryptor = Cipher(AES(key), CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def pad_m2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros to a whole block (always adds)."""
    data = data + b"\x80"
    return data + bytes(-len(data) % BLOCK)


def unpad_m2(data: bytes) -> bytes:
    """Undo `pad_m2`.

    Raises:
        ValueError: the padding is not 0x80 followed by zeros within the last block.
    """
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise ValueError("bad ISO/IEC 9797-1 method 2 padding")
    return stripped[:-1]


def desfire_crc32(data: bytes) -> bytes:
    """The CRC32 DESFire appends to a new key (CRC-32/JAMCRC), little-endian."""
    return ((zlib.crc32(data) ^ 0xFFFFFFFF) & 0xFFFFFFFF).to_bytes(4, "little")


def _shift_left(block: bytes) -> bytes:
    value = (int.from_bytes(block, "big") << 1) & ((1 << 128) - 1)
    return value.to_bytes(BLOCK, "big")


def _cmac_subkeys(key: bytes) -> tuple[bytes, bytes]:
    # The CMAC subkeys K1, K2 (RFC 4493 section 2.3), needed where AN10922
    # pads to two blocks itself instead of to one as plain CMAC would.
    rb = 0x87
    l_block = encrypt_block(key, ZERO_IV)
    k1 = bytearray(_shift_left(l_block))
    if l_block[0] & 0x80:
        k1[-1] ^= rb
    k2 = bytearray(_shift_left(bytes(k1)))
    if k1[0] & 0x80:
        k2[-1] ^= rb
    return bytes(k1), bytes(k2)


def diversify_aes128(master_key: bytes, uid: bytes, aid: bytes, system_identifier: bytes) -> bytes:
    """Derive a card's AES-128 key from a master key (NXP AN10922, section 2.2).

    The input is 0x01 || UID || AID || system identifier (1 to 31 bytes of
    diversification data). AN10922 always works on two blocks: shorter input
    is padded with 0x80 00.. to 32 bytes and XORed with K2, exactly 32 bytes
    with K1; then CBC-MAC under the master key. For inputs of 16 bytes or
    fewer this differs from a plain CMAC, which would pad to one block only.

    Args:
        master_key: the 16-byte master (or application) key.
        uid: the card UID (7 bytes for DESFire), first.
        aid: the application id as stored on the card (3 bytes, LSB first).
        system_identifier: the chain's system id, any length that fits.

    Raises:
        ValueError: a wrong key length, or more than 31 bytes of input.
    """
    key = _check_key(master_key)
    data = bytes(uid) + bytes(aid) + bytes(system_identifier)
    if not 1 <= len(data) <= 31:
        raise ValueError("AN10922 AES-128 diversification takes 1 to 31 bytes of input")
    message = b"\x01" + data
    k1, k2 = _cmac_subkeys(key)
    if len(message) < 2 * BLOCK:
        padded = message + b"\x80" + bytes(2 * BLOCK - len(message) - 1)
        last_key = k2
    else:
        padded, last_key = message, k1
    padded = padded[:BLOCK] + bytes(a ^ b for a, b in zip(padded[BLOCK:], last_key, strict=True))
    return cbc_encrypt(key, ZERO_IV, padded)[BLOCK:]


def ev2_session_keys(key: bytes, rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """KSesAuthENC and KSesAuthMAC after an EV2 authentication (NXP AN12343, AN12196).

    The session vectors are 0xA55A (ENC) or 0x5AA5 (MAC), 0x00010080, then
    RndA[15..14] || (RndA[13..8] XOR RndB[15..10]) || RndB[9..0] || RndA[7..0]
    (byte 15 is the first byte sent); each key is the CMAC of its vector.
    """
    key = _check_key(key)
    if len(rnd_a) != BLOCK or len(rnd_b) != BLOCK:
        raise ValueError("RndA and RndB are 16 bytes each")
    mixed = bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[0:6], strict=True))
    context = rnd_a[0:2] + mixed + rnd_b[6:16] + rnd_a[8:16]
    enc = aes_cmac(key, b"\xa5\x5a\x00\x01\x00\x80" + context)
    mac = aes_cmac(key, b"\x5a\xa5\x00\x01\x00\x80" + context)
    return enc, mac


def ev1_session_key(rnd_a: bytes, rnd_b: bytes) -> bytes:
    """The EV1 AES session key: RndA[0..3] || RndB[0..3] || RndA[12..15] || RndB[12..15]."""
    if len(rnd_a) != BLOCK or len(rnd_b) != BLOCK:
        raise ValueError("RndA and RndB are 16 bytes each")
    return rnd_a[0:4] + rnd_b[0:4] + rnd_a[12:16] + rnd_b[12:16]


def rotate_left(data: bytes) -> bytes:
    """Rotate by one byte to the left, as the authentication protocols do to RndA and RndB."""
    return data[1:] + data[:1]


def equal(a: bytes, b: bytes) -> bool:
    """Compare MACs and challenges in constant time."""
    return hmac.compare_digest(a, b)


__all__ = [
    "aes_cmac",
    "cbc_decrypt",
    "cbc_encrypt",
    "desfire_crc32",
    "diversify_aes128",
    "encrypt_block",
    "ev1_session_key",
    "ev2_session_keys",
    "pad_m2",
    "truncate_mac",
    "unpad_m2",
]
