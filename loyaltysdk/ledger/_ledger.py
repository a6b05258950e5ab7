# SPDX-License-Identifier: Apache-2.0
"""The double-entry ledger: balanced, append-only, idempotent, durable.

Every write follows one path (`_write`): look the idempotency key up (a
repeat returns the first result or the first rejection), release holds that
timed out, check the request, then append the journal rows, adjust the
balance columns, move points lots and append the outbox record, all in one
SQLite transaction, so one call is one durable commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii as _json_string
from pathlib import Path
from typing import Final, cast

from .._errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidAmount,
    LedgerError,
    WrongType,
)
from .._ids import is_id, is_text
from .._money import POINTS_UNIT, Amount, Money, Points, amount_of, check_unit
from ._boundary import storage_boundary
from ._errors import (
    REJECTIONS,
    AccountConflict,
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
from ._sqlite import SQLiteStore, Synchronous
from ._store import (
    AccountRow,
    LedgerStore,
    LimitBroken,
    NewTx,
    PostingRow,
    StoredTx,
    from_micros,
    to_micros,
)
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

Clock = Callable[[], datetime]

# Keys the ledger makes for itself; a caller may not use these prefixes.
_EXPIRY_PREFIX: Final = "expiry:"
_BREAKAGE_PREFIX: Final = "breakage:"
_MAX_KEY: Final = 200
_MAX_MEMO: Final = 1000
_MAX_POSTINGS: Final = 1000
_REVERSIBLE: Final = frozenset({Kind.TRANSFER.value, Kind.POST.value, Kind.BREAKAGE.value})
_DEBIT_LIMIT: Final = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDIT_LIMIT: Final = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)

# (debits posted, credits posted, debits pending, credits pending)
_Delta = list[int]


class _KeyTaken(Exception):
    """The journal insert found the idempotency key used: replay its first result."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_key(key: object) -> str:
    # is_id(key, _MAX_KEY), written out: it runs on every write.
    if not (isinstance(key, str) and 0 < len(key) <= _MAX_KEY and key.isprintable()):
        raise InvalidTransaction(
            f"an idempotency key is 1-{_MAX_KEY} printable characters: {key!r}"
        )
    if key.startswith((_EXPIRY_PREFIX, _BREAKAGE_PREFIX)):
        raise InvalidTransaction(f"key prefix reserved for the ledger: {key!r}")
    return key


def _describe_account(
    account_id: object,
    unit: str,
    flags: AccountFlags,
    lots: bool,
    breakage_account: str | None,
) -> Account:
    if not is_id(account_id):
        raise InvalidTransaction(f"an account id is 1-200 printable characters: {account_id!r}")
    check_unit(unit)
    flags = AccountFlags(flags)
    if flags == _DEBIT_LIMIT | _CREDIT_LIMIT:
        raise InvalidTransaction("an account cannot carry both limit flags")
    if lots and (flags != AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS or breakage_account is None):
        raise InvalidTransaction(
            "a lot-tracked account needs DEBITS_MUST_NOT_EXCEED_CREDITS and a breakage account"
        )
    if not lots and breakage_account is not None:
        raise InvalidTransaction("only lot-tracked accounts have a breakage account")
    return Account(account_id, unit, flags, bool(lots), breakage_account)


def _check_ref(key: object) -> str:
    if not is_id(key, _MAX_KEY):
        raise InvalidTransaction(f"not a transaction key: {key!r}")
    return key


def _check_memo(memo: object) -> str | None:
    if memo is None:
        return None
    if not is_text(memo, _MAX_MEMO):
        raise InvalidTransaction(
            f"a memo is text of at most {_MAX_MEMO} characters, without NUL or lone surrogates"
        )
    return memo


# A posting flattened once for checks, fingerprint, insert and payload:
# (account, side "D"/"C", amount in minor units, unit, lot expiry in micros).
_Row = tuple[str, str, int, str, "int | None"]


def _rows(postings: Iterable[Posting]) -> tuple[_Row, ...]:
    debit = Side.DEBIT
    return tuple(
        [
            (
                p.account,
                "D" if p.side is debit else "C",
                p.amount.minor,
                p.amount.unit,
                None if p.expires_at is None else to_micros(p.expires_at),
            )
            for p in postings
        ]
    )


def _rows_and_json(postings: tuple[Posting, ...]) -> tuple[tuple[_Row, ...], str]:
    rows = _rows(postings)
    return rows, _postings_json(rows)


_Postings = Iterable[Posting]  # built once: a subscription at run time makes a new alias


def _check_postings(postings: object) -> tuple[tuple[Posting, ...], tuple[_Row, ...], str]:
    """The postings as a tuple, their flattened rows (as `_rows` makes them) and their
    JSON (as `_postings_json` writes it), in one pass that also checks the balance."""
    if isinstance(postings, Posting | str | bytes):
        raise InvalidTransaction("postings must be a sequence of Posting")
    try:
        items = tuple(cast(_Postings, postings))
    except TypeError:
        raise InvalidTransaction("postings must be a sequence of Posting") from None
    if not items:
        raise InvalidTransaction("a transaction needs at least one posting")
    if len(items) > _MAX_POSTINGS:
        raise InvalidTransaction(f"at most {_MAX_POSTINGS} postings in one transaction")
    debit = Side.DEBIT
    text = _json_string
    rows: list[_Row] = []
    parts: list[str] = []
    totals: dict[str, int] = {}
    for item in items:
        if type(item) is not Posting:
            raise InvalidTransaction(f"not a Posting: {item!r}")
        expiry = item.expires_at
        expires = None
        if expiry is not None:
            if expiry.tzinfo is None:
                raise InvalidTransaction("a lot expiry must be an aware datetime")
            expires = to_micros(expiry)
        # Exact types first: `Points.minor` and `.unit` are properties (Python calls).
        amount = item.amount
        kind = type(amount)
        if kind is Money:
            minor, unit = amount.minor, amount.currency  # type: ignore[union-attr]
        elif kind is Points:
            minor, unit = amount.value, POINTS_UNIT  # type: ignore[union-attr]
        else:
            minor, unit = amount.minor, amount.unit
        account = item.account
        if item.side is debit:
            rows.append((account, "D", minor, unit, expires))
            totals[unit] = totals.get(unit, 0) + minor
            side = "D"
        else:
            rows.append((account, "C", minor, unit, expires))
            totals[unit] = totals.get(unit, 0) - minor
            side = "C"
        parts.append(
            f'[{text(account)},"{side}",{minor},"{unit}",{"null" if expires is None else expires}]'
        )
    for total in totals.values():
        if total:
            detail = ", ".join(
                f"{unit} debits exceed credits by {total}"
                for unit, total in totals.items()
                if total
            )
            raise UnbalancedTransaction(f"transaction does not balance: {detail}")
    return items, tuple(rows), "[" + ",".join(parts) + "]"


# What `_write_many` takes for an account it did not read: unknown, so not the fast path.
_UNREAD: Final = (0, 0, 0, 0, True)

# A transfer of a batch, checked: key, postings, their rows, memo, postings JSON, fingerprint.
_Parsed = tuple[str, tuple[Posting, ...], tuple[_Row, ...], "str | None", str, bytes]


