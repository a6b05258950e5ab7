# SPDX-License-Identifier: Apache-2.0
"""The double-entry ledger: accounts, postings, holds, points lots, outbox.

Example:
    >>> from loyaltysdk import Money
    >>> from loyaltysdk.ledger import Ledger, Posting, AccountFlags
    >>> ledger = Ledger.in_memory()
    >>> _ = ledger.open_account("sys:float:EUR", "EUR")
    >>> _ = ledger.open_account("member:M-1:wallet:EUR", "EUR",
    ...                         flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    >>> twenty = Money(2000, "EUR")
    >>> tx = ledger.transfer("topup-1", [Posting.debit("sys:float:EUR", twenty),
    ...                                  Posting.credit("member:M-1:wallet:EUR", twenty)])
    >>> str(ledger.balance("member:M-1:wallet:EUR").available)
    '20.00 EUR'
"""

from ._errors import (
    AccountConflict,
    BalanceOverflow,
    HoldExpired,
    HoldResolved,
    InsufficientFunds,
    InvalidTransaction,
    LedgerCorrupted,
    LimitExceeded,
    NotReversible,
    PostExceedsHold,
    Rejection,
    UnbalancedTransaction,
    UnknownAccount,
    UnknownTransaction,
)
from ._ledger import Clock, Ledger
from ._store import LedgerStore
from ._types import (
    Account,
    AccountFlags,
    Balance,
    Entry,
    Kind,
    Lot,
    OutboxRecord,
    OutboxStatus,
    Posting,
    Side,
    Transaction,
)

__all__ = [
    "Account",
    "AccountConflict",
    "AccountFlags",
    "Balance",
    "BalanceOverflow",
    "Clock",
    "Entry",
    "HoldExpired",
    "HoldResolved",
    "InsufficientFunds",
    "InvalidTransaction",
    "Kind",
    "Ledger",
    "LedgerCorrupted",
    "LedgerStore",
    "LimitExceeded",
    "Lot",
    "NotReversible",
    "OutboxRecord",
    "OutboxStatus",
    "PostExceedsHold",
    "Posting",
    "Rejection",
    "Side",
    "Transaction",
    "UnbalancedTransaction",
    "UnknownAccount",
    "UnknownTransaction",
]

from .._public import present

present(__name__, globals())
