# SPDX-License-Identifier: Apache-2.0
"""Value types of the ledger: accounts, postings, transactions, balances."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from .._money import Amount, Money, Points, amount_of
from ._errors import InvalidTransaction


class AccountFlags(enum.IntFlag):
    """Limits an account enforces on every transaction, pending ones included."""

    NONE = 0
    #: A member's points or wallet: it can never be spent below zero.
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1
    #: The mirror limit, for accounts whose normal balance is a debit.
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2


class Side(enum.Enum):
    """Which column of an account a posting moves."""

    DEBIT = "D"
    CREDIT = "C"


class Kind(enum.Enum):
    """What a journal entry is."""

    TRANSFER = "transfer"  # posted at once
    HOLD = "hold"  # pending: reserves, moves nothing yet
    POST = "post"  # resolves a hold: moves all or less of it
    VOID = "void"  # resolves a hold: moves nothing
    EXPIRY = "expiry"  # a hold that timed out, voided by the ledger
    REVERSAL = "reversal"  # undoes a transfer, post or breakage
    BREAKAGE = "breakage"  # expired points lots moved to breakage
    # A till's copy of the book of record's figure (a chain-wide account as
    # the hub holds it, a card's value as its chip holds it): it moves here,
    # and nowhere else, since the book of record has the movements already.
    MIRROR = "mirror"


_AMOUNTS = (Money, Points)


@attrs.frozen(init=False)
class Posting:
    """One side of a movement: debit or credit one account by a positive amount.

    Attributes:
        account: the account id.
        side: debit or credit.
        amount: Money in the account's currency, or Points.
        expires_at: for a credit to a lot-tracked account, when that lot expires.
    """

    account: str
    side: Side
    amount: Amount
    expires_at: datetime | None = None

    # Written out rather than generated with validators: a checkout builds a
    # few of these per sale, and three validator calls cost more than the checks.
    # The amount's type is tested exactly first: `Points.minor` is a property
    # (a Python call) and `Money | Points` a new union object on every call.
    def __init__(
        self, account: str, side: Side, amount: Amount, expires_at: datetime | None = None
    ) -> None:
        if not (isinstance(account, str) and 0 < len(account) <= 200 and account.isprintable()):
            raise InvalidTransaction(
                f"an account id is 1-200 printable characters, not {account!r}"
            )
        if type(side) is not Side:
            raise TypeError(f"'side' must be {Side!r} (got {side!r} that is a {type(side)!r}).")
        kind = type(amount)
        if kind is Points:
            minor = amount.value  # type: ignore[union-attr]
        elif kind is Money or isinstance(amount, _AMOUNTS):
            minor = amount.minor
        else:
            raise InvalidTransaction(f"a posting amount is Money or Points, not {amount!r}")
        if minor <= 0:
            raise InvalidTransaction(f"a posting amount must be positive, not {amount}")
        _set_account(self, account)
        _set_side(self, side)
        _set_amount(self, amount)
        _set_expires_at(self, expires_at)

    @classmethod
    def debit(cls, account: str, amount: Amount) -> Posting:
        """A posting that debits `account` by `amount`."""
        return cls(account, Side.DEBIT, amount)

    @classmethod
    def credit(cls, account: str, amount: Amount, *, expires_at: datetime | None = None) -> Posting:
        """A posting that credits `account` by `amount` (a points lot may expire)."""
        return cls(account, Side.CREDIT, amount, expires_at)

    @property
    def unit(self) -> str:
        """The unit moved: a currency code or PTS."""
        return self.amount.unit

    def flipped(self) -> Posting:
        """The same movement in the other direction (used by reversals)."""
        side = Side.CREDIT if self.side is Side.DEBIT else Side.DEBIT
        return Posting(self.account, side, self.amount)


# The slots' own setters: a third cheaper than object.__setattr__ by name.
_set_account, _set_side, _set_amount, _set_expires_at = (
    vars(Posting)[name].__set__ for name in ("account", "side", "amount", "expires_at")
)


@attrs.frozen
class Account:
    """An account's fixed description.

    Attributes:
        id: a readable id such as ``member:M-1:points`` or ``sys:points:issued``.
        unit: a currency code or PTS.
        flags: the limits it enforces.
        lots: whether credits form expiring lots consumed oldest first.
        breakage_account: where expired lots go (lot-tracked accounts only).
    """

    id: str
    unit: str
    flags: AccountFlags
    lots: bool = False
    breakage_account: str | None = None


@attrs.frozen
class Balance:
    """An account's balance, three ways.

    Amounts are shown on the account's normal side: credit for ordinary and
    member accounts, debit for accounts flagged credits-must-not-exceed-debits.

    Attributes:
        posted: what has settled.
        pending: the net of open holds (positive when holds would add to it).
        available: what may be spent now: posted less pending outflows, less
            points whose lots have expired (`expired`) but are not yet booked
            to breakage.
        expired: for a lot-tracked account, expired points not reserved by
            an open hold; the next write on the account books them to breakage.
    """

    account: str
    unit: str
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    debit_normal: bool = False
    expired: int = 0

    def _amount(self, minor: int) -> Amount:
        return amount_of(minor, self.unit)

    @property
    def posted(self) -> Amount:
        """Settled balance on the account's normal side."""
        net = self.credits_posted - self.debits_posted
        return self._amount(-net if self.debit_normal else net)

    @property
    def pending(self) -> Amount:
        """Net effect of open holds on the normal side."""
        net = self.credits_pending - self.debits_pending
        return self._amount(-net if self.debit_normal else net)

    @property
    def available(self) -> Amount:
        """Posted less what open holds would take out: what a cashier sees."""
        if self.debit_normal:
            return self._amount(self.debits_posted - self.credits_posted - self.credits_pending)
        return self._amount(
            self.credits_posted - self.debits_posted - self.debits_pending - self.expired
        )