def _postings_json(rows: tuple[_Row, ...]) -> str:
    """The postings as a JSON array; used in the outbox payload and the fingerprint.

    Units are ISO codes or PTS and sides are D/C, so only account ids need escaping.
    """
    text = _json_string
    return (
        "["
        + ",".join(
            f'[{text(a)},"{s}",{m},"{u}",{"null" if e is None else e}]' for a, s, m, u, e in rows
        )
        + "]"
    )


def _payload(
    origin: str,
    key: str,
    kind: str,
    ref: str | None,
    at: int,
    expires_at: int | None,
    memo: str | None,
    postings_json: str,
) -> str:
    """The outbox record as compact JSON (built by hand: it runs on every write)."""
    text = _json_string
    return (
        f'{{"v":1,"origin":{text(origin)},"key":{text(key)},"kind":"{kind}",'
        f'"ref":{"null" if ref is None else text(ref)},"at":{at},'
        f'"expires_at":{"null" if expires_at is None else expires_at},'
        f'"memo":{"null" if memo is None else text(memo)},"postings":{postings_json}}}'
    )


def _fingerprint(
    kind: Kind, ref: str | None, postings_json: str, extra: object, memo: str | None
) -> bytes:
    # What a retry must repeat exactly; repr() of str/int/None/tuple and the
    # postings' JSON are unambiguous, so different content never collides.
    canonical = f"{kind._value_}\x1f{ref!r}\x1f{extra!r}\x1f{memo!r}\x1f{postings_json}"
    return hashlib.sha256(canonical.encode()).digest()[:16]


def _posting_from_row(row: PostingRow) -> Posting:
    expires = None if row.expires_at is None else from_micros(row.expires_at)
    return Posting(row.account, Side(row.side), amount_of(row.amount, row.unit), expires)


