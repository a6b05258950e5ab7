# SPDX-License-Identifier: Apache-2.0
"""Voucher errors: each refusal its own type, all under `VoucherError`."""

from __future__ import annotations

from .._errors import VoucherError


class VoucherCodeInvalid(VoucherError, ValueError):
    """The text is not a voucher code (wrong characters, length, or check character)."""


class VoucherMalformed(VoucherError, ValueError):
    """A QR payload is not a voucher payload (bad framing, encoding or fields)."""


class UnknownIssuerKey(VoucherError):
    """The payload names an issuer key this till does not hold."""


class VoucherForged(VoucherError):
    """The signature does not verify: forged, or its terms were altered."""


class VoucherNotFound(VoucherError, LookupError):
    """No voucher with this code is known here."""


class VoucherNotYetValid(VoucherError):
    """The voucher's validity window has not started."""


class VoucherExpired(VoucherError):
    """The voucher's validity window has ended."""


class VoucherRevoked(VoucherError):
    """Head office revoked the voucher."""


class VoucherWrongStore(VoucherError):
    """The voucher is not valid in this store."""


class VoucherWrongCurrency(VoucherError):
    """The voucher is in another currency than the basket."""


class BelowMinimumSpend(VoucherError):
    """The basket (its eligible lines) does not reach the voucher's minimum spend."""


class NothingEligible(VoucherError):
    """No line of the basket is in the voucher's categories."""


class VoucherUsed(VoucherError):
    """A single-use voucher was already redeemed (on another receipt)."""


class VoucherExhausted(VoucherError):
    """A partially redeemable voucher has nothing left."""


class OfflineAcceptanceRefused(VoucherError):
    """Offline, the till's policy does not allow accepting this unknown voucher."""
