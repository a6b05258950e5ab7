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
    IdempotencyConflict,
    InvalidAmount,
    LedgerError,
    LoyaltyError,
    MalformedApdu,
    MalformedResponse,
    NoReader,
    ReaderBusy,
    ReaderError,
    ReaderTimeout,
    ReaderUnplugged,
    RulesError,
    SyncError,
    UnknownCurrency,
    VoucherError,
)
from ._money import POINTS_UNIT, Amount, Money, Points
from ._version import __version__

__all__ = [
    "POINTS_UNIT",
    "Amount",
    "CardAuthenticationFailed",
    "CardError",
    "CardIntegrityError",
    "CardMute",
    "CardRemoved",
    "ConfigurationError",
    "CurrencyMismatch",
    "DriverMissing",
    "HubError",
    "IdempotencyConflict",
    "InvalidAmount",
    "LedgerError",
    "LoyaltyError",
    "MalformedApdu",
    "MalformedResponse",
    "Money",
    "NoReader",
    "Points",
    "ReaderBusy",
    "ReaderError",
    "ReaderTimeout",
    "ReaderUnplugged",
    "RulesError",
    "SyncError",
    "UnknownCurrency",
    "VoucherError",
    "__version__",
]
