# SPDX-License-Identifier: Apache-2.0
"""Registering a till without sending its enrolment token, and proving the hub's update key.

Head office hands the installer a one-time enrolment token out of band. The
till never sends it: it sends an HMAC keyed by the token's SHA-256 (which
is all the hub stores), and the hub answers with its update-signing key and
an HMAC of that key under the same secret. Someone in the middle of a plain
HTTP registration sees neither the token nor a way to forge the key's proof,
so the key a till keeps is head office's, and every update it accepts later
is checked against it.
"""

from __future__ import annotations

import hashlib
import hmac


def digest(token: str) -> bytes:
    """The secret both sides hold: the SHA-256 of the enrolment token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def enrolment_proof(secret: bytes, till_id: str) -> bytes:
    """What the till sends to register as `till_id`."""
    return hmac.new(secret, b"loyaltysdk register\n" + till_id.encode(), hashlib.sha256).digest()


def key_proof(secret: bytes, till_id: str, update_key: bytes) -> bytes:
    """What the hub sends with its update key, for the till to check."""
    message = b"loyaltysdk update key\n" + till_id.encode() + b"\n" + update_key
    return hmac.new(secret, message, hashlib.sha256).digest()
