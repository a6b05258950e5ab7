# SPDX-License-Identifier: Apache-2.0
"""The error hierarchy: one root, one family per layer.

A caller catches `LoyaltyError` for everything the SDK raises on purpose, a
family (`LedgerError`, `CardError`, ...) for one layer, or a leaf for one
condition. Leaves subclass a builtin where that helps the caller
(`CurrencyMismatch` is also a `ValueError`). Errors that a retry may cure say
so in `should_retry`, so the POS and the sync loop decide from one attribute.
"""

from __future__ import annotations


class LoyaltyError(Exception):
    """Root of every error the SDK raises on purpose."""

    #: True when the same call, repeated later, may succeed (a reader that was
    #: busy, a hub that did not answer). False for a decision that stands.
    should_retry: bool = False


# --- families -------------------------------------------------------------


class LedgerError(LoyaltyError):
    """The ledger refused or could not perform an operation."""


class CardError(LoyaltyError):
    """A card answered wrongly, was removed, or failed authentication."""


class ReaderError(LoyaltyError):
    """A reader is missing, busy, unplugged or timed out."""


class VoucherError(LoyaltyError):
    """A voucher is malformed, forged, expired, revoked or not applicable."""


class RulesError(LoyaltyError):
    """A rule set is invalid or cannot be evaluated."""


class SyncError(LoyaltyError):
    """Synchronisation with the hub failed or was refused."""


class HubUnreachable(SyncError, ConnectionError):
    """The hub did not answer (network down, timeout, a 5xx): retry later; the till
    keeps working offline and its outbox waits."""

    should_retry = True


class HubError(LoyaltyError):
    """The hub refused a request or could not serve it."""


class StorageError(LedgerError):
    """The till's file could not be read or written. The transaction in progress
    rolled back as a whole: nothing was half-written and nothing was lost."""


class StorageFull(StorageError):
    """The disk (or the file's quota) is full; retry once space is freed."""

    should_retry = True


class NotATillFile(StorageError):
    """The file exists but is not a loyaltysdk file: empty, damaged beyond reading, or
    another program's database. Refused so that nothing of it is overwritten."""


class StorageClosed(LoyaltyError, RuntimeError):
    """A call on a till or ledger after its `close()`."""


class ConfigurationError(LoyaltyError, ValueError):
    """A setting given to the SDK is invalid."""


class WrongType(LoyaltyError, TypeError):
    """An argument of the wrong type (a dict where a Basket goes, an int where Money
    goes): the message names the parameter and what it takes."""


class MissingExtra(ConfigurationError, ImportError):
    """A feature needs an optional extra that is not installed; the message names the
    ``pip install 'loyaltysdk[...]'`` to run."""

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        super().__init__(
            f"{feature} needs the {extra!r} extra ({missing} is not installed):"
            f" pip install 'loyaltysdk[{extra}]'"
        )
        self.feature = feature
        self.extra = extra
        self.missing = missing


# --- values ---------------------------------------------------------------


class InvalidAmount(LedgerError, ValueError):
    """An amount is not a non-negative integer in minor units (or points)."""


class CurrencyMismatch(LedgerError, ValueError):
    """Two amounts in different units were combined."""


class UnknownCurrency(LedgerError, ValueError):
    """A currency code is not an active ISO 4217 code."""


# --- idempotency ----------------------------------------------------------


class IdempotencyConflict(LoyaltyError):
    """The same idempotency key was sent again with different content."""


# --- readers and cards shared by every driver -----------------------------


class NoReader(ReaderError, LookupError):
    """No reader matches, or the chosen reader is not connected."""


class ReaderTimeout(ReaderError):
    """No card was presented, or the reader did not answer, in time."""

    should_retry = True


class ReaderBusy(ReaderError):
    """Another process holds the reader or card exclusively."""

    should_retry = True


class ReaderUnplugged(ReaderError, ConnectionError):
    """The reader went away; it may come back."""

    should_retry = True


class DriverMissing(ReaderError, ImportError):
    """The driver for a reader path needs an extra that is not installed."""


class CardRemoved(CardError, ConnectionError):
    """The card left the field during an exchange: it must be tapped again."""

    should_retry = True


class CardMute(CardError):
    """The card did not answer at all."""

    should_retry = True


class MalformedResponse(CardError, ValueError):
    """A card response was truncated, oversized or otherwise not well-formed."""


class MalformedApdu(CardError, ValueError):
    """An APDU given to the SDK is not well-formed."""


class CardIntegrityError(CardError):
    """A card response failed its MAC or decryption check: nothing it said is trusted."""


class CardAuthenticationFailed(CardError):
    """Mutual authentication with the card failed (wrong key, cloned or forged card)."""
