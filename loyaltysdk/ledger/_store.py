# SPDX-License-Identifier: Apache-2.0
"""The storage interface under the ledger, so a hub can put it on PostgreSQL.

The ledger's rules (balancing, limits, idempotency, holds, lots) live in
`Ledger`; a store only reads and writes rows inside one serialisable write
transaction. `SQLiteStore` is the embedded implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import attrs

from ._types import Account, AccountFlags

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware one (UTC)")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime for integer microseconds since the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)


class LimitBroken(Exception):
    """A balance update would break an account's limit; raised by `add_to_balances`.

    Not a `Rejection`: the ledger turns it into one after undoing what the
    update had applied before the failing row.
    """


@attrs.define
class AccountRow:
    """An account with its balance columns, as read inside a write."""

    account: Account
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int


@attrs.frozen
class StoredTx:
    """What the store keeps about an idempotency key."""

    seq: int
    key: str
    fingerprint: bytes
    kind: str
    status: str
    ref_seq: int | None
    created_at: int
    expires_at: int | None
    memo: str | None
    error_code: str | None
    error_message: str | None


@attrs.frozen
class PostingRow:
    """A stored posting."""

    tx_seq: int
    account: str
    side: str
    amount: int
    unit: str
    pending: bool
    expires_at: int | None


@attrs.frozen
class LotRow:
    """A stored lot."""

    id: int
    account: str
    tx_seq: int
    amount: int
    remaining: int
    earned_at: int
    expires_at: int | None


@attrs.frozen
class NewTx:
    """A journal row to insert."""

    key: str
    fingerprint: bytes
    kind: str
    status: str
    created_at: int
    ref_seq: int | None = None
    resolves: int | None = None
    reverses: int | None = None
    expires_at: int | None = None
    memo: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class LedgerStore(Protocol):
    """Row access for the ledger. All writes happen inside `write()`."""

    @property
    def lock(self) -> AbstractContextManager[bool]:
        """The store's re-entrant lock; the ledger serialises on it (one lock, one order)."""
        ...

    def write(self) -> AbstractContextManager[None]:
        """One serialisable, durable write transaction (nestable: joins the outer one)."""
        ...

    def relaxed(self) -> AbstractContextManager[None]:
        """Writes inside survive a process crash but may be lost with the machine.

        For reservations whose loss can only free value (a session's holds),
        never for anything that moves value. A store that cannot relax stays durable.
        """
        ...

    def close(self) -> None: ...

    # accounts
    def insert_account(self, account: Account, created_at: int) -> None: ...
    def insert_accounts(self, accounts: Sequence[Account], created_at: int) -> None: ...
    def get_account(self, account_id: str) -> AccountRow | None: ...
    def get_accounts(self, account_ids: Sequence[str]) -> dict[str, AccountRow]: ...
    def accounts_with_expired(
        self, account_ids: Sequence[str], now: int
    ) -> dict[str, tuple[AccountRow, int]]: ...
    def available_columns(
        self, account_ids: Sequence[str], now: int
    ) -> list[tuple[str, int, int, int, int, int, int]]: ...
    def add_to_balances(self, deltas: dict[str, tuple[int, int, int, int]]) -> None: ...
    def all_accounts(self) -> list[AccountRow]: ...

    # journal
    def find_tx(self, key: str) -> StoredTx | None: ...
    def get_tx(self, seq: int) -> StoredTx | None: ...
    def insert_tx(self, tx: NewTx) -> int | None: ...
    def insert_entry(
        self,
        key: str,
        fingerprint: bytes,
        kind: str,
        created_at: int,
        ref_seq: int | None,
        expires_at: int | None,
        memo: str | None,
    ) -> int | None: ...
    def delete_entry(self, seq: int) -> None: ...
    def insert_postings(
        self, seq: int, rows: Iterable[tuple[str, str, int, str, bool, int | None]]
    ) -> None: ...
    def postings_of(self, seq: int) -> list[PostingRow]: ...
    def is_resolved(self, hold_seq: int) -> bool: ...
    def is_reversed(self, seq: int) -> bool: ...
    def history(
        self, account_id: str, limit: int, before_seq: int | None
    ) -> list[tuple[StoredTx, PostingRow]]: ...

    # holds
    def add_open_hold(self, seq: int, expires_at: int) -> None: ...
    def remove_open_hold(self, seq: int) -> None: ...
    def next_hold_expiry(self) -> int: ...
    def expired_holds(self, now: int) -> list[int]: ...
    def open_holds(self) -> list[int]: ...

    # lots
    def insert_lot(
        self, account: str, tx_seq: int, amount: int, earned_at: int, expires_at: int | None
    ) -> int: ...
    def open_lots(self, account: str) -> list[LotRow]: ...
    def lots_to_cover(self, account: str, need: int, expired_by: int | None) -> list[LotRow]: ...
    def next_expiry(self, account: str, after: int) -> tuple[int, int] | None: ...
    def expired_remaining(self, account: str, now: int) -> int: ...
    def expired_lot_accounts(self, now: int, account: str | None) -> list[str]: ...
    def lots_of(self, account: str) -> list[LotRow]: ...
    def move_lot(self, tx_seq: int, lot_id: int, delta: int) -> None: ...
    def lot_moves_of(self, tx_seq: int) -> list[tuple[int, str, int]]: ...
    def lots_created_by(self, tx_seq: int) -> list[LotRow]: ...

    # outbox
    def append_outbox(self, tx_seq: int, created_at: int, payload: str) -> int: ...
    def outbox(self, after_seq: int, limit: int) -> list[tuple[int, int, int, str]]: ...
    def ack_outbox(self, upto_seq: int) -> None: ...
    def outbox_status(self) -> tuple[int, int | None, int, int]: ...

    # checks
    def fold_journal(self) -> Iterator[tuple[str, int, int, int, int]]: ...
    def committed_without_outbox(self) -> int: ...
    def foreign_key_problems(self) -> list[str]: ...

    def page_problems(self) -> list[str]: ...
    def get_balances(self, account_ids: Sequence[str]) -> dict[str, tuple[int, int, int, int]]: ...

    # several transfers at once, one statement per table (`Ledger.transfer_many`)
    def balances_and_expiry(
        self, account_ids: Sequence[str], now: int
    ) -> dict[str, tuple[int, int, int, int, bool]]: ...
    def insert_entries(
        self, rows: Sequence[tuple[str, bytes, str, int, str | None]]
    ) -> int | None: ...
    def insert_posting_rows(
        self, rows: Sequence[tuple[int, int, str, str, int, str, int | None]]
    ) -> None: ...
    def add_to_balances_at_once(self, deltas: dict[str, tuple[int, int, int, int]]) -> None: ...
    def insert_lots(self, rows: Sequence[tuple[str, int, int, int, int | None]]) -> None: ...
    def move_lots(self, moves: Sequence[tuple[int, int, int]]) -> None: ...
    def append_outbox_rows(self, rows: Sequence[tuple[int, int, str]]) -> None: ...


__all__ = [
    "AccountFlags",
    "AccountRow",
    "LedgerStore",
    "LimitBroken",
    "LotRow",
    "NewTx",
    "PostingRow",
    "StoredTx",
    "from_micros",
    "to_micros",
]
