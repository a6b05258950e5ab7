# SPDX-License-Identifier: Apache-2.0
"""A voucher's terms, and the signed QR payload that carries them.

Payload: ``LV1.`` + base64url(compact JSON of the terms) + ``.`` +
base64url(Ed25519 signature over everything before the second dot). The
terms name the issuer key (``k``) so keys can rotate; a till verifies with
the public key of that id and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._money import check_unit
from ._code import parse_code
from ._errors import UnknownIssuerKey, VoucherForged, VoucherMalformed

PREFIX = "LV1."
_MAX_PAYLOAD = 2048
Kind = Literal["value", "percent"]
Mode = Literal["single", "partial"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _whole_second(moment: datetime) -> datetime:
    # The wire form carries whole seconds; terms compare equal after a round trip.
    if not isinstance(moment, datetime):
        raise VoucherMalformed(f"expected a datetime, not {moment!r}")
    return moment.replace(microsecond=0)


def _codes(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


@attrs.frozen
class VoucherTerms:
    """What a voucher promises.

    Attributes:
        code: the voucher's code (normalised, with its check character).
        key_id: the issuer key that signs it.
        kind: "value" (an amount) or "percent" (off the eligible lines).
        amount: minor units for a value voucher; basis points (1/100 %) for a
            percent voucher (1500 = 15 %).
        currency: ISO 4217 code.
        min_spend: the eligible basket must reach this (minor units).
        valid_from, valid_until: the validity window (UTC; until exclusive).
        mode: "single" (one redemption; any rest is forfeited) or "partial"
            (a balance, like a gift card).
        stores: stores where it is valid (empty: all).
        categories: categories it applies to (empty: the whole basket).
        campaign: the campaign it belongs to ("" for a single voucher).
    """

    code: str
    key_id: str
    kind: Kind
    amount: int
    currency: str
    valid_from: datetime = attrs.field(converter=_whole_second)
    valid_until: datetime = attrs.field(converter=_whole_second)
    min_spend: int = 0
    mode: Mode = "single"
    stores: frozenset[str] = attrs.field(default=frozenset(), converter=_codes)
    categories: frozenset[str] = attrs.field(default=frozenset(), converter=_codes)
    campaign: str = ""

    def __attrs_post_init__(self) -> None:
        parse_code(self.code)
        check_unit(self.currency)
        if self.kind not in ("value", "percent"):
            raise VoucherMalformed(f"voucher kind must be value or percent, not {self.kind!r}")
        if self.mode not in ("single", "partial"):
            raise VoucherMalformed(f"voucher mode must be single or partial, not {self.mode!r}")
        for name in ("amount", "min_spend"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise VoucherMalformed(f"{name} must be a non-negative integer, not {value!r}")
        if self.amount == 0 or (self.kind == "percent" and self.amount > 10_000):
            raise VoucherMalformed(
                f"amount {self.amount} is out of range for a {self.kind} voucher"
            )
        if self.kind == "percent" and self.mode == "partial":
            raise VoucherMalformed("a percent voucher cannot hold a balance")
        if self.valid_from.tzinfo is None or self.valid_until.tzinfo is None:
            raise VoucherMalformed("validity times must be timezone-aware")
        if self.valid_until <= self.valid_from:
            raise VoucherMalformed("the validity window is empty")

    # -- wire form -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "c": self.code,
            "k": self.key_id,
            "t": "v" if self.kind == "value" else "p",
            "a": self.amount,
            "cu": self.currency,
            "f": int(self.valid_from.timestamp()),
            "u": int(self.valid_until.timestamp()),
        }
        if self.min_spend:
            data["m"] = self.min_spend
        if self.mode == "partial":
            data["p"] = 1
        if self.stores:
            data["s"] = sorted(self.stores)
        if self.categories:
            data["g"] = sorted(self.categories)
        if self.campaign:
            data["cp"] = self.campaign
        return data

    @classmethod
    def from_json(cls, data: Any) -> VoucherTerms:
        """Rebuild terms from `to_json` output.

        Raises:
            VoucherMalformed: a field is missing or of the wrong type.
        """
        if not isinstance(data, dict):
            raise VoucherMalformed("voucher terms are not an object")
        try:
            kind = {"v": "value", "p": "percent"}[data["t"]]
            terms = cls(
                code=_text(data["c"]),
                key_id=_text(data["k"]),
                kind=kind,  # type: ignore[arg-type]
                amount=_int(data["a"]),
                currency=_text(data["cu"]),
                valid_from=datetime.fromtimestamp(_int(data["f"]), UTC),
                valid_until=datetime.fromtimestamp(_int(data["u"]), UTC),
                min_spend=_int(data.get("m", 0)),
                mode="partial" if data.get("p") == 1 else "single",
                stores=_texts(data.get("s", [])),
                categories=_texts(data.get("g", [])),
                campaign=_text(data.get("cp", "")),
            )
        except VoucherMalformed:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as error:
            raise VoucherMalformed(f"voucher terms are incomplete or invalid: {error}") from None
        return terms

    def sign(self, key: Ed25519PrivateKey) -> str:
        """The QR payload: the terms and the issuer's signature."""
        body = PREFIX + _b64(json.dumps(self.to_json(), separators=(",", ":")).encode())
        return body + "." + _b64(key.sign(body.encode("ascii")))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise VoucherMalformed(f"expected text, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise VoucherMalformed(f"expected an integer, got {type(value).__name__}")
    return value


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise VoucherMalformed("expected a list of text")
    return [_text(v) for v in value]


def read_payload(payload: str, keys: dict[str, Ed25519PublicKey]) -> VoucherTerms:
    """Verify a QR payload with the issuer's public key and return its terms.

    Checks only authenticity and form; validity for a basket is the
    redeemer's business.

    Raises:
        VoucherMalformed: not a voucher payload.
        UnknownIssuerKey: signed with a key id this till does not hold.
        VoucherForged: the signature does not verify (forged or altered).
    """
    if not isinstance(payload, str) or len(payload) > _MAX_PAYLOAD:
        raise VoucherMalformed("not a voucher payload")
    if not payload.startswith(PREFIX):
        raise VoucherMalformed("not a voucher payload (wrong prefix)")
    body, dot, signature_text = payload.rpartition(".")
    if not dot or body == PREFIX.rstrip(".") or "." in body[len(PREFIX) :]:
        raise VoucherMalformed("not a voucher payload (framing)")
    try:
        raw_terms = _unb64(body[len(PREFIX) :])
        signature = _unb64(signature_text)
        data = json.loads(raw_terms)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise VoucherMalformed("not a voucher payload (encoding)") from None
    key_id = data.get("k") if isinstance(data, dict) else None
    if not isinstance(key_id, str):
        raise VoucherMalformed("voucher payload names no issuer key")
    key = keys.get(key_id)
    if key is None:
        raise UnknownIssuerKey(f"unknown issuer key {key_id!r}")
    try:
        key.verify(signature, body.encode("ascii"))
    except (InvalidSignature, ValueError):
        raise VoucherForged("the voucher's signature does not verify") from None
    return VoucherTerms.from_json(data)
