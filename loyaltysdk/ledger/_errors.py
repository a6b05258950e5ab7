# SPDX-License-Identifier: Apache-2.0
"""Ledger errors: bad input (nothing recorded) and rejections (remembered).

Bad input (`InvalidTransaction` and its kin) is refused before anything is
written, so the ledger is unchanged and a corrected call may use the same key.
A `Rejection` is a business decision on valid input (not enough points, a hold
already resolved); it is recorded under the caller's idempotency key, so a
retry with that key is rejected the same way even if the balance has since
risen.
"""

from __future__ import annotations

from .._errors import InvalidAmount, LedgerError, StorageError


class InvalidTransaction(LedgerError, ValueError):
    """The transaction is malformed: no postings, a zero amount, a bad key."""


class UnbalancedTransaction(InvalidTransaction):
    """Debits and credits of some unit do not sum to the same amount."""


class BalanceOverflow(InvalidAmount):
    """A balance would pass `MAX_AMOUNT` in all; the whole write is undone."""


class UnknownAccount(LedgerError, LookupError):
    """A posting names an account the ledger does not have."""


class UnknownTransaction(LedgerError, LookupError):
    """A hold, post, void or reversal names a key the ledger does not have."""


class AccountConflict(LedgerError):
    """An account id exists already with another unit or other flags."""


class LedgerCorrupted(StorageError):
    """The stored balances disagree with the journal, or the file's pages are damaged:
    never fixed silently."""


class Rejection(LedgerError):
    """A valid request the ledger declined; remembered under its key."""

    #: Stable code stored with the rejected key.
    code = "rejected"
    #: The idempotency key of the write it refused, which a retry replays it under
    #: (in a `transfer_many` batch: the entry that failed); None if raised unkeyed.
    key: str | None = None


class InsufficientFunds(Rejection):
    """A debit would take an account below what its flags allow."""

    code = "insufficient_funds"


class LimitExceeded(Rejection):
    """A credit would take an account above what its flags allow."""

    code = "limit_exceeded"


class HoldExpired(Rejection):
    """The hold timed out before it was posted; its balance was released."""

    code = "hold_expired"


class HoldResolved(Rejection):
    """The hold was posted or voided already: a hold resolves once."""

    code = "hold_resolved"


class PostExceedsHold(Rejection):
    """A post asks for more than the hold reserved, or for other accounts."""

    code = "post_exceeds_hold"


class NotReversible(Rejection):
    """The transaction was reversed already, or is of a kind that is not reversed."""

    code = "not_reversible"


REJECTIONS: dict[str, type[Rejection]] = {
    cls.code: cls
    for cls in (
        Rejection,
        InsufficientFunds,
        LimitExceeded,
        HoldExpired,
        HoldResolved,
        PostExceedsHold,
        NotReversible,
    )
}
