# SPDX-License-Identifier: Apache-2.0
"""Card cryptography on `cryptography`'s AES: CMAC, key diversification, session keys.

Nothing below AES is written here; each function names the document whose
test vectors pin it down (see tests/cards/test_crypto_vectors.py).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.cmac import CMAC


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
