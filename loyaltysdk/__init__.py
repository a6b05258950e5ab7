# SPDX-License-Identifier: Apache-2.0
"""loyaltysdk: loyalty cards, points, e-vouchers and stored value for POS tills.

Everything a POS integration needs is importable from here; submodules whose
names start with an underscore are private.
"""

from ._errors import (
    CardAuthenticationFailed,
    CardError,
    CardIntegrityError,
    CardMute,
    CardRemoved,
    ConfigurationError,
    CurrencyMismatch,
    DriverMissing,
    HubError,
    HubUnreachable,
    IdempotencyConflict,
    InvalidAmount,
    LedgerError,
    LoyaltyError,
    MalformedApdu,
    MalformedResponse,
    MissingExtra,
    NoReader,
    NotATillFile,
    ReaderBusy,
    ReaderError,
    ReaderTimeout,
    ReaderUnplugged,
    RulesError,
    StorageClosed,
    StorageError,
    StorageFull,
    SyncError,
    UnknownCurrency,
    VoucherError,
    WrongType,
)
from ._money import POINTS_UNIT, Amount, Money, Points
from ._version import __version__
from .rules import Basket, Line, load_rules
from .till import (
    Checkout,
    CheckoutError,
    Identity,
    MemberBalance,
    Quote,
    Receipt,
    Refund,
    Till,
    TillPolicy,
)

__all__ = [
    "POINTS_UNIT",
    "Amount",
    "Basket",
    "CardAuthenticationFailed",
    "CardError",
    "CardIntegrityError",
    "CardMute",
    "CardRemoved",
    "Checkout",
    "CheckoutError",
    "ConfigurationError",
    "CurrencyMismatch",
    "DriverMissing",
    "HubError",
    "HubUnreachable",
    "IdempotencyConflict",
    "Identity",
    "InvalidAmount",
    "LedgerError",
    "Line",
    "LoyaltyError",
    "MalformedApdu",
    "MalformedResponse",
    "MemberBalance",
    "MissingExtra",
    "Money",
    "NoReader",
    "NotATillFile",
    "Points",
    "Quote",
    "ReaderBusy",
    "ReaderError",
    "ReaderTimeout",
    "ReaderUnplugged",
    "Receipt",
    "Refund",
    "RulesError",
    "StorageClosed",
    "StorageError",
    "StorageFull",
    "SyncError",
    "Till",
    "TillPolicy",
    "UnknownCurrency",
    "VoucherError",
    "WrongType",
    "__version__",
    "load_rules",
]

from ._public import present

present(__name__, globals())
