# SPDX-License-Identifier: Apache-2.0
"""The embedded ledger store: one SQLite file in WAL mode.

Writes use the connection directly (`BEGIN IMMEDIATE` ... `COMMIT`) so that
one checkout is exactly one durable commit; sqlite-utils serves the schema
tooling, inspection and reports that read the same file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TypeVar, cast

from .._errors import (
    ConfigurationError,
    LoyaltyError,
    NotATillFile,
    StorageClosed,
    StorageError,
    StorageFull,
)
from .._money import MAX_AMOUNT
from ._errors import BalanceOverflow
from ._schema import MEMBER_POSTING, migrate
from ._store import AccountRow, LimitBroken, LotRow, NewTx, PostingRow, StoredTx
from ._types import Account, AccountFlags

if TYPE_CHECKING:
    import sqlite_utils

Synchronous = Literal["FULL", "NORMAL", "EXTRA", "OFF"]

#: The most a balance column (debits or credits, ever) may total: the SDK's
#: largest amount, so every balance is an exact `Money` and exact in JSON,
#: and a sum of two columns stays far inside SQLite's int64.
BALANCE_LIMIT: Final = MAX_AMOUNT

_ACCOUNT_COLUMNS: Final = (
    "id, unit, flags, lots, breakage_account, "
    "debits_posted, credits_posted, debits_pending, credits_pending"
)
_TX_COLUMNS: Final = (
    "seq, key, fingerprint, kind, status, ref_seq, created_at, expires_at, memo, "
    "error_code, error_message"
)


#: Every stored flags value, looked up: on Python 3.11 `AccountFlags(n)` takes
#: thousands of instructions (the enum class's __getattr__ hook), per account read.
_FLAGS: Final = {int(f): f for f in map(AccountFlags, range(4))}


#: Per row of `accounts`: what its open lots hold that expired by the bound time
#: (0 for an account without lots), as `expired_remaining` sums it for one account.
_EXPIRED_REMAINING: Final = (
    "CASE WHEN lots THEN (SELECT coalesce(sum(remaining), 0) FROM lots l"
    " WHERE l.account = accounts.id AND l.remaining > 0 AND l.expires_at <= ?) ELSE 0 END"
)


def _account_row(row: tuple[object, ...]) -> AccountRow:
    ident, unit, flags, lots, breakage, dp, cp, dpe, cpe = row
    known = _FLAGS.get(flags)  # type: ignore[call-overload]
    account = Account(
        str(ident),
        str(unit),
        AccountFlags(flags) if known is None else known,  # type: ignore[arg-type]
        bool(lots),
        breakage,  # type: ignore[arg-type]
    )
    return AccountRow(account, dp, cp, dpe, cpe)  # type: ignore[arg-type]


def _tx_row(row: tuple[object, ...]) -> StoredTx:
    return StoredTx(*row)  # type: ignore[arg-type]


_TX_NAMES: Final = (
    "key",
    "fingerprint",
    "kind",
    "status",
    "ref_seq",
    "created_at",
    "expires_at",
    "memo",
    "error_code",
    "error_message",
)
_TX_INSERTS: dict[int, str] = {}
# A committed entry's row by which of ref_seq, expires_at, memo are missing (bits 0-2).
_ENTRY_INSERTS: Final = tuple(
    "INSERT INTO transactions (key, fingerprint, kind, status, created_at, ref_seq, expires_at,"
    " memo) VALUES (?, ?, ?, 'committed', ?"
    + "".join(", NULL" if nulls >> bit & 1 else ", ?" for bit in range(3))
    + ") ON CONFLICT (key) DO NOTHING"
    for nulls in range(8)
)
_ADD_TO_BALANCES: Final = (
    "UPDATE accounts SET debits_posted = debits_posted + ?1,"
    " credits_posted = credits_posted + ?2, debits_pending = debits_pending + ?3,"
    " credits_pending = credits_pending + ?4 WHERE id = ?5"
    f" AND debits_posted + ?1 <= {BALANCE_LIMIT} AND credits_posted + ?2 <= {BALANCE_LIMIT}"
    f" AND debits_pending + ?3 <= {BALANCE_LIMIT} AND credits_pending + ?4 <= {BALANCE_LIMIT}"
)
# The same for the posted columns only (every entry but a hold or its resolution): SQLite
# then skips the CHECKs on the pending columns, and the row binds 3 values, not 5.
_ADD_TO_POSTED: Final = (
    "UPDATE accounts SET debits_posted = debits_posted + ?1,"
    " credits_posted = credits_posted + ?2 WHERE id = ?3"
    f" AND debits_posted + ?1 <= {BALANCE_LIMIT} AND credits_posted + ?2 <= {BALANCE_LIMIT}"
)
_POSTING_INSERTS: dict[tuple[object, ...], str] = {}


def _tx_insert(nulls: int) -> str:
    """The journal insert with the columns flagged in `nulls` as NULL literals."""
    values = ", ".join("NULL" if nulls >> i & 1 else "?" for i in range(len(_TX_NAMES)))
    return (
        f"INSERT INTO transactions ({', '.join(_TX_NAMES)}) VALUES ({values})"
        " ON CONFLICT (key) DO NOTHING"
    )


def _postings_insert(shape: tuple[object, ...]) -> str:
    """The postings insert for `shape`: (first index, pending, then side, unit and
    whether the expiry is missing, per row). The seq is bound once (?1); side, unit,
    index, pending and a missing expiry are literals, so a row binds account and
    amount (and its expiry), not seven values."""
    first, flag = cast(int, shape[0]), int(bool(shape[1]))
    rows = []
    number = 2
    for i in range(0, len(shape) - 2, 3):
        side, unit, no_expiry = shape[2 + i : 5 + i]
        if side not in ("D", "C") or not isinstance(unit, str):
            raise ValueError(f"not a posting's side and unit: {side!r}, {unit!r}")
        unit_literal = "'" + unit.replace("'", "''") + "'"
        expiry = "NULL" if no_expiry else f"?{number + 2}"
        rows.append(
            f"(?1, {first + i // 3}, ?{number}, '{side}', ?{number + 1}, {unit_literal},"
            f" {flag}, {expiry})"
        )
        number += 2 if no_expiry else 3
    return (
        "INSERT INTO postings (tx_seq, idx, account, side, amount, unit, pending, expires_at)"
        f" VALUES {','.join(rows)}"
    )


# A batch's statements (`SQLiteStore.insert_entries` and the others after it):
# multi-row VALUES with missing values as NULL literals (see `_insert_row`),
# the text kept per shape; at most this many rows each, far below SQLite's
# 32,766 parameters.
_CHUNK: Final = 999
_READ_CHUNK: Final = 100  # SQLite allows 500 terms in a compound SELECT
_Shape = TypeVar("_Shape", tuple[bool, ...], int)
_BATCH_SQL: dict[tuple[str, object], str] = {}


def _batch_sql(name: str, shape: _Shape, build: Callable[[_Shape], str]) -> str:
    sql = _BATCH_SQL.get((name, shape))
    if sql is None:
        if len(_BATCH_SQL) > 512:
            _BATCH_SQL.clear()
        sql = _BATCH_SQL[name, shape] = build(shape)
    return sql


def _balances_read(count: int) -> str:
    # Point lookups joined by UNION ALL: an IN list measured twice the cost here.
    one = (
        "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending,"
        " CASE WHEN lots THEN EXISTS (SELECT 1 FROM lots l WHERE l.account = accounts.id"
        " AND l.remaining > 0 AND l.expires_at <= ?) ELSE 0 END FROM accounts WHERE id = ?"
    )
    return " UNION ALL ".join([one] * count)


def _entries_insert(no_memo: tuple[bool, ...]) -> str:
    rows = ",".join(f"(?, ?, ?, 'committed', ?, {'NULL' if none else '?'})" for none in no_memo)
    return (
        "INSERT INTO transactions (key, fingerprint, kind, status, created_at, memo)"
        f" VALUES {rows} ON CONFLICT (key) DO NOTHING"
    )


def _posting_rows_insert(shape: tuple[object, ...]) -> str:
    """A batch's postings insert, as `_postings_insert` makes an entry's: `shape` is
    (seq - first seq, index, side, unit, whether the expiry is missing) per row."""
    rows = []
    number = 2
    for i in range(0, len(shape), 5):
        offset, idx, side, unit, no_expiry = shape[i : i + 5]
        if side not in ("D", "C") or not isinstance(unit, str):
            raise ValueError(f"not a posting's side and unit: {side!r}, {unit!r}")
        unit_literal = "'" + unit.replace("'", "''") + "'"
        expiry = "NULL" if no_expiry else f"?{number + 2}"
        rows.append(
            f"(?1 + {int(cast(int, offset))}, {int(cast(int, idx))}, ?{number}, '{side}',"
            f" ?{number + 1}, {unit_literal}, 0, {expiry})"
        )
        number += 2 if no_expiry else 3
    return (
        "INSERT INTO postings (tx_seq, idx, account, side, amount, unit, pending, expires_at)"
        f" VALUES {','.join(rows)}"
    )


def _balances_update(count: int) -> str:
    # One UPDATE ... FROM a VALUES list, the guard as in `_ADD_TO_BALANCES`. It starts
    # with UPDATE, not WITH: sqlite3 sets rowcount only for statements that do.
    return (
        "UPDATE accounts SET debits_posted = debits_posted + v.column2,"
        " credits_posted = credits_posted + v.column3,"
        " debits_pending = debits_pending + v.column4,"
        " credits_pending = credits_pending + v.column5"
        f" FROM (VALUES {','.join(['(?, ?, ?, ?, ?)'] * count)}) AS v WHERE id = v.column1"
        f" AND debits_posted + v.column2 <= {BALANCE_LIMIT}"
        f" AND credits_posted + v.column3 <= {BALANCE_LIMIT}"
        f" AND debits_pending + v.column4 <= {BALANCE_LIMIT}"
        f" AND credits_pending + v.column5 <= {BALANCE_LIMIT}"
    )


def _posted_update(count: int) -> str:
    # A few accounts' posted columns in one UPDATE by CASE on the id: cheaper than the
    # join of `_balances_update` (whose UPDATE ... FROM first copies every joined row
    # into a temporary table); the guard as in `_ADD_TO_POSTED`. (?1, ?2, ?3) is the
    # first account's (id, debits, credits), and so on.
    def case(column: int) -> str:
        whens = " ".join(f"WHEN ?{3 * i + 1} THEN ?{3 * i + column}" for i in range(count))
        return f"CASE id {whens} END"

    ids = ", ".join(f"?{3 * i + 1}" for i in range(count))
    debits, credits = case(2), case(3)
    return (
        f"UPDATE accounts SET debits_posted = debits_posted + {debits},"
        f" credits_posted = credits_posted + {credits} WHERE id IN ({ids})"
        f" AND debits_posted + {debits} <= {BALANCE_LIMIT}"
        f" AND credits_posted + {credits} <= {BALANCE_LIMIT}"
    )


# At most this many accounts in one `_posted_update` (its CASE is a list to go through).
_CASE_ROWS: Final = 8


def _lots_insert(no_expiry: tuple[bool, ...]) -> str:
    rows = ",".join(f"(?, ?, ?, ?, ?, {'NULL' if none else '?'})" for none in no_expiry)
    return (
        "INSERT INTO lots (account, tx_seq, amount, remaining, earned_at, expires_at)"
        f" VALUES {rows}"
    )


def _lots_update(count: int) -> str:
    return (
        "UPDATE lots SET remaining = remaining + v.column2"
        f" FROM (VALUES {','.join(['(?, ?)'] * count)}) AS v WHERE id = v.column1"
    )


def _lot_moves_insert(count: int) -> str:
    return (
        f"INSERT INTO lot_moves (tx_seq, lot_id, amount) VALUES {','.join(['(?, ?, ?)'] * count)}"
    )


def _outbox_insert(count: int) -> str:
    return (
        f"INSERT INTO outbox (tx_seq, created_at, payload) VALUES {','.join(['(?, ?, ?)'] * count)}"
    )


class _Write:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception; nests by joining.

    A class rather than a generator context manager: it runs on every write.
    """

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        store = self._store
        store._lock.acquire()
        if store._depth == 0:
            try:
                store._writer.execute("BEGIN IMMEDIATE")
            except BaseException as error:
                store._lock.release()
                typed = (
                    storage_error(error, store.path) if isinstance(error, sqlite3.Error) else None
                )
                if typed is None:
                    raise
                raise typed from error
        store._depth += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _: object
    ) -> None:
        store = self._store
        try:
            store._depth -= 1
            if store._depth == 0:
                try:
                    store._writer.execute("ROLLBACK" if exc_type is not None else "COMMIT")
                except sqlite3.Error as error:
                    if exc_type is None:  # the commit itself failed: nothing of it stays
                        with contextlib.suppress(sqlite3.Error):
                            store._conn.execute("ROLLBACK")
                        typed = storage_error(error, store.path)
                        if typed is None:
                            raise
                        raise typed from error
        finally:
            store._lock.release()
        if isinstance(exc, sqlite3.Error) and store._depth == 0:
            typed = storage_error(exc, store.path)
            if typed is not None:
                raise typed from exc