@attrs.frozen(init=False)
class Transaction:
    """A committed journal entry.

    Attributes:
        seq: its position in this ledger's journal.
        key: the caller's idempotency key.
        kind: what it is.
        postings: what it moved (for a hold: what it reserves).
        created_at: when it was committed (UTC).
        ref: the key of the hold it resolves or the entry it reverses.
        expires_at: for a hold, when it times out.
        memo: free text for people.
    """

    seq: int
    key: str
    kind: Kind
    postings: tuple[Posting, ...]
    created_at: datetime
    ref: str | None = None
    expires_at: datetime | None = None
    memo: str | None = None

    # Written out, setting the slots through their descriptors: every write returns
    # one, and attrs' generated __init__ sets each field by name.
    def __init__(
        self,
        seq: int,
        key: str,
        kind: Kind,
        postings: tuple[Posting, ...],
        created_at: datetime,
        ref: str | None = None,
        expires_at: datetime | None = None,
        memo: str | None = None,
    ) -> None:
        _tx_seq(self, seq)
        _tx_key(self, key)
        _tx_kind(self, kind)
        _tx_postings(self, postings)
        _tx_created_at(self, created_at)
        _tx_ref(self, ref)
        _tx_expires_at(self, expires_at)
        _tx_memo(self, memo)


_tx_seq, _tx_key, _tx_kind, _tx_postings, _tx_created_at, _tx_ref, _tx_expires_at, _tx_memo = (
    vars(Transaction)[field.name].__set__ for field in attrs.fields(Transaction)
)


@attrs.frozen
class Entry:
    """One posting as an account's history shows it."""

    seq: int
    key: str
    kind: Kind
    side: Side
    amount: Amount
    pending: bool
    created_at: datetime
    memo: str | None


@attrs.frozen
class Lot:
    """Points earned together, spent oldest first, expiring together."""

    id: int
    account: str
    amount: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None


@attrs.frozen
class OutboxRecord:
    """A committed transaction waiting to be shipped to the hub.

    Attributes:
        seq: this till's monotonic sequence number (never reused).
        payload: the transaction as JSON text, self-contained for the hub.
    """

    seq: int
    tx_seq: int
    created_at: datetime
    payload: str


@attrs.frozen
class OutboxStatus:
    """How much is waiting for the hub, and since when."""

    length: int
    oldest_at: datetime | None
    last_seq: int
    acked_seq: int
