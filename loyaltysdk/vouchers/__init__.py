# SPDX-License-Identifier: Apache-2.0
"""E-vouchers: issuing, two forms (human code and signed QR), offline verification, redemption.

key = IssuerKey.generate("HQ-2026")
voucher = VoucherIssuer(key).issue(template)         # voucher.code, voucher.payload
book = VoucherBook(ledger, keyring, registry=registry)
book.redeem(voucher.payload, basket, receipt="R-1", store="S001")
"""

from .._errors import VoucherError
from ._code import ALPHABET, format_code, new_code, parse_code
from ._errors import (
    BelowMinimumSpend,
    NothingEligible,
    OfflineAcceptanceRefused,
    UnknownIssuerKey,
    VoucherCodeInvalid,
    VoucherExhausted,
    VoucherExpired,
    VoucherForged,
    VoucherMalformed,
    VoucherNotFound,
    VoucherNotYetValid,
    VoucherRevoked,
    VoucherUsed,
    VoucherWrongCurrency,
    VoucherWrongStore,
)
from ._issue import IssuedVoucher, VoucherIssuer, VoucherRegistry, VoucherTemplate
from ._keys import IssuerKey, Keyring
from ._redeem import Redemption, RedemptionPolicy, VoucherBook
from ._terms import VoucherTerms, read_payload

__all__ = [
    "ALPHABET",
    "BelowMinimumSpend",
    "IssuedVoucher",
    "IssuerKey",
    "Keyring",
    "NothingEligible",
    "OfflineAcceptanceRefused",
    "Redemption",
    "RedemptionPolicy",
    "UnknownIssuerKey",
    "VoucherBook",
    "VoucherCodeInvalid",
    "VoucherError",
    "VoucherExhausted",
    "VoucherExpired",
    "VoucherForged",
    "VoucherIssuer",
    "VoucherMalformed",
    "VoucherNotFound",
    "VoucherNotYetValid",
    "VoucherRegistry",
    "VoucherRevoked",
    "VoucherTemplate",
    "VoucherTerms",
    "VoucherUsed",
    "VoucherWrongCurrency",
    "VoucherWrongStore",
    "format_code",
    "new_code",
    "parse_code",
    "read_payload",
]

from .._public import present

present(__name__, globals())