@storage_boundary
class Ledger:
    """A till's (or a hub's) ledger. Open with `Ledger.open` or `Ledger.in_memory`.

    All writes take a caller-made idempotency key: repeating a call with the
    same key and content returns the first result (or raises the first
    rejection again); the same key with other content raises
    `IdempotencyConflict`.
    """

    def __init__(self, store: LedgerStore, *, origin: str, clock: Clock | None = None) -> None:
        if not isinstance(origin, str) or not origin or not origin.isprintable():
            raise InvalidTransaction(
                f"origin must name the till or hub, e.g. 'S012-T3': {origin!r}"
            )
        self._store = store
        self.origin = origin
        self._clock = clock or _utcnow
        # The store's own lock: one lock for ledger and store, so no two
        # threads can ever take them in opposite orders.
        self._lock = store.lock
        self._batch_depth = 0
        self._swept = False  # expired holds already voided in this atomic group
        self._appended: str | None = None  # the key whose journal row this write appended
        self._moment: tuple[int, datetime] | None = None  # the write's clock: micros, datetime
        # The earliest expiry of an open hold, as this ledger knows it (None:
        # unknown, read it). A write sweeps expired holds only once the clock
        # passes it, instead of asking on every write; a hold another process
        # adds may wait for that process's writes or `expire()` (it keeps its
        # balance reserved a little longer, never less).
        self._hold_watermark: int | None = None
        self._accounts: dict[str, Account] = {}
        self._flag_bits: dict[str, int] = {}  # int(flags) per cached account
        #: How expired lots are booked: BREAKAGE here, MIRROR at a till whose
        #: points the hub keeps (the hub books their breakage, once).
        self.breakage_kind = Kind.BREAKAGE

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        origin: str,
        clock: Clock | None = None,
        synchronous: Synchronous = "FULL",
        create: bool = False,
    ) -> Ledger:
        """Open (creating or migrating) the ledger in the SQLite file at `path`.

        A path that does not exist becomes a new file. An existing file that is
        not a till's (empty, not SQLite, another program's tables) is refused
        with `NotATillFile`; `create=True` makes an existing empty file a new one.

        Args:
            path: the file; its directory must exist.
            origin: who writes here, e.g. the till id ``S012-T3``; it is stamped
                on every outbox record.
            clock: returns the current aware UTC time (tests inject one).
            synchronous: SQLite's durability level; FULL unless you know why not.
        """
        store = SQLiteStore(path, synchronous=synchronous, create=create)
        return cls(store, origin=origin, clock=clock)

    @classmethod
    def in_memory(cls, *, origin: str = "TEST", clock: Clock | None = None) -> Ledger:
        """A throwaway ledger for tests."""
        return cls(SQLiteStore(":memory:"), origin=origin, clock=clock)

    @property
    def lock(self) -> AbstractContextManager[bool]:
        """The one lock of this ledger's file; hold it to read several things consistently."""
        return self._lock

    @property
    def store(self) -> LedgerStore:
        """The storage under this ledger."""
        return self._store

    def close(self) -> None:
        """Close the underlying store."""
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _now(self) -> int:
        return to_micros(self._clock())

    def _at(self, now: int) -> datetime:
        """`now` as a datetime: the write's own clock reading when that is UTC (the
        same value from_micros makes, without its timedelta arithmetic)."""
        moment = self._moment
        if moment is not None and moment[0] == now:
            return moment[1]
        return from_micros(now)

    # -- accounts ----------------------------------------------------------

    def open_account(
        self,
        account_id: str,
        unit: str,
        *,
        flags: AccountFlags = AccountFlags.NONE,
        lots: bool = False,
        breakage_account: str | None = None,
    ) -> Account:
        """Create an account, or return it if it exists with the same description.

        Args:
            account_id: a readable id, e.g. ``member:M-1:points``.
            unit: an ISO 4217 code or ``PTS``.
            flags: limits the account enforces.
            lots: credits form lots that are spent oldest first and expire;
                needs DEBITS_MUST_NOT_EXCEED_CREDITS and a breakage account.
            breakage_account: where expired lots go (same unit).

        Raises:
            AccountConflict: the id exists with another description.
            InvalidTransaction: the description is inconsistent.
            UnknownAccount: the breakage account does not exist.
        """
        account = _describe_account(account_id, unit, flags, lots, breakage_account)
        self.open_accounts([account])
        return account

    def open_accounts(self, accounts: Iterable[Account]) -> int:
        """Create many accounts in one commit (enrolment, migration from another system).

        Accounts that exist with the same description are left alone, so the
        call can be repeated; any that exists with another description
        fails the whole call.

        Returns:
            How many accounts were created.

        Raises:
            AccountConflict / InvalidTransaction / UnknownAccount: as `open_account`,
                with nothing created.
        """
        wanted: dict[str, Account] = {}
        for account in accounts:
            if not isinstance(account, Account):
                raise InvalidTransaction(f"not an Account: {account!r}")
            checked = _describe_account(
                account.id, account.unit, account.flags, account.lots, account.breakage_account
            )
            if wanted.setdefault(checked.id, checked) != checked:
                raise AccountConflict(f"account {checked.id} given twice, differently")
        with self._lock, self._store.write():
            ids = list(wanted)
            existing: dict[str, AccountRow] = {}
            for start in range(0, len(ids), 500):
                existing.update(self._store.get_accounts(ids[start : start + 500]))
            for account_id, row in existing.items():
                if row.account != wanted[account_id]:
                    raise AccountConflict(f"account {account_id} exists as {row.account}")
            new = [account for account_id, account in wanted.items() if account_id not in existing]
            for account in new:
                target = account.breakage_account
                if target is None:
                    continue
                unit = wanted[target].unit if target in wanted else None
                if unit is None:
                    found = self._store.get_account(target)
                    if found is None:
                        raise UnknownAccount(f"no breakage account {target}")
                    unit = found.account.unit
                if unit != account.unit:
                    raise CurrencyMismatch(f"breakage account {target} is in {unit}")
            if new:
                self._store.insert_accounts(new, self._now())
        return len(new)

    def account(self, account_id: str) -> Account:
        """Return an account's description.

        Raises:
            UnknownAccount: no such account.
        """
        cached = self._accounts.get(account_id)
        if cached is not None:
            return cached
        with self._lock:
            row = self._store.get_account(account_id)
        if row is None:
            raise UnknownAccount(f"no account {account_id!r}")
        self._remember_account(row.account)
        return row.account

    def balance(self, account_id: str) -> Balance:
        """Return the posted, pending and available balance of an account.

        Raises:
            UnknownAccount: no such account.
        """
        with self._lock:
            row = self._store.get_account(account_id)
            if row is None:
                raise UnknownAccount(f"no account {account_id!r}")
            return self._balance(row, self._now())

    def balances_of(self, account_ids: Sequence[str]) -> list[Balance]:
        """The balances of some accounts, as `balance` gives each, in one read.

        Raises:
            UnknownAccount: one of them does not exist.
            WrongType: `account_ids` is one id (a str), not a sequence of them.
        """
        if isinstance(account_ids, str):
            raise WrongType(f"balances_of takes a sequence of account ids, not {account_ids!r}")
        ids = list(dict.fromkeys(account_ids))
        with self._lock:
            now = self._now()
            found = self._store.accounts_with_expired(ids, now)
            missing = [account_id for account_id in ids if account_id not in found]
            if missing:
                raise UnknownAccount(f"no account {missing[0]!r}")
            rows = (found[account_id] for account_id in ids)
            return [self._balance(row, now, expired) for row, expired in rows]

    def available_of(self, account_ids: Sequence[str]) -> dict[str, int]:
        """What each account may spend now, in minor units or points: the integer of
        `balance(id).available`, for many accounts in one read and no objects.

        Raises:
            UnknownAccount: one of them does not exist.
            WrongType: `account_ids` is one id (a str), not a sequence of them.
        """
        if isinstance(account_ids, str):
            raise WrongType(f"available_of takes a sequence of account ids, not {account_ids!r}")
        with self._lock:
            rows = self._store.available_columns(account_ids, self._now())
        found: dict[str, int] = {}
        for account_id, flags, dp, cp, dpe, cpe, expired in rows:
            if flags == _CREDIT_LIMIT:  # debit-normal, as `_balance` shows it
                found[account_id] = dp - cp - cpe
            else:
                unreserved = cp - dp - dpe
                # Expired, unreserved lots are not spendable (see `_balance`).
                expired = max(0, min(expired, unreserved)) if expired else 0
                found[account_id] = unreserved - expired
        if len(found) < len(account_ids):
            missing = [account_id for account_id in account_ids if account_id not in found]
            if missing:
                raise UnknownAccount(f"no account {missing[0]!r}")
        return found

    def _balance(self, row: AccountRow, now: int, expired_by_now: int | None = None) -> Balance:
        expired = 0
        if row.account.lots:
            # What expired and no open hold reserved is not spendable, even
            # before a write books it to breakage (as `_expire_lots` would).
            unreserved = row.credits_posted - row.debits_posted - row.debits_pending
            if expired_by_now is None:
                expired_by_now = self._store.expired_remaining(row.account.id, now)
            expired = max(0, min(expired_by_now, unreserved))
        return Balance(
            row.account.id,
            row.account.unit,
            row.debits_posted,
            row.credits_posted,
            row.debits_pending,
            row.credits_pending,
            debit_normal=row.account.flags == _CREDIT_LIMIT,
            expired=expired,
        )

    def balances(self) -> list[Balance]:
        """Every account's balance, by account id."""
        with self._lock:
            now = self._now()
            return [self._balance(row, now) for row in self._store.all_accounts()]

    # -- writes ------------------------------------------------------------

    def transfer(
        self, key: str, postings: Iterable[Posting], *, memo: str | None = None
    ) -> Transaction:
        """Post a balanced set of postings at once.

        Args:
            key: the caller's idempotency key (a receipt reference, say).
            postings: debits and credits that balance per unit.
            memo: free text for people reading the journal.

        Returns:
            The committed transaction (the first one, on a repeat).

        Raises:
            InvalidTransaction: malformed or unbalanced postings, bad key.
            UnknownAccount / CurrencyMismatch: a posting does not fit its account.
            InsufficientFunds / LimitExceeded: an account limit would be broken
                (remembered under `key`).
            IdempotencyConflict: `key` was used for something else.
        """
        key = _check_key(key)
        items, rows, postings_json = _check_postings(postings)
        if memo is not None:
            memo = _check_memo(memo)
        fingerprint = _fingerprint(Kind.TRANSFER, None, postings_json, None, memo)

        def apply(now: int) -> Transaction:
            return self._movement(
                now, key, fingerprint, Kind.TRANSFER, items, rows, postings_json, memo=memo
            )

        return self._write(key, fingerprint, apply, lookup=False)

    def transfer_many(
        self, entries: Iterable[tuple[str, Iterable[Posting], str | None]]
    ) -> list[Transaction]:
        """Post several transfers in order as one write, with one SQL statement per table.

        The same as ``transfer(key, postings, memo=memo)`` for each entry in turn
        inside one `atomic()` block: the same journal rows and seqs, postings,
        balances, lots and outbox records, the same results and the same errors.
        Each entry's limits are checked as if the entries before it were written,
        so an earlier credit can pay for a later debit but not the other way round.
        A debit of a lot-tracked account spends its lots oldest first, lots made
        by an earlier entry of the batch included. A batch that would spend such
        a lot, or that meets a used key, expired lots, a rejection or a bad entry,
        is written entry by entry by `transfer` instead, with the same outcome (a
        till's redemption comes before its earning, so a sale is not such a batch).
        Entries written together share one ``created_at``.

        Args:
            entries: (key, postings, memo) per transfer; memo may be None.

        Returns:
            The committed transactions in entry order (the first ones, on a repeat).

        Raises:
            As `transfer`, for the first entry that fails: the batch then rolls back
            as an `atomic()` block does (with the caller's block, inside one), and a
            rejection is remembered under that entry's key, which it names as `key`.
        """
        with self.atomic():
            parsed: list[_Parsed] = []
            failure: LedgerError | None = None
            for entry in entries:
                try:
                    key, postings, memo = entry
                except (TypeError, ValueError):
                    failure = InvalidTransaction(f"an entry is (key, postings, memo): {entry!r}")
                    break
                try:
                    key = _check_key(key)
                    items, rows, postings_json = _check_postings(postings)
                    memo = _check_memo(memo)
                except LedgerError as error:
                    failure = error
                    break
                fingerprint = _fingerprint(Kind.TRANSFER, None, postings_json, None, memo)
                parsed.append((key, items, rows, memo, postings_json, fingerprint))
            if failure is None:
                written = self._write_many(parsed)
                if written is not None:
                    return written
            # What the batch does not write alone, `transfer` writes entry by entry;
            # a bad entry fails in its turn, after the entries before it.
            done = [self.transfer(key, items, memo=memo) for key, items, _, memo, _, _ in parsed]
            if failure is not None:
                raise failure
            return done

    def _write_many(self, parsed: list[_Parsed]) -> list[Transaction] | None:
        """Write checked transfers as `_movement` would one by one, with a statement per
        table; None, with nothing written, when they must go one by one."""
        if not parsed:
            return []
        if len({entry[0] for entry in parsed}) != len(parsed):
            return None  # a key twice: the second replays the first, or conflicts
        accounts = self._accounts
        names = list({row[0]: None for entry in parsed for row in entry[2]})
        missing = [name for name in names if name not in accounts]
        if missing:
            try:
                self._describe(missing)
            except UnknownAccount:
                return None
        # (debits, credits) posted per account, per entry, in posting order.
        moves: list[dict[str, list[int]]] = []
        debited: set[str] = set()
        credited: set[str] = set()
        for entry in parsed:
            deltas: dict[str, list[int]] = {}
            for account_id, side, minor, unit, _ in entry[2]:
                if accounts[account_id].unit != unit:
                    return None
                delta = deltas.get(account_id)
                if delta is None:
                    delta = deltas[account_id] = [0, 0]
                if side == "C":
                    delta[1] += minor
                    credited.add(account_id)
                else:
                    delta[0] += minor
                    debited.add(account_id)
            moves.append(deltas)

        store = self._store
        now = self._now()
        if not self._swept:  # as `_write_once` does on a group's first write
            self._sweep_holds(now)
            self._swept = True
        # Only accounts the batch moves towards their limits are read (a lot-tracked
        # one with whether it has expired lots); the others' columns only grow, and
        # the update's guard refuses a sum past BALANCE_LIMIT as `transfer`'s does.
        flag_bits = self._flag_bits
        watched = [
            name
            for name in names
            if (flag_bits[name] & _DEBIT_LIMIT and name in debited)
            or (flag_bits[name] & _CREDIT_LIMIT and name in credited)
        ]
        read = store.balances_and_expiry(watched, now) if watched else {}
        balances = {name: list(columns[:4]) for name, columns in read.items()}
        # Each entry's limits on top of the entries before it: what the CHECK
        # constraints would decide one transfer at a time.
        earned: set[str] = set()  # lot accounts an entry of the batch made a lot in
        short: dict[str, int] = {}  # lot accounts' points to take from their open lots
        for deltas in moves:
            for account_id, (debit, credit) in deltas.items():
                balance = balances.get(account_id)
                if balance is not None:
                    balance[0] += debit
                    balance[1] += credit
                    if flag_bits[account_id] & _DEBIT_LIMIT:
                        if debit and balance[0] + balance[2] > balance[1]:
                            return None
                    elif credit and balance[1] + balance[3] > balance[0]:
                        return None
                if not accounts[account_id].lots:
                    continue
                # A debit would book expired lots first, or may spend a lot this
                # batch made: `transfer` does both in its order.
                if debit and (read.get(account_id, _UNREAD)[4] or account_id in earned):
                    return None
                if credit > debit:
                    earned.add(account_id)
                elif debit > credit:
                    short[account_id] = short.get(account_id, 0) + debit - credit

        # Every debit takes the oldest open lots the debits before it left.
        queues = {
            account_id: [
                [lot.id, lot.remaining] for lot in store.lots_to_cover(account_id, n, None)
            ]
            for account_id, n in short.items()
        }
        taken: list[tuple[int, int, int]] = []  # (entry index, lot id, points)
        made: list[tuple[int, str, int, int | None]] = []  # (entry index, account, points, expiry)
        for index, deltas in enumerate(moves):
            for account_id, (debit, credit) in deltas.items():
                if not accounts[account_id].lots:
                    continue
                if credit > debit:
                    expiries = [
                        expires
                        for account, side, _, _, expires in parsed[index][2]
                        if account == account_id and side == "C" and expires is not None
                    ]
                    expiry = min(expiries) if expiries else None
                    made.append((index, account_id, credit - debit, expiry))
                    continue
                need = debit - credit
                queue = queues.get(account_id, [])
                while need and queue:
                    lot = queue[0]
                    take = min(lot[1], need)
                    taken.append((index, lot[0], take))
                    need -= take
                    lot[1] -= take
                    if not lot[1]:
                        del queue[0]
                if need:
                    raise LedgerCorrupted(f"{account_id}: lots hold less than its balance")

        kind = Kind.TRANSFER._value_
        first = store.insert_entries([(e[0], e[5], kind, now, e[3]) for e in parsed])
        if first is None:
            return None  # a key was used before: `transfer` replays it
        totals: dict[str, tuple[int, int, int, int]] = {}
        for deltas in moves:
            for account_id, (debit, credit) in deltas.items():
                had = totals.get(account_id, (0, 0, 0, 0))
                totals[account_id] = (had[0] + debit, had[1] + credit, 0, 0)
        try:
            # One statement (a row per account costs fewer instructions, more statements).
            store.add_to_balances_at_once(totals)
        except LimitBroken:
            raise LedgerCorrupted(f"a limit broke that the checks passed: {parsed[0][0]}") from None
        store.insert_posting_rows(
            [
                (first + index, idx, account, side, minor, unit, expires)
                for index, entry in enumerate(parsed)
                for idx, (account, side, minor, unit, expires) in enumerate(entry[2])
            ]
        )
        if taken:
            store.move_lots([(first + index, lot, -points) for index, lot, points in taken])
        if made:
            store.insert_lots([(a, first + index, n, now, e) for index, a, n, e in made])
        origin = self.origin
        store.append_outbox_rows(
            [
                (first + index, now, _payload(origin, key, kind, None, now, None, memo, text))
                for index, (key, _, _, memo, text, _) in enumerate(parsed)
            ]
        )
        at = from_micros(now)
        return [
            Transaction(first + index, key, Kind.TRANSFER, items, at, None, None, memo)
            for index, (key, items, _, memo, _, _) in enumerate(parsed)
        ]

    def mirror(
        self, key: str, postings: Iterable[Posting], *, memo: str | None = None
    ) -> Transaction:
        """Post a copy of what the book of record holds (kind MIRROR), as `transfer` does.

        A till that spends chain-wide accounts brings its local figures to
        the hub's (or a card's to its chip's) this way; the record goes to
        the outbox like any other, and the hub does not apply it again.
        """
        key = _check_key(key)
        items, rows, postings_json = _check_postings(postings)
        memo = _check_memo(memo)
        fingerprint = _fingerprint(Kind.MIRROR, None, postings_json, None, memo)

        def apply(now: int) -> Transaction:
            return self._movement(
                now, key, fingerprint, Kind.MIRROR, items, rows, postings_json, memo=memo
            )

        return self._write(key, fingerprint, apply, lookup=False)

    def hold(
        self,
        key: str,
        postings: Iterable[Posting],
        *,
        timeout: timedelta,
        memo: str | None = None,
        durable: bool = True,
    ) -> Transaction:
        """Reserve a balanced set of postings until posted, voided or timed out.

        A hold moves nothing; it takes the debits out of the accounts'
        available balance at once. After `timeout` the ledger voids it
        (kind EXPIRY) on its next write or `expire()` call.

        With ``durable=False`` the hold's commit skips the fsync: it survives
        a killed process but not a power cut. Losing a hold can only free
        balance, never move value, so a till may use it for the holds of a
        checkout session whose completion is durable.

        Raises:
            As `transfer`; InvalidTransaction for a non-positive timeout.
        """
        key = _check_key(key)
        items, rows, postings_json = _check_postings(postings)
        memo = _check_memo(memo)
        if not isinstance(timeout, timedelta) or timeout <= timedelta(0):
            raise InvalidTransaction(f"a hold needs a positive timeout, not {timeout!r}")
        timeout_us = timeout // timedelta(microseconds=1)
        fingerprint = _fingerprint(Kind.HOLD, None, postings_json, timeout_us, memo)

        def apply(now: int) -> Transaction:
            tx = self._movement(
                now,
                key,
                fingerprint,
                Kind.HOLD,
                items,
                rows,
                postings_json,
                pending=True,
                expires_at=now + timeout_us,
                memo=memo,
            )
            self._store.add_open_hold(tx.seq, now + timeout_us)
            if self._hold_watermark is not None:
                self._hold_watermark = min(self._hold_watermark, now + timeout_us)
            return tx

        if durable:
            return self._write(key, fingerprint, apply, lookup=False)
        with self._store.relaxed():
            return self._write(key, fingerprint, apply, lookup=False)

    def post(
        self,
        key: str,
        hold_key: str,
        postings: Iterable[Posting] | None = None,
        *,
        amount: Amount | None = None,
        memo: str | None = None,
    ) -> Transaction:
        """Resolve a hold by moving all of it, or less; the rest is released.

        Args:
            key: this post's idempotency key.
            hold_key: the key the hold was taken with.
            postings: what to move, each at most the held amount on the same
                account and side; balanced. None moves the whole hold.
            amount: shorthand for a hold of one debit and one credit: move
                this much of it.

        Raises:
            UnknownTransaction: no hold under `hold_key`.
            HoldResolved / HoldExpired / PostExceedsHold: remembered under `key`.
        """
        key = _check_key(key)
        hold_key = _check_ref(hold_key)
        memo = _check_memo(memo)
        if postings is not None and amount is not None:
            raise InvalidTransaction("give postings or amount, not both")
        items, _, postings_json = (
            (None, (), "[]") if postings is None else _check_postings(postings)
        )
        if amount is not None and (not isinstance(amount, Money | Points) or amount.minor <= 0):
            raise InvalidAmount(f"post amount must be positive Money or Points: {amount!r}")
        extra = None if amount is None else (amount.minor, amount.unit)
        fingerprint = _fingerprint(Kind.POST, hold_key, postings_json, extra, memo)

        def apply(now: int) -> Transaction:
            hold, held = self._open_hold(hold_key)
            moved = self._post_postings(held, items, amount)
            return self._resolve(now, key, fingerprint, Kind.POST, hold, held, moved, memo)

        return self._write(key, fingerprint, apply)

    def void(self, key: str, hold_key: str, *, memo: str | None = None) -> Transaction:
        """Resolve a hold by releasing all of it.

        Raises:
            UnknownTransaction: no hold under `hold_key`.
            HoldResolved / HoldExpired: remembered under `key`.
        """
        key = _check_key(key)
        hold_key = _check_ref(hold_key)
        memo = _check_memo(memo)
        fingerprint = _fingerprint(Kind.VOID, hold_key, "[]", None, memo)

        def apply(now: int) -> Transaction:
            hold, held = self._open_hold(hold_key)
            return self._resolve(now, key, fingerprint, Kind.VOID, hold, held, (), memo)

        return self._write(key, fingerprint, apply)

    def reverse(self, key: str, original_key: str, *, memo: str | None = None) -> Transaction:
        """Undo a posted transfer, post or breakage with a new, opposite entry.

        Points a reversed redemption gave back return to the lots they came
        from; points a reversed earning created are taken from those lots first.

        Raises:
            UnknownTransaction: no committed entry under `original_key`.
            NotReversible: reversed already, or a hold/void/expiry/reversal
                (remembered under `key`).
            InsufficientFunds: the money or points were spent meanwhile.
        """
        key = _check_key(key)
        original_key = _check_ref(original_key)
        memo = _check_memo(memo)
        fingerprint = _fingerprint(Kind.REVERSAL, original_key, "[]", None, memo)

        def apply(now: int) -> Transaction:
            original = self._store.find_tx(original_key)
            if original is None or original.status != "committed":
                raise UnknownTransaction(f"no committed transaction {original_key!r}")
            if original.kind not in _REVERSIBLE:
                raise NotReversible(
                    f"{original_key} is a {original.kind}: void holds, reverse posts"
                )
            if self._store.is_reversed(original.seq):
                raise NotReversible(f"{original_key} was reversed already")
            flipped = tuple(
                _posting_from_row(row).flipped() for row in self._store.postings_of(original.seq)
            )
            return self._movement(
                now,
                key,
                fingerprint,
                Kind.REVERSAL,
                flipped,
                *_rows_and_json(flipped),
                ref_seq=original.seq,
                reverses=original.seq,
                memo=memo,
                lots_from=original.seq,
            )

        return self._write(key, fingerprint, apply)

    def expire(
        self, now: datetime | None = None, *, account: str | None = None
    ) -> list[Transaction]:
        """Void holds that timed out and move expired points lots to breakage.

        Run it on a schedule (the till does on start and daily); writes also
        release timed-out holds and expired lots they touch on their own.
        Booking is idempotent: what expired is booked once, whenever this runs.

        Args:
            now: the moment to expire at (default: the ledger's clock).
            account: only this account's lots (timed-out holds are released
                in any case); nothing is written when nothing expired.

        Returns:
            The EXPIRY and BREAKAGE entries made.
        """
        moment = to_micros(now) if now is not None else self._now()
        with self._lock:
            if (
                account is not None
                and not self._store.expired_lot_accounts(moment, account)
                and not self._store.expired_holds(moment)
            ):
                return []
            with self._store.write():
                made = self._expire_holds(moment)
                for name in self._store.expired_lot_accounts(moment, account):
                    tx = self._expire_lots(name, moment)
                    if tx is not None:
                        made.append(tx)
            return made

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Group writes into one durable commit: all of them or none.

        A rejection inside rolls the whole group back, and is then
        remembered under the rejected call's key.
        """
        with self._lock:
            self._batch_depth += 1
            try:
                with self._store.write():
                    yield
            except BaseException as error:
                # Accounts opened inside the group were rolled back with it.
                self._accounts.clear()
                self._flag_bits.clear()
                self._hold_watermark = None
                if isinstance(error, Rejection) and self._batch_depth == 1:
                    self._remember(error)
                raise
            finally:
                self._batch_depth -= 1
                if not self._batch_depth:
                    self._swept = False

    # -- reads -------------------------------------------------------------

    def transaction(self, key: str) -> Transaction | None:
        """The committed entry under `key`, or None (also for a rejected key)."""
        with self._lock:
            found = self._store.find_tx(key)
            if found is None or found.status != "committed":
                return None
            return self._load(found)

    def history(
        self, account_id: str, *, limit: int = 100, before_seq: int | None = None
    ) -> list[Entry]:
        """An account's postings, newest first, `limit` at a time.

        Pass the last entry's `seq` as `before_seq` for the next page.
        """
        self.account(account_id)
        with self._lock:
            rows = self._store.history(account_id, limit, before_seq)
        return [
            Entry(
                tx.seq,
                tx.key,
                Kind(tx.kind),
                Side(p.side),
                amount_of(p.amount, p.unit),
                p.pending,
                from_micros(tx.created_at),
                tx.memo,
            )
            for tx, p in rows
        ]

    def next_expiry(self, account_id: str) -> tuple[int, datetime] | None:
        """The units of a lot-tracked account that expire first, and when (after now)."""
        self.account(account_id)
        with self._lock:
            found = self._store.next_expiry(account_id, self._now())
        return None if found is None else (found[1], from_micros(found[0]))

    def lots(self, account_id: str) -> list[Lot]:
        """Every lot of a lot-tracked account, oldest first (spent ones too)."""
        self.account(account_id)
        with self._lock:
            rows = self._store.lots_of(account_id)
        return [
            Lot(
                r.id,
                r.account,
                r.amount,
                r.remaining,
                from_micros(r.earned_at),
                None if r.expires_at is None else from_micros(r.expires_at),
            )
            for r in rows
        ]

    def open_holds(self) -> list[Transaction]:
        """Holds neither posted, voided nor timed out yet, oldest first."""
        with self._lock:
            found = [self._store.get_tx(seq) for seq in sorted(self._store.open_holds())]
            return [self._load(tx) for tx in found if tx is not None]

    def outbox(self, *, after_seq: int = 0, limit: int = 500) -> list[OutboxRecord]:
        """Outbox records after `after_seq`, oldest first, for the sync loop."""
        with self._lock:
            rows = self._store.outbox(after_seq, limit)
        return [OutboxRecord(seq, tx, from_micros(at), payload) for seq, tx, at, payload in rows]

    def ack_outbox(self, upto_seq: int) -> None:
        """Drop outbox records up to `upto_seq`: the hub has them durably."""
        with self._lock, self._store.write():
            self._store.ack_outbox(upto_seq)

    def outbox_status(self) -> OutboxStatus:
        """How many records wait for the hub and how old the oldest is."""
        with self._lock:
            length, oldest, last, acked = self._store.outbox_status()
        return OutboxStatus(length, None if oldest is None else from_micros(oldest), last, acked)

    def check(self) -> None:
        """Fold the journal and compare it with the stored state.

        Checks: stored balances equal the fold of the postings; per unit the
        balances of all accounts sum to zero, posted and pending; no limit is
        broken; every lot-tracked account's open lots add up to its posted
        balance; every open hold is unresolved; every committed entry is in
        the outbox or acknowledged by the hub.

        Raises:
            LedgerCorrupted: listing every disagreement found.
        """
        problems: list[str] = []
        with self._lock:
            # Damaged pages first: SQLite's own check reads every page of the file.
            problems.extend(self._store.page_problems())
            if problems:
                raise LedgerCorrupted("; ".join(problems))
            rows = {row.account.id: row for row in self._store.all_accounts()}
            sums: dict[str, list[int]] = {}
            for account_id, dp, cp, dpe, cpe in self._store.fold_journal():
                row = rows[account_id]
                stored = (
                    row.debits_posted,
                    row.credits_posted,
                    row.debits_pending,
                    row.credits_pending,
                )
                if stored != (dp, cp, dpe, cpe):
                    problems.append(
                        f"{account_id}: stored {stored} but journal folds to {(dp, cp, dpe, cpe)}"
                    )
                unit_sum = sums.setdefault(row.account.unit, [0, 0])
                unit_sum[0] += cp - dp
                unit_sum[1] += cpe - dpe
                flags = row.account.flags
                if flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and dp + dpe > cp:
                    problems.append(f"{account_id}: debits exceed credits")
                if flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and cp + cpe > dp:
                    problems.append(f"{account_id}: credits exceed debits")
                if row.account.lots:
                    remaining = sum(lot.remaining for lot in self._store.open_lots(account_id))
                    if remaining != cp - dp:
                        problems.append(
                            f"{account_id}: lots hold {remaining} but balance is {cp - dp}"
                        )
            for unit, (posted, pending) in sums.items():
                if posted or pending:
                    problems.append(f"{unit}: balances sum to {posted} posted, {pending} pending")
            for seq in self._store.open_holds():
                if self._store.is_resolved(seq):
                    problems.append(f"hold #{seq} is open but resolved")
            missing = self._store.committed_without_outbox()
            if missing:
                problems.append(f"{missing} committed entries are missing from the outbox")
            problems.extend(self._store.foreign_key_problems())
        if problems:
            raise LedgerCorrupted("; ".join(problems))

    # -- the write path ----------------------------------------------------

    def _write(
        self,
        key: str,
        fingerprint: bytes,
        apply: Callable[[int], Transaction],
        *,
        lookup: bool = True,
    ) -> Transaction:
        try:
            return self._write_once(key, fingerprint, apply, lookup)
        except BaseException:
            self._hold_watermark = None  # the write rolled back: holds may be as before
            raise

    def _write_once(
        self, key: str, fingerprint: bytes, apply: Callable[[int], Transaction], lookup: bool
    ) -> Transaction:
        """One write under `key`. With ``lookup=False`` the key is not read first:
        the journal insert finds it taken (`_KeyTaken`), and so does any error
        raised before that insert, since a retry must see its first result."""
        rejection: Rejection | None = None
        with self._lock, self._store.write():
            if lookup:
                found = self._store.find_tx(key)
                if found is not None:
                    return self._replay(found, fingerprint)
            at = self._clock()
            now = to_micros(at)
            self._moment = (now, at) if at.tzinfo is UTC else None
            if not self._swept:  # once per commit is enough: a group takes microseconds
                self._sweep_holds(now)
                self._swept = self._batch_depth > 0
            self._appended = None
            try:
                return apply(now)
            except _KeyTaken:
                pass
            except Rejection as error:
                if lookup or not self._key_taken(key):
                    # Checks raise before anything of this call is written (or
                    # undo it), so the rejection can be stored in the same commit.
                    # Inside atomic() the whole group rolls back and atomic()
                    # stores it after.
                    error.key = key
                    error.ledger_fingerprint = fingerprint  # type: ignore[attr-defined]
                    if self._batch_depth:
                        raise
                    self._insert_rejection(key, fingerprint, error, now)
                    rejection = error
            except LedgerError:
                if lookup or not self._key_taken(key):
                    raise
            if rejection is None:  # the key was used before: its first result
                found = self._store.find_tx(key)
                assert found is not None
                return self._replay(found, fingerprint)
        raise rejection

    def _key_taken(self, key: str) -> bool:
        """Whether `key` was used by an earlier write (not the one that just failed)."""
        return self._appended != key and self._store.find_tx(key) is not None

    def _remember(self, rejection: Rejection) -> None:
        key = rejection.key
        fingerprint = getattr(rejection, "ledger_fingerprint", None)  # a new rejection only
        if key is None or fingerprint is None:
            return
        with self._store.write():
            if self._store.find_tx(key) is None:
                self._insert_rejection(key, fingerprint, rejection, self._now())

    def _insert_rejection(self, key: str, fingerprint: bytes, error: Rejection, now: int) -> None:
        self._store.insert_tx(
            NewTx(
                key=key,
                fingerprint=fingerprint,
                kind="rejected",
                status="rejected",
                created_at=now,
                error_code=error.code,
                error_message=str(error),
            )
        )

    def _replay(self, found: StoredTx, fingerprint: bytes) -> Transaction:
        if found.fingerprint != fingerprint:
            raise IdempotencyConflict(f"key {found.key!r} was used before with other content")
        if found.status == "rejected":
            replayed = REJECTIONS.get(found.error_code or "", Rejection)(
                found.error_message or "rejected"
            )
            replayed.key = found.key
            raise replayed
        return self._load(found)

    def _load(self, found: StoredTx) -> Transaction:
        ref = None
        if found.ref_seq is not None:
            ref_tx = self._store.get_tx(found.ref_seq)
            ref = None if ref_tx is None else ref_tx.key
        return Transaction(
            found.seq,
            found.key,
            Kind(found.kind),
            tuple(_posting_from_row(row) for row in self._store.postings_of(found.seq)),
            from_micros(found.created_at),
            ref,
            None if found.expires_at is None else from_micros(found.expires_at),
            found.memo,
        )

    def _open_hold(self, hold_key: str) -> tuple[StoredTx, list[PostingRow]]:
        hold = self._store.find_tx(hold_key)
        if hold is None or hold.status != "committed" or hold.kind != Kind.HOLD.value:
            raise UnknownTransaction(f"no hold {hold_key!r}")
        return hold, self._store.postings_of(hold.seq)

    def _post_postings(
        self, held: list[PostingRow], wanted: tuple[Posting, ...] | None, amount: Amount | None
    ) -> tuple[Posting, ...]:
        full = tuple(_posting_from_row(row) for row in held)
        if wanted is None and amount is None:
            return full
        if amount is not None:
            if len(full) != 2 or {p.side for p in full} != {Side.DEBIT, Side.CREDIT}:
                raise InvalidTransaction("amount= needs a hold of one debit and one credit")
            if amount.unit != full[0].unit:
                raise CurrencyMismatch(f"hold is in {full[0].unit}, not {amount.unit}")
            if amount.minor > full[0].amount.minor:
                raise PostExceedsHold(f"post {amount} exceeds hold {full[0].amount}")
            return tuple(Posting(p.account, p.side, amount, p.expires_at) for p in full)
        assert wanted is not None
        room: dict[tuple[str, Side, str], int] = {}
        expiry: dict[tuple[str, Side, str], datetime | None] = {}
        for p in full:
            slot = (p.account, p.side, p.unit)
            room[slot] = room.get(slot, 0) + p.amount.minor
            expiry.setdefault(slot, p.expires_at)
        moved = []
        for p in wanted:
            slot = (p.account, p.side, p.unit)
            if room.get(slot, 0) < p.amount.minor:
                raise PostExceedsHold(
                    f"{p.side.value} {p.amount} on {p.account} exceeds what the hold reserved"
                )
            room[slot] -= p.amount.minor
            moved.append(Posting(p.account, p.side, p.amount, p.expires_at or expiry[slot]))
        return tuple(moved)

    def _resolve(
        self,
        now: int,
        key: str,
        fingerprint: bytes,
        kind: Kind,
        hold: StoredTx,
        held: list[PostingRow],
        moved: tuple[Posting, ...],
        memo: str | None,
    ) -> Transaction:
        if self._store.is_resolved(hold.seq):
            expired = self._store.find_tx(_EXPIRY_PREFIX + hold.key)
            if expired is not None:
                raise HoldExpired(f"hold {hold.key} timed out and was released")
            raise HoldResolved(f"hold {hold.key} was posted or voided already")
        tx = self._movement(
            now,
            key,
            fingerprint,
            kind,
            moved,
            *_rows_and_json(moved),
            ref_seq=hold.seq,
            resolves=hold.seq,
            release=held,
            memo=memo,
        )
        self._store.remove_open_hold(hold.seq)
        return tx

    def _sweep_holds(self, now: int) -> None:
        mark = self._hold_watermark
        if mark is None or now >= mark:
            self._expire_holds(now)
            self._hold_watermark = self._store.next_hold_expiry()

    def _expire_holds(self, now: int) -> list[Transaction]:
        made = []
        for seq in self._store.expired_holds(now):
            hold = self._store.get_tx(seq)
            assert hold is not None
            key = _EXPIRY_PREFIX + hold.key
            fingerprint = _fingerprint(Kind.EXPIRY, hold.key, "[]", None, None)
            made.append(
                self._movement(
                    now,
                    key,
                    fingerprint,
                    Kind.EXPIRY,
                    (),
                    (),
                    "[]",
                    ref_seq=seq,
                    resolves=seq,
                    release=self._store.postings_of(seq),
                )
            )
            self._store.remove_open_hold(seq)
        return made

    def _expire_lots(self, account_id: str, now: int) -> Transaction | None:
        row = self._store.get_account(account_id)
        assert row is not None
        assert row.account.breakage_account is not None
        expired = self._store.expired_remaining(account_id, now)
        # Points reserved by an open hold before they expired stay spendable
        # by that hold; only what is not reserved goes to breakage now.
        available = row.credits_posted - row.debits_posted - row.debits_pending
        amount = min(expired, available)
        if amount <= 0:
            return None
        unit_amount = amount_of(amount, row.account.unit)
        postings = (
            Posting.debit(account_id, unit_amount),
            Posting.credit(row.account.breakage_account, unit_amount),
        )
        # Debits only grow, so the account's debits before this entry make
        # the key unique even for two breakages in one clock tick.
        key = f"{_BREAKAGE_PREFIX}{account_id}:{row.debits_posted}"
        rows = _rows(postings)
        postings_json = _postings_json(rows)
        kind = self.breakage_kind
        fingerprint = _fingerprint(kind, None, postings_json, None, None)
        return self._movement(
            now, key, fingerprint, kind, postings, rows, postings_json, expiring_lots=True
        )

    def _remember_account(self, account: Account) -> None:
        self._accounts[account.id] = account
        self._flag_bits[account.id] = int(account.flags)

    def _describe(self, names: Sequence[str]) -> dict[str, Account]:
        """Account descriptions, cached: they never change once created."""
        cache = self._accounts
        missing = [name for name in names if name not in cache]
        if missing:
            rows = self._store.get_accounts(missing)
            for name in missing:
                if name not in rows:
                    raise UnknownAccount(f"no account {name!r}")
                self._remember_account(rows[name].account)
        return cache

    def _movement(
        self,
        now: int,
        key: str,
        fingerprint: bytes,
        kind: Kind,
        postings: tuple[Posting, ...],
        rows: tuple[_Row, ...],
        postings_json: str,
        *,
        pending: bool = False,
        ref_seq: int | None = None,
        resolves: int | None = None,
        reverses: int | None = None,
        expires_at: int | None = None,
        release: Sequence[PostingRow] = (),
        memo: str | None = None,
        lots_from: int | None = None,
        expiring_lots: bool = False,
    ) -> Transaction:
        """Check, then append one journal entry and apply it; a rejection leaves
        nothing of it written.

        This is the hot path of every checkout: each posting was flattened
        once into `rows`, and balances are read only where two or more limits
        can bite.
        """
        accounts = self._accounts
        deltas: dict[str, _Delta] = {}
        column_base = 2 if pending else 0
        for account_id, side, minor, unit, _ in rows:
            delta = deltas.get(account_id)
            if delta is None:
                account = accounts.get(account_id) or self._describe([account_id])[account_id]
                if account.unit != unit:
                    raise CurrencyMismatch(
                        f"{unit} posted to {account_id}, an account in {account.unit}"
                    )
                delta = deltas[account_id] = [0, 0, 0, 0]
            elif accounts[account_id].unit != unit:
                raise CurrencyMismatch(f"{unit} and {accounts[account_id].unit} on {account_id}")
            delta[column_base + (side == "C")] += minor
        for r in release:
            delta = deltas.get(r.account)
            if delta is None:
                self._describe([r.account])
                delta = deltas[r.account] = [0, 0, 0, 0]
            delta[2 if r.side == "D" else 3] -= r.amount

        watched = []
        flag_bits = self._flag_bits
        for account_id, delta in deltas.items():
            flags = flag_bits[account_id]
            if flags & _DEBIT_LIMIT and (delta[0] > 0 or delta[2] > 0):
                account = accounts[account_id]
                watched.append(account_id)
                # Expired lots leave a points account before anything spends from it.
                if (
                    account.lots
                    and kind is not Kind.BREAKAGE
                    and kind is not Kind.MIRROR
                    and self._store.expired_lot_accounts(now, account_id)
                ):
                    self._expire_lots(account_id, now)
            elif flags & _CREDIT_LIMIT and (delta[1] > 0 or delta[3] > 0):
                watched.append(account_id)
        store = self._store
        kind_text = kind._value_  # not .value: in Python 3.11 that is a Python-level property
        # One account that a limit may stop: its CHECK constraint decides, as
        # the balance update's last row, with nothing read first (`_refuse`
        # undoes the rest if it fires). Several: read and check them first.
        checked_by_update = len(watched) == 1 and resolves is None and reverses is None
        if watched and not checked_by_update:
            for account_id, (dp, cp, dpe, cpe) in store.get_balances(watched).items():
                error = self._limit_error(account_id, (dp, cp, dpe, cpe), deltas[account_id])
                if error is not None:
                    raise error

        if resolves is None and reverses is None:
            seq = store.insert_entry(key, fingerprint, kind_text, now, ref_seq, expires_at, memo)
        else:
            seq = store.insert_tx(
                NewTx(
                    key=key,
                    fingerprint=fingerprint,
                    kind=kind_text,
                    status="committed",
                    created_at=now,
                    ref_seq=ref_seq,
                    resolves=resolves,
                    reverses=reverses,
                    expires_at=expires_at,
                    memo=memo,
                )
            )
        if seq is None:
            raise _KeyTaken
        self._appended = key
        changed = {a: (d[0], d[1], d[2], d[3]) for a, d in deltas.items() if any(d)}
        if checked_by_update:
            changed[watched[0]] = changed.pop(watched[0])  # last: see `_refuse`
        try:
            store.add_to_balances(changed)
        except LimitBroken:
            if not checked_by_update:
                raise LedgerCorrupted(f"a limit broke that the checks passed: {key}") from None
            self._refuse(seq, changed)
        store.insert_postings(seq, [(a, s, m, u, pending, e) for a, s, m, u, e in rows])
        if not pending:
            for account_id, delta in deltas.items():
                if accounts[account_id].lots and (delta[0] or delta[1]):
                    self._move_lots(seq, account_id, rows, now, lots_from, expiring_lots)

        ref_key = None
        if ref_seq is not None:
            ref_tx = store.get_tx(ref_seq)
            ref_key = None if ref_tx is None else ref_tx.key
        payload = _payload(
            self.origin, key, kind_text, ref_key, now, expires_at, memo, postings_json
        )
        store.append_outbox(seq, now, payload)
        return Transaction(
            seq,
            key,
            kind,
            postings,
            self._at(now),
            ref_key,
            None if expires_at is None else from_micros(expires_at),
            memo,
        )

    def _limit_error(
        self, account_id: str, balance: tuple[int, int, int, int], delta: Sequence[int]
    ) -> Rejection | None:
        """The rejection if `delta` on top of `balance` breaks the account's limit."""
        dp, cp, dpe, cpe = (balance[i] + delta[i] for i in range(4))
        unit = self._accounts[account_id].unit
        if self._flag_bits[account_id] & _DEBIT_LIMIT:
            if dp + dpe > cp:
                return InsufficientFunds(
                    f"{account_id} is short by {amount_of(dp + dpe - cp, unit)}"
                )
        elif cp + cpe > dp:
            over = amount_of(cp + cpe - dp, unit)
            return LimitExceeded(f"{account_id} would exceed its limit by {over}")
        return None

    def _refuse(self, seq: int, changed: dict[str, tuple[int, int, int, int]]) -> None:
        """The last row of a balance update broke its account's limit: undo the rows
        before it and the journal row, then raise the rejection as a check would.

        Only the last account could break a limit (the others' deltas only move
        them away from theirs), so the rows before it are exactly what stayed.
        """
        account_id = next(reversed(changed))
        delta = changed.pop(account_id)
        store = self._store
        if changed:
            store.add_to_balances({a: (-d[0], -d[1], -d[2], -d[3]) for a, d in changed.items()})
        store.delete_entry(seq)
        self._appended = None
        error = self._limit_error(account_id, store.get_balances([account_id])[account_id], delta)
        if error is None:
            raise LedgerCorrupted(f"{account_id}: its limit broke, yet the balance allows this")
        raise error

    def _move_lots(
        self,
        seq: int,
        account_id: str,
        rows: tuple[_Row, ...],
        now: int,
        lots_from: int | None,
        expiring_lots: bool,
    ) -> None:
        """Keep a lot-tracked account's lots equal to its posted balance."""
        net = 0
        expiries = []
        for account, side, minor, _, expires in rows:
            if account == account_id:
                net += minor if side == "C" else -minor
                if side == "C" and expires is not None:
                    expiries.append(expires)
        if net > 0:
            # A reversed redemption gives points back to the lots they came from.
            if lots_from is not None:
                for lot_id, lot_account, moved in self._store.lot_moves_of(lots_from):
                    if net == 0:
                        break
                    if moved < 0 and lot_account == account_id:
                        back = min(-moved, net)
                        self._store.move_lot(seq, lot_id, back)
                        net -= back
            if net > 0:
                expiry = min(expiries) if expiries else None
                self._store.insert_lot(account_id, seq, net, now, expiry)
            return
        need = -net
        if lots_from is not None and not expiring_lots:
            # A reversed earning takes back the lots it created first.
            lots = self._store.open_lots(account_id)
            own = {lot.id for lot in self._store.lots_created_by(lots_from)}
            lots.sort(key=lambda lot: lot.id not in own)
        else:
            lots = self._store.lots_to_cover(account_id, need, now if expiring_lots else None)
        for lot in lots:
            if need == 0:
                break
            take = min(lot.remaining, need)
            self._store.move_lot(seq, lot.id, -take)
            need -= take
        if need:
            raise LedgerCorrupted(f"{account_id}: lots hold less than its balance")