_SQLITE_HEADER = b"SQLite format 3\x00"


def storage_error(error: sqlite3.Error, path: str) -> LoyaltyError | None:
    """The SDK's error for what SQLite raised (the transaction has rolled back), or None
    for a programming error, which is shown as it is."""
    if isinstance(error, sqlite3.ProgrammingError) and "closed" in str(error):
        return StorageClosed(f"called after close() ({path})")
    code = getattr(error, "sqlite_errorname", "")
    if code == "SQLITE_FULL" or "database or disk is full" in str(error):
        return StorageFull(f"{path}: the disk is full; nothing of this transaction was written")
    if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or (
        isinstance(error, sqlite3.DatabaseError)
        and ("malformed" in str(error) or "not a database" in str(error))
    ):
        from ._errors import LedgerCorrupted

        return LedgerCorrupted(f"{path}: the file is damaged ({error})")
    if isinstance(
        error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        return None
    return StorageError(f"{path}: {error}")


def _refuse_foreign(path: str, *, create: bool) -> bool:
    """Whether `path` exists; refuses an existing file that is not a SQLite database (an
    empty one too, unless `create`: it would silently open as a new, empty till)."""
    file = Path(path)
    if path == ":memory:" or path.startswith("file:") or not file.exists():
        return False
    size = file.stat().st_size
    if size == 0:
        if create:
            return False
        raise NotATillFile(
            f"{path} is an empty file, not a till file (its history would be gone):"
            " pass create=True to make a new till file there"
        )
    with file.open("rb") as handle:
        if handle.read(16) != _SQLITE_HEADER:
            raise NotATillFile(f"{path} is not a till file (not a SQLite database)")
    return True


class SQLiteStore:
    """`LedgerStore` on one SQLite file (or ``:memory:``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        create: bool = False,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise ConfigurationError(
                f"synchronous must be FULL, EXTRA, NORMAL or OFF: {synchronous!r}"
            )
        existed = _refuse_foreign(str(path), create=create)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so there is
        # exactly one commit per write and nothing implicit in between.
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        # One cursor for the statements of every write, rather than the new
        # cursor that each Connection.execute makes (and frees) for one statement.
        self._writer = self._conn.cursor()
        self._lock = threading.RLock()
        self._depth = 0
        # One for every write: it keeps no state of its own (the depth is the store's,
        # under the lock it takes), so nested and concurrent blocks may share it.
        self._write_block = _Write(self)
        self.path = str(path)
        try:
            self._configure(synchronous, existed=existed)
        except BaseException as error:
            self._conn.close()
            if not isinstance(error, sqlite3.Error):
                raise
            if isinstance(error, sqlite3.DatabaseError) and not isinstance(
                error, sqlite3.OperationalError
            ):
                raise NotATillFile(f"{path} is not a readable till file ({error})") from error
            raise storage_error(error, self.path) or error from error
        self._bulk_db: sqlite_utils.Database | None = None

    def _configure(self, synchronous: Synchronous, *, existed: bool) -> None:
        conn = self._conn
        if existed:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            tables = [
                n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            if version == 0 and tables:
                raise NotATillFile(
                    f"{self.path} is another program's database (tables {', '.join(tables[:3])}"
                    f"{', ...' if len(tables) > 3 else ''}), not a till file"
                )
        if self.path != ":memory:":
            # Small pages: a checkout dirties about a dozen pages (journal,
            # postings, key and account indexes, balances, lots, outbox), and
            # WAL writes each whole; 1 KiB pages write a quarter of the bytes
            # of 4 KiB ones for each durable commit. No effect on a file that
            # already exists.
            conn.execute("PRAGMA page_size=1024")
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode.lower() != "wal":
                raise ConfigurationError(f"cannot put {self.path} in WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        self._synchronous = synchronous
        # Foreign keys are checked by Ledger.check(), not on every write: the
        # ledger resolves every account it names before it writes.
        conn.execute("PRAGMA foreign_keys=OFF")
        migrate(conn)

    @property
    def lock(self) -> threading.RLock:
        """The one lock of this file's connection, shared by everything that uses it."""
        return self._lock

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for read-only tooling (sqlite-utils, reports)."""
        return self._conn

    def write(self) -> _Write:
        """A write transaction; nested calls join the outermost one."""
        return self._write_block

    @contextlib.contextmanager
    def relaxed(self) -> Iterator[None]:
        """Commit without fsync (synchronous=NORMAL) for the writes inside.

        In WAL mode a NORMAL commit is safe against a killed process (the
        WAL frames are in the OS cache) but not against power loss. SQLite
        only changes the level between transactions, so inside an open
        write this does nothing and the outer commit stays durable.
        """
        with self._lock:
            if self._depth or self._synchronous in ("NORMAL", "OFF") or self.path == ":memory:":
                yield
                return
            self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield
            finally:
                self._conn.execute(f"PRAGMA synchronous={self._synchronous}")

    def page_problems(self) -> list[str]:
        """What SQLite's quick_check finds wrong with the file's pages (nothing: [])."""
        try:
            found = [str(r) for (r,) in self._conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.ProgrammingError:
            raise  # closed: the boundary says so
        except sqlite3.DatabaseError as error:
            return [f"the file's pages cannot be read: {error}"]
        return [] if found == ["ok"] else [f"damaged pages: {p}" for p in found[:20]]

    def close(self) -> None:
        """Close the connection (a WAL checkpoint happens as SQLite closes)."""
        with self._lock:
            self._conn.close()

    # -- accounts ----------------------------------------------------------

    def insert_account(self, account: Account, created_at: int) -> None:
        self._conn.execute(
            "INSERT INTO accounts (id, unit, flags, lots, breakage_account, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                account.id,
                account.unit,
                int(account.flags),
                int(account.lots),
                account.breakage_account,
                created_at,
            ),
        )

    def insert_accounts(self, accounts: Sequence[Account], created_at: int) -> None:
        """Bulk-insert accounts (enrolment from head office) through sqlite-utils.

        Runs inside the current write: sqlite-utils nests its own
        transaction as a savepoint, so this is still one commit.
        """
        records = (
            {
                "id": a.id,
                "unit": a.unit,
                "flags": int(a.flags),
                "lots": int(a.lots),
                "breakage_account": a.breakage_account,
                "created_at": created_at,
            }
            for a in accounts
        )
        if self._bulk_db is None:
            # Created on first use, without plugins or pragmas, so the
            # checkout path's connection stays exactly as configured above.
            # Imported here: sqlite-utils imports pandas and numpy when they
            # are installed, seconds and tens of MB a till does not need.
            import sqlite_utils

            self._bulk_db = sqlite_utils.Database(
                self._conn, recursive_triggers=False, execute_plugins=False
            )
        self._bulk_db.table("accounts").insert_all(records, batch_size=1000)

    def get_account(self, account_id: str) -> AccountRow | None:
        row = self._conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        return None if row is None else _account_row(row)

    def get_accounts(self, account_ids: Sequence[str]) -> dict[str, AccountRow]:
        marks = ",".join("?" * len(account_ids))
        rows = self._conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({marks})", tuple(account_ids)
        ).fetchall()
        return {row[0]: _account_row(row) for row in rows}

    def accounts_with_expired(
        self, account_ids: Sequence[str], now: int
    ) -> dict[str, tuple[AccountRow, int]]:
        """Some accounts and, for a lot-tracked one, what its open lots hold that
        expired by `now`: the balances a checkout shows, in one read."""
        marks = ",".join("?" * len(account_ids))
        rows = self._conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS}, {_EXPIRED_REMAINING} FROM accounts WHERE id IN ({marks})",
            (now, *account_ids),
        ).fetchall()
        return {row[0]: (_account_row(row[:-1]), int(row[-1])) for row in rows}

    def available_columns(
        self, account_ids: Sequence[str], now: int
    ) -> list[tuple[str, int, int, int, int, int, int]]:
        """(id, flags, debits and credits posted, debits and credits pending, expired
        remaining by `now`) per account found: `accounts_with_expired`'s figures
        without its objects, for a till that shows a few balances per checkout."""
        marks = ",".join("?" * len(account_ids))
        return self._conn.execute(
            "SELECT id, flags, debits_posted, credits_posted, debits_pending, credits_pending,"
            f" {_EXPIRED_REMAINING} FROM accounts WHERE id IN ({marks})",
            (now, *account_ids),
        ).fetchall()

    def add_to_balances(self, deltas: dict[str, tuple[int, int, int, int]]) -> None:
        """Add to the balance columns, one row per account in the order given.

        Raises:
            LimitBroken: a row would break its account's limit (the CHECK
                constraints of `accounts`); the rows before it stay applied.
            BalanceOverflow: a column would pass `BALANCE_LIMIT`.
        """
        # The guard keeps every column an exact integer: past int64 SQLite
        # would silently turn the sum into a float. A row it skips is refused.
        # executemany, one row per account: fewer statements with UPDATE ... FROM
        # VALUES measured more instructions (a join over the VALUES list).
        posted: list[tuple[object, ...]] = []
        rows = posted
        sql = _ADD_TO_POSTED
        for account_id, (dp, cp, dpe, cpe) in deltas.items():
            if dpe or cpe:
                sql, rows = _ADD_TO_BALANCES, [(*d, a) for a, d in deltas.items()]
                break
            posted.append((dp, cp, account_id))
        try:
            cursor = self._writer.executemany(sql, rows)
        except sqlite3.IntegrityError as error:
            if "CHECK constraint failed" not in str(error):
                raise
            raise LimitBroken(str(error)) from error
        if cursor.rowcount != len(deltas):
            raise BalanceOverflow(
                f"a balance would pass {BALANCE_LIMIT}; nothing of this write was kept"
            )

    def all_accounts(self) -> list[AccountRow]:
        rows = self._conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY id")
        return [_account_row(row) for row in rows]

    # -- journal -----------------------------------------------------------

    def find_tx(self, key: str) -> StoredTx | None:
        row = self._conn.execute(
            f"SELECT {_TX_COLUMNS} FROM transactions WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _tx_row(row)

    def get_tx(self, seq: int) -> StoredTx | None:
        row = self._conn.execute(
            f"SELECT {_TX_COLUMNS} FROM transactions WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else _tx_row(row)

    def insert_tx(self, tx: NewTx) -> int | None:
        """Append a journal row; None when its key is taken (nothing is written then)."""
        seq = self._insert_row(
            (
                tx.key,
                tx.fingerprint,
                tx.kind,
                tx.status,
                tx.ref_seq,
                tx.created_at,
                tx.expires_at,
                tx.memo,
                tx.error_code,
                tx.error_message,
            )
        )
        if seq is None:
            return None
        if tx.resolves is not None:
            self._conn.execute(
                "INSERT INTO resolutions (hold_seq, tx_seq) VALUES (?, ?)", (tx.resolves, seq)
            )
        if tx.reverses is not None:
            self._conn.execute(
                "INSERT INTO reversals (original_seq, tx_seq) VALUES (?, ?)", (tx.reverses, seq)
            )
        return seq

    def insert_entry(
        self,
        key: str,
        fingerprint: bytes,
        kind: str,
        created_at: int,
        ref_seq: int | None,
        expires_at: int | None,
        memo: str | None,
    ) -> int | None:
        """Append a committed journal row (no resolution or reversal); None when the
        key is taken. The checkout's path: the same row as `insert_tx`, without a `NewTx`."""
        nulls = (ref_seq is None) | (expires_at is None) << 1 | (memo is None) << 2
        params: list[object] = [key, bytearray(fingerprint), kind, created_at]
        if ref_seq is not None:
            params.append(ref_seq)
        if expires_at is not None:
            params.append(expires_at)
        if memo is not None:
            params.append(memo)
        cursor = self._writer.execute(_ENTRY_INSERTS[nulls], params)
        if not cursor.rowcount:
            return None
        return cursor.lastrowid

    def _insert_row(self, values: tuple[object, ...]) -> int | None:
        # The key's UNIQUE index answers "was this key used?" as part of the
        # insert, so a new entry needs no lookup first. None and bytes are
        # written as a NULL literal and a bytearray: the sqlite3 module runs
        # its adapter lookup (several raised and cleared AttributeErrors) for
        # every other parameter type, on every execute.
        nulls = 0
        for index, value in enumerate(values):
            if value is None:
                nulls |= 1 << index
        sql = _TX_INSERTS.get(nulls)
        if sql is None:
            sql = _TX_INSERTS[nulls] = _tx_insert(nulls)
        params = [bytearray(v) if type(v) is bytes else v for v in values if v is not None]
        cursor = self._conn.execute(sql, params)
        if not cursor.rowcount:
            return None
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def delete_entry(self, seq: int) -> None:
        """Remove a journal row appended in the current write (its checks then failed)."""
        self._conn.execute("DELETE FROM transactions WHERE seq = ?", (seq,))

    def insert_postings(
        self, seq: int, rows: Iterable[tuple[str, str, int, str, bool, int | None]]
    ) -> None:
        # One multi-row INSERT per entry (a few postings; 999 rows at most per
        # statement, far below SQLite's 32,766 parameters), the statement text
        # kept per shape (see `_postings_insert` and `_insert_row`).
        numbered = list(rows)
        for start in range(0, len(numbered), 999):
            chunk = numbered[start : start + 999]
            shape: list[object] = [start, chunk[0][4]]
            params: list[object] = [seq]
            for account, side, amount, unit, _, expires in chunk:
                if expires is None:
                    shape += (side, unit, True)
                    params += (account, amount)
                else:
                    shape += (side, unit, False)
                    params += (account, amount, expires)
            key = tuple(shape)
            sql = _POSTING_INSERTS.get(key)
            if sql is None:
                if len(_POSTING_INSERTS) > 256:
                    _POSTING_INSERTS.clear()
                sql = _POSTING_INSERTS[key] = _postings_insert(key)
            self._writer.execute(sql, params)

    def postings_of(self, seq: int) -> list[PostingRow]:
        rows = self._conn.execute(
            "SELECT tx_seq, account, side, amount, unit, pending, expires_at FROM postings"
            " WHERE tx_seq = ? ORDER BY idx",
            (seq,),
        )
        return [PostingRow(s, a, d, m, u, bool(p), e) for s, a, d, m, u, p, e in rows]

    def is_resolved(self, hold_seq: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM resolutions WHERE hold_seq = ?", (hold_seq,)
        ).fetchone()
        return row is not None

    def is_reversed(self, seq: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM reversals WHERE original_seq = ?", (seq,)
        ).fetchone()
        return row is not None

    def history(
        self, account_id: str, limit: int, before_seq: int | None
    ) -> list[tuple[StoredTx, PostingRow]]:
        # A member's postings are a range of postings_by_account (its condition repeated,
        # so SQLite may use it); a `sys:` account's, in nearly every entry and not in
        # that index, are found walking the journal back from its newest end.
        member = "" if account_id.startswith("sys:") else f" AND {MEMBER_POSTING}"
        rows = self._conn.execute(
            f"SELECT {', '.join('t.' + c.strip() for c in _TX_COLUMNS.split(','))},"
            " p.tx_seq, p.account, p.side, p.amount, p.unit, p.pending, p.expires_at"
            " FROM postings p JOIN transactions t ON t.seq = p.tx_seq"
            f" WHERE p.account = ?{member} AND p.tx_seq < ?"
            " ORDER BY p.tx_seq DESC, p.idx DESC LIMIT ?",
            (account_id, before_seq if before_seq is not None else 2**62, limit),
        ).fetchall()
        return [
            (
                _tx_row(row[:11]),
                PostingRow(row[11], row[12], row[13], row[14], row[15], bool(row[16]), row[17]),
            )
            for row in rows
        ]

    # -- holds -------------------------------------------------------------

    def add_open_hold(self, seq: int, expires_at: int) -> None:
        self._conn.execute(
            "INSERT INTO open_holds (hold_seq, expires_at) VALUES (?, ?)", (seq, expires_at)
        )

    def remove_open_hold(self, seq: int) -> None:
        self._conn.execute("DELETE FROM open_holds WHERE hold_seq = ?", (seq,))

    def next_hold_expiry(self) -> int:
        """The earliest expiry of an open hold (far in the future when there is none)."""
        (earliest,) = self._conn.execute("SELECT min(expires_at) FROM open_holds").fetchone()
        return 2**62 if earliest is None else int(earliest)

    def expired_holds(self, now: int) -> list[int]:
        rows = self._conn.execute(
            "SELECT hold_seq FROM open_holds WHERE expires_at <= ? ORDER BY expires_at, hold_seq",
            (now,),
        )
        return [seq for (seq,) in rows]

    def open_holds(self) -> list[int]:
        return [seq for (seq,) in self._conn.execute("SELECT hold_seq FROM open_holds")]

    # -- lots --------------------------------------------------------------

    def insert_lot(
        self, account: str, tx_seq: int, amount: int, earned_at: int, expires_at: int | None
    ) -> int:
        sql = "INSERT INTO lots (account, tx_seq, amount, remaining, earned_at, expires_at)"
        if expires_at is None:  # a literal, not a bound None (see `_insert_row`)
            cursor = self._writer.execute(
                sql + " VALUES (?1, ?2, ?3, ?3, ?4, NULL)", (account, tx_seq, amount, earned_at)
            )
        else:
            cursor = self._writer.execute(
                sql + " VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
                (account, tx_seq, amount, earned_at, expires_at),
            )
        lot_id = cursor.lastrowid
        assert lot_id is not None
        return lot_id

    def open_lots(self, account: str) -> list[LotRow]:
        rows = self._conn.execute(
            "SELECT id, account, tx_seq, amount, remaining, earned_at, expires_at FROM lots"
            " WHERE account = ? AND remaining > 0 ORDER BY earned_at, id",
            (account,),
        )
        return [LotRow(*row) for row in rows]

    def lots_to_cover(self, account: str, need: int, expired_by: int | None) -> list[LotRow]:
        """Open lots oldest first, read only until they hold `need` (only those expired
        by `expired_by`, if given): a redemption reads a few lots, not all a member has."""
        sql = (
            "SELECT id, account, tx_seq, amount, remaining, earned_at, expires_at FROM lots"
            " INDEXED BY lots_open WHERE account = ? AND remaining > 0"
        )
        args: tuple[object, ...] = (account,)
        if expired_by is not None:
            sql += " AND expires_at <= ?"
            args = (account, expired_by)
        cursor = self._conn.execute(sql + " ORDER BY earned_at, id", args)
        found: list[LotRow] = []
        # One lot first (the oldest usually covers a redemption: each row fetched is a
        # step through the index and a read of the lot), then more at a time.
        size = 1
        try:
            while need > 0:
                chunk = cursor.fetchmany(size)
                size = min(size * 4, 64)
                if not chunk:
                    break
                for row in chunk:
                    found.append(LotRow(*row))
                    need -= row[4]
                    if need <= 0:
                        break
        finally:
            cursor.close()  # before the caller updates the rows it read
        return found

    def next_expiry(self, account: str, after: int) -> tuple[int, int] | None:
        row = self._conn.execute(
            "SELECT expires_at, sum(remaining) FROM lots WHERE account = ? AND remaining > 0"
            " AND expires_at > ? GROUP BY expires_at ORDER BY expires_at LIMIT 1",
            (account, after),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def expired_remaining(self, account: str, now: int) -> int:
        (total,) = self._conn.execute(
            "SELECT coalesce(sum(remaining), 0) FROM lots WHERE account = ? AND remaining > 0"
            " AND expires_at <= ?",
            (account, now),
        ).fetchone()
        return int(total)

    def expired_lot_accounts(self, now: int, account: str | None) -> list[str]:
        if account is not None:
            row = self._conn.execute(
                "SELECT 1 FROM lots WHERE account = ? AND remaining > 0"
                " AND expires_at <= ? LIMIT 1",
                (account, now),
            ).fetchone()
            return [] if row is None else [account]
        # One probe per account with open lots, stepping from one account to the next
        # along lots_expiring (a skip-scan written out): no index on expiry alone to
        # write on every lot.
        rows = self._conn.execute(
            "WITH RECURSIVE a(account) AS ("
            " SELECT (SELECT min(account) FROM lots WHERE remaining > 0)"
            " UNION ALL SELECT (SELECT min(account) FROM lots"
            "  WHERE remaining > 0 AND account > a.account) FROM a WHERE a.account IS NOT NULL)"
            " SELECT account FROM a WHERE account IS NOT NULL AND EXISTS (SELECT 1 FROM lots l"
            "  WHERE l.account = a.account AND l.remaining > 0 AND l.expires_at <= ?)",
            (now,),
        )
        return [name for (name,) in rows]

    def lots_of(self, account: str) -> list[LotRow]:
        rows = self._conn.execute(
            "SELECT id, account, tx_seq, amount, remaining, earned_at, expires_at FROM lots"
            " WHERE account = ? ORDER BY earned_at, id",
            (account,),
        )
        return [LotRow(*row) for row in rows]

    def move_lot(self, tx_seq: int, lot_id: int, delta: int) -> None:
        self._conn.execute(
            "UPDATE lots SET remaining = remaining + ? WHERE id = ?", (delta, lot_id)
        )
        self._conn.execute(
            "INSERT INTO lot_moves (tx_seq, lot_id, amount) VALUES (?, ?, ?)",
            (tx_seq, lot_id, delta),
        )

    def lot_moves_of(self, tx_seq: int) -> list[tuple[int, str, int]]:
        rows = self._conn.execute(
            "SELECT m.lot_id, l.account, m.amount FROM lot_moves m JOIN lots l ON l.id = m.lot_id"
            " WHERE m.tx_seq = ? ORDER BY m.lot_id",
            (tx_seq,),
        )
        return [(lot, account, amount) for lot, account, amount in rows]

    def lots_created_by(self, tx_seq: int) -> list[LotRow]:
        rows = self._conn.execute(
            "SELECT id, account, tx_seq, amount, remaining, earned_at, expires_at FROM lots"
            " WHERE tx_seq = ? ORDER BY id",
            (tx_seq,),
        )
        return [LotRow(*row) for row in rows]

    # -- outbox ------------------------------------------------------------

    def append_outbox(self, tx_seq: int, created_at: int, payload: str) -> int:
        cursor = self._writer.execute(
            "INSERT INTO outbox (tx_seq, created_at, payload) VALUES (?, ?, ?)",
            (tx_seq, created_at, payload),
        )
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def _acked(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'outbox_acked'").fetchone()
        return int(row[0]) if row else 0

    def outbox(self, after_seq: int, limit: int) -> list[tuple[int, int, int, str]]:
        rows = self._conn.execute(
            "SELECT seq, tx_seq, created_at, payload FROM outbox WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (max(after_seq, self._acked()), limit),
        )
        return [(s, t, c, p) for s, t, c, p in rows]

    def ack_outbox(self, upto_seq: int) -> None:
        # Records stay (the cursor moves), so sequence numbers are never
        # reused; an acknowledgement beyond what exists is clamped.
        (last,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()
        self._conn.execute(
            "INSERT INTO meta (name, value) VALUES ('outbox_acked', ?) ON CONFLICT (name)"
            " DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            (min(upto_seq, last),),
        )

    def outbox_status(self) -> tuple[int, int | None, int, int]:
        acked = self._acked()
        length, oldest = self._conn.execute(
            "SELECT count(*), min(created_at) FROM outbox WHERE seq > ?", (acked,)
        ).fetchone()
        (last,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()
        return length, oldest, last, acked

    # -- checks ------------------------------------------------------------

    def fold_journal(self) -> Iterator[tuple[str, int, int, int, int]]:
        """Per account: debits and credits posted, and pending in open holds."""
        # The postings grouped first, in one pass: `sys:` accounts have no range in
        # postings_by_account to join on.
        yield from self._conn.execute(
            "SELECT a.id, coalesce(s.dp, 0), coalesce(s.cp, 0), coalesce(s.dpe, 0),"
            " coalesce(s.cpe, 0) FROM accounts a LEFT JOIN (SELECT p.account AS account,"
            " sum(CASE WHEN p.pending = 0 AND p.side = 'D' THEN p.amount END) AS dp,"
            " sum(CASE WHEN p.pending = 0 AND p.side = 'C' THEN p.amount END) AS cp,"
            " sum(CASE WHEN p.pending = 1 AND p.side = 'D' AND h.hold_seq IS NOT NULL"
            "   THEN p.amount END) AS dpe,"
            " sum(CASE WHEN p.pending = 1 AND p.side = 'C' AND h.hold_seq IS NOT NULL"
            "   THEN p.amount END) AS cpe"
            " FROM postings p LEFT JOIN open_holds h ON h.hold_seq = p.tx_seq"
            " GROUP BY p.account) s ON s.account = a.id ORDER BY a.id"
        )

    def committed_without_outbox(self) -> int:
        """Committed transactions that have no outbox record."""
        (count,) = self._conn.execute(
            "SELECT count(*) FROM transactions t WHERE t.status = 'committed'"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.tx_seq = t.seq)"
        ).fetchone()
        return int(count)

    def foreign_key_problems(self) -> list[str]:
        """Rows naming an account, transaction or lot that does not exist."""
        rows = self._conn.execute("PRAGMA foreign_key_check").fetchall()
        return [f"{table} row {rowid} names a missing {parent}" for table, rowid, parent, _ in rows]

    def get_balances(self, account_ids: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
        """Balance columns of some accounts, read inside the current write."""
        if len(account_ids) == 1:
            rows = self._conn.execute(
                "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending"
                " FROM accounts WHERE id = ?",
                (account_ids[0],),
            ).fetchall()
        else:
            marks = ",".join("?" * len(account_ids))
            rows = self._conn.execute(
                "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending"
                f" FROM accounts WHERE id IN ({marks})",
                tuple(account_ids),
            ).fetchall()
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    # -- several entries at once (`Ledger.transfer_many`) ------------------

    def balances_and_expiry(
        self, account_ids: Sequence[str], now: int
    ) -> dict[str, tuple[int, int, int, int, bool]]:
        """Balance columns of some accounts and, for a lot-tracked one, whether an open
        lot of it has expired by `now`: what a batch reads before its checks, at once."""
        found: dict[str, tuple[int, int, int, int, bool]] = {}
        for start in range(0, len(account_ids), _READ_CHUNK):
            chunk = account_ids[start : start + _READ_CHUNK]
            sql = _batch_sql("balances-read", len(chunk), _balances_read)
            params: list[object] = []
            for account_id in chunk:
                params += (now, account_id)
            for ident, dp, cp, dpe, cpe, expired in self._writer.execute(sql, params):
                found[ident] = (dp, cp, dpe, cpe, bool(expired))
        return found

    def insert_entries(self, rows: Sequence[tuple[str, bytes, str, int, str | None]]) -> int | None:
        """Append committed journal rows (key, fingerprint, kind, created_at, memo), with
        no reference or expiry, in order: the first one's seq (the others follow it one
        by one), or None when a key was taken, with none of them left written."""
        first: int | None = None
        cursor = self._writer
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            sql = _batch_sql("entries", tuple(row[4] is None for row in chunk), _entries_insert)
            params: list[object] = []
            for key, fingerprint, kind, created_at, memo in chunk:
                params += (key, bytearray(fingerprint), kind, created_at)
                if memo is not None:
                    params.append(memo)
            cursor.execute(sql, params)
            inserted, last = cursor.rowcount, cursor.lastrowid
            if first is None and inserted > 0:
                assert last is not None
                first = last - inserted + 1
            if inserted != len(chunk):
                # Each row took max(seq) + 1, so what this call wrote is one run of
                # seqs; deleted, they are given out again as if never taken.
                if first is not None:
                    cursor.execute(
                        "DELETE FROM transactions WHERE seq BETWEEN ? AND ?", (first, last)
                    )
                return None
        return first

    def insert_posting_rows(
        self, rows: Sequence[tuple[int, int, str, str, int, str, int | None]]
    ) -> None:
        """Insert posted (not pending) postings of any number of entries: (seq, idx,
        account, side, amount, unit, expires_at) rows."""
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            first = chunk[0][0]
            shape: list[object] = []
            params: list[object] = [first]
            for seq, idx, account, side, amount, unit, expires in chunk:
                if expires is None:
                    shape += (seq - first, idx, side, unit, True)
                    params += (account, amount)
                else:
                    shape += (seq - first, idx, side, unit, False)
                    params += (account, amount, expires)
            key = ("batch", *shape)
            sql = _POSTING_INSERTS.get(key)
            if sql is None:
                if len(_POSTING_INSERTS) > 256:
                    _POSTING_INSERTS.clear()
                sql = _POSTING_INSERTS[key] = _posting_rows_insert(tuple(shape))
            self._writer.execute(sql, params)

    def add_to_balances_at_once(self, deltas: dict[str, tuple[int, int, int, int]]) -> None:
        """`add_to_balances` in one statement for all accounts: for a batch, whose limits
        were checked entry by entry before (a CHECK that fires here undoes nothing).

        Raises:
            LimitBroken: a row would break its account's limit.
            BalanceOverflow: a column would pass `BALANCE_LIMIT`.
        """
        applied = 0
        cursor = self._writer
        try:
            if len(deltas) <= _CASE_ROWS and not any(d[2] or d[3] for d in deltas.values()):
                params: list[object] = []
                for account, (dp, cp, _, _) in deltas.items():
                    params += (account, dp, cp)
                sql = _batch_sql("posted", len(deltas), _posted_update)
                applied = cursor.execute(sql, params).rowcount
            else:
                items = [(account, *delta) for account, delta in deltas.items()]
                for start in range(0, len(items), _CHUNK):
                    chunk = items[start : start + _CHUNK]
                    sql = _batch_sql("balances", len(chunk), _balances_update)
                    params = [value for item in chunk for value in item]
                    applied += cursor.execute(sql, params).rowcount
        except sqlite3.IntegrityError as error:
            if "CHECK constraint failed" not in str(error):
                raise
            raise LimitBroken(str(error)) from error
        if applied != len(deltas):
            raise BalanceOverflow(
                f"a balance would pass {BALANCE_LIMIT}; nothing of this write was kept"
            )

    def insert_lots(self, rows: Sequence[tuple[str, int, int, int, int | None]]) -> None:
        """Insert new lots, (account, tx_seq, amount, earned_at, expires_at), in order."""
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            sql = _batch_sql("lots", tuple(row[4] is None for row in chunk), _lots_insert)
            params: list[object] = []
            for account, seq, amount, earned_at, expires in chunk:
                params += (account, seq, amount, amount, earned_at)
                if expires is not None:
                    params.append(expires)
            self._writer.execute(sql, params)

    def move_lots(self, moves: Sequence[tuple[int, int, int]]) -> None:
        """`move_lot` for many (tx_seq, lot_id, delta) moves: one UPDATE of the lots (each
        by the sum of its moves) and one INSERT of the moves."""
        totals: dict[int, int] = {}
        for _, lot_id, delta in moves:
            totals[lot_id] = totals.get(lot_id, 0) + delta
        lots = list(totals.items())
        if len(lots) == 1:  # the usual redemption: the plain update costs half the join
            lot_id, delta = lots[0]
            self._writer.execute(
                "UPDATE lots SET remaining = remaining + ? WHERE id = ?", (delta, lot_id)
            )
            lots = []
        for start in range(0, len(lots), _CHUNK):
            chunk = lots[start : start + _CHUNK]
            sql = _batch_sql("lot-updates", len(chunk), _lots_update)
            self._writer.execute(sql, [value for lot in chunk for value in lot])
        for start in range(0, len(moves), _CHUNK):
            chunk_moves = moves[start : start + _CHUNK]
            sql = _batch_sql("lot-moves", len(chunk_moves), _lot_moves_insert)
            self._writer.execute(sql, [value for move in chunk_moves for value in move])

    def append_outbox_rows(self, rows: Sequence[tuple[int, int, str]]) -> None:
        """Append outbox records, (tx_seq, created_at, payload), in order."""
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            sql = _batch_sql("outbox", len(chunk), _outbox_insert)
            self._writer.execute(sql, [value for row in chunk for value in row])
