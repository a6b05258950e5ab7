# SPDX-License-Identifier: Apache-2.0
"""The checkout API a POS calls: a till, its checkout sessions, receipts and refunds."""

from ._checkout import Checkout
from ._errors import (
    CardBlocked,
    CardInUse,
    CheckoutError,
    EmptyBasket,
    InvalidName,
    InvalidReference,
    NoMember,
    NotEnoughPoints,
    OverPayment,
    PaymentInterrupted,
    PresenceRequired,
    ReceiptConflict,
    ReceiptNotFound,
    RefundRefused,
    SessionClosed,
    UnknownCard,
    UnknownMember,
    UnknownTier,
    VoidRefused,
    WalletShort,
    WrongCurrency,
)
from ._members import MemberRecord
from ._online import OfflineAllowance, OfflineLimitReached, OnlineRefused
from ._receipt import MemberBalance, Quote, Receipt, Refund, VoucherUse
from ._till import Identity, Till, TillPolicy, sync_status_of

__all__ = [
    "CardBlocked",
    "CardInUse",
    "Checkout",
    "CheckoutError",
    "EmptyBasket",
    "Identity",
    "InvalidName",
    "InvalidReference",
    "MemberBalance",
    "MemberRecord",
    "NoMember",
    "NotEnoughPoints",
    "OfflineAllowance",
    "OfflineLimitReached",
    "OnlineRefused",
    "OverPayment",
    "PaymentInterrupted",
    "PresenceRequired",
    "Quote",
    "Receipt",
    "ReceiptConflict",
    "ReceiptNotFound",
    "Refund",
    "RefundRefused",
    "SessionClosed",
    "Till",
    "TillPolicy",
    "UnknownCard",
    "UnknownMember",
    "UnknownTier",
    "VoidRefused",
    "VoucherUse",
    "WalletShort",
    "WrongCurrency",
    "sync_status_of",
]

from .._public import present

present(__name__, globals())
