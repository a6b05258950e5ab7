# SPDX-License-Identifier: Apache-2.0
"""The hub's storage: one schema, on SQLite (a single site) or PostgreSQL (a chain).

Both speak DB-API; the SQL is written once with ``?`` placeholders and
translated for psycopg. Exactly-once ingest rests on the primary key
``(till, seq)`` of `hub_entries`, kept forever, and on a per-till row lock
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so
several hub processes can ingest for the same database at once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol

from .._errors import HubError
from .._extras import require
from .._json import compact
from ..reports import POSTGRES_INDEXES, REPORT_TABLES, SQLITE_INDEXES

_TABLES = """
CREATE TABLE IF NOT EXISTS hub_tills (
    id TEXT PRIMARY KEY, secret_hash TEXT, enrol_hash TEXT NOT NULL,
    registered_at TEXT, acked BIGINT NOT NULL DEFAULT 0
);
-- Each till's last contact: when its sync last reached the hub, and the newest
-- outbox record it said it holds (what the hub has not yet acknowledged is lag).
CREATE TABLE IF NOT EXISTS hub_till_contact (
    till TEXT PRIMARY KEY, last_sync BIGINT NOT NULL, head BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS hub_entries (
    till TEXT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL,
    at BIGINT NOT NULL, memo TEXT, payload TEXT NOT NULL, PRIMARY KEY (till, seq)
);
-- Holds a post, void or expiry closed, and records a reversal undid: once each.
CREATE TABLE IF NOT EXISTS hub_closed (
    till TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY (till, ref)
);
CREATE INDEX IF NOT EXISTS hub_entries_key ON hub_entries (till, key);
CREATE TABLE IF NOT EXISTS hub_held (
    till TEXT NOT NULL, seq BIGINT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (till, seq)
);
CREATE TABLE IF NOT EXISTS hub_balances (
    account TEXT PRIMARY KEY, unit TEXT NOT NULL,
    debits BIGINT NOT NULL DEFAULT 0, credits BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS hub_voucher_uses (
    code TEXT NOT NULL, till TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (code, till, seq)
);
CREATE TABLE IF NOT EXISTS hub_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hub_admins (token_hash TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hub_lots (
    account TEXT NOT NULL, till TEXT NOT NULL, seq BIGINT NOT NULL, idx INTEGER NOT NULL,
    earned_at BIGINT NOT NULL, expires_at BIGINT, remaining BIGINT NOT NULL,
    PRIMARY KEY (account, till, seq, idx)
);
CREATE INDEX IF NOT EXISTS hub_lots_open ON hub_lots (account, earned_at) WHERE remaining > 0;
-- A second index on (till, key) that earlier versions made: every entry paid for it twice.
DROP INDEX IF EXISTS hub_entries_by_key;
CREATE TABLE IF NOT EXISTS hub_till_events (
    till TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (till, seq)
);
CREATE TABLE IF NOT EXISTS hub_event_cursors (till TEXT PRIMARY KEY, acked BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS hub_members (
    id TEXT PRIMARY KEY, tier TEXT NOT NULL DEFAULT '', segments TEXT NOT NULL DEFAULT '[]',
    birthday TEXT, store TEXT, enrolled_at TEXT
);
CREATE TABLE IF NOT EXISTS hub_cards (
    uid TEXT PRIMARY KEY, member TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_sun (uid TEXT PRIMARY KEY, counter BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS hub_member_days (
    member TEXT NOT NULL, day TEXT NOT NULL, spend BIGINT NOT NULL DEFAULT 0,
    points BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (member, day)
);
CREATE TABLE IF NOT EXISTS hub_holds (
    id TEXT PRIMARY KEY, till TEXT NOT NULL, account TEXT NOT NULL, unit TEXT NOT NULL,
    amount BIGINT NOT NULL, status TEXT NOT NULL, expires_at BIGINT NOT NULL
);
"""
_SERIAL_TABLES = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS hub_exceptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, till TEXT NOT NULL, seq BIGINT NOT NULL,
    kind TEXT NOT NULL, account TEXT, amount BIGINT NOT NULL DEFAULT 0, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_updates (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL,
    at TEXT NOT NULL
);
""",
    "postgres": """
CREATE TABLE IF NOT EXISTS hub_exceptions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, till TEXT NOT NULL, seq BIGINT NOT NULL,
    kind TEXT NOT NULL, account TEXT, amount BIGINT NOT NULL DEFAULT 0, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_updates (
    cursor BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind TEXT NOT NULL,
    payload TEXT NOT NULL, at TEXT NOT NULL
);
""",
}


#: Adding to a balance row: the ON CONFLICT clause of every balance write.
_ADD = (
    "ON CONFLICT (account) DO UPDATE SET debits = hub_balances.debits + excluded.debits,"
    " credits = hub_balances.credits + excluded.credits"
)


class DuplicateRows(HubError):
    """Rows whose key a table holds already (a primary key refused them)."""


class HubStore(Protocol):
    """What the hub needs from storage: transactions, and SQL with ? placeholders."""

    dialect: str

    def transaction(self, *, lock_till: str | None = None) -> Any: ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def defer(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run a statement whose result nobody reads, in order with the others.

        Inside a transaction on PostgreSQL it is sent with the next statement
        or the COMMIT (one round trip fewer); a failure still rolls the whole
        transaction back. SQLite runs it at once.
        """
        ...

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], on_conflict: str
    ) -> None:
        """INSERT many rows with an ON CONFLICT clause, as fast as the database allows."""
        ...

    def overdrawn(self, accounts: Sequence[str]) -> dict[str, int]:
        """Of these accounts, those with more debits than credits, and by how much."""
        ...

    def add_balances(
        self, deltas: Sequence[tuple[str, str, int, int]]
    ) -> dict[str, tuple[str, int, int]]:
        """Add `(account, unit, debits, credits)` to the balances (a new account takes the unit).

        Returns the accounts to look at, with their stored unit and their
        debits and credits after the add: those stored in another unit than
        the one given, and those with more debits than credits (usually a
        few system accounts: nothing else crosses the wire). The rows stay
        locked until the transaction ends, so what is returned is what the
        transaction commits.
        """
        ...

    def lock_accounts(self, accounts: Sequence[str]) -> None:
        """Inside a transaction: hold these balance rows until it ends (checks then writes)."""
        ...

    def units(self, accounts: Sequence[str]) -> dict[str, str]:
        """Of these accounts, those the hub has, and their units."""
        ...

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Append rows, the fastest way the database has (COPY), as `rows` yields them.

        Raises:
            DuplicateRows: a row's key is there already (the caller's transaction
                must then roll back: on PostgreSQL it is aborted).
        """
        ...

    def close(self) -> None: ...


class SQLiteHubStore:
    """The hub on one SQLite file (WAL; one writer at a time, serialised here)."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.RLock()
        self._depth = 0
        # The hub's own tables, and the report tables it files receipt records in.
        for statement in (
            *(_TABLES + _SERIAL_TABLES["sqlite"]).split(";"),
            *REPORT_TABLES,
            *SQLITE_INDEXES,
        ):
            if statement.strip():
                self._conn.execute(statement)

    @contextmanager
    def transaction(self, *, lock_till: str | None = None) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            self._conn.executemany(sql, rows)

    def defer(self, sql: str, args: Sequence[Any] = ()) -> None:
        self.execute(sql, args)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], on_conflict: str
    ) -> None:
        marks = ", ".join("?" * len(columns))
        self.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {on_conflict}", rows
        )

    def lock_accounts(self, accounts: Sequence[str]) -> None:
        # BEGIN IMMEDIATE already serialises every writer on the file.
        return

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        marks = ", ".join("?" * len(columns))
        try:
            with self._lock:
                self._conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                )
        except sqlite3.IntegrityError as error:
            raise DuplicateRows(f"{table}: {error}") from None

    def units(self, accounts: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(accounts), 500):
            chunk = list(accounts[start : start + 500])
            marks = ",".join("?" * len(chunk))
            out.update(
                self.execute(
                    f"SELECT account, unit FROM hub_balances WHERE account IN ({marks})", chunk
                )
            )
        return out

    def overdrawn(self, accounts: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(accounts), 500):
            chunk = list(accounts[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for account, deficit in self.execute(
                f"SELECT account, debits - credits FROM hub_balances"
                f" WHERE account IN ({marks}) AND debits > credits",
                chunk,
            ):
                out[account] = int(deficit)
        return out

    def add_balances(
        self, deltas: Sequence[tuple[str, str, int, int]]
    ) -> dict[str, tuple[str, int, int]]:
        self.insert_rows("hub_balances", ("account", "unit", "debits", "credits"), deltas, _ADD)
        out: dict[str, tuple[str, int, int]] = {}
        given = {row[0]: row[1] for row in deltas}
        accounts = list(given)
        for start in range(0, len(accounts), 500):
            chunk = accounts[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for account, unit, debits, credits in self.execute(
                f"SELECT account, unit, debits, credits FROM hub_balances"
                f" WHERE account IN ({marks})",
                chunk,
            ):
                if unit != given[account] or debits > credits:
                    out[account] = (unit, int(debits), int(credits))
        return out

    def close(self) -> None:
        self._conn.close()


class PostgresHubStore:
    """The hub on PostgreSQL (psycopg 3); several hub processes may share the database."""

    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        require("psycopg", extra="postgres", feature="a hub on PostgreSQL")
        import psycopg

        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as error:
            raise HubError(f"cannot connect to PostgreSQL: {error}") from error
        self._lock = threading.RLock()
        self._depth = 0
        # Statements not sent yet (`transaction`, `defer`), and whether BEGIN went out.
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._begun = False
        with self._conn.transaction():
            # Serialise concurrent schema creation by several hub processes.
            self._conn.execute("SELECT pg_advisory_xact_lock(727274)")
            for statement in (
                *(_TABLES + _SERIAL_TABLES["postgres"]).split(";"),
                *REPORT_TABLES,
                *POSTGRES_INDEXES,
            ):
                if statement.strip():
                    self._conn.execute(statement)
            # Every batch rewrites its accounts' balance rows: room left in each
            # page lets the new row versions stay on it (HOT updates: no new
            # index entry, less WAL). It applies to pages written from now on.
            self._conn.execute("ALTER TABLE hub_balances SET (fillfactor = 70)")

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def transaction(self, *, lock_till: str | None = None) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            # BEGIN and the till's lock are sent with the transaction's first
            # statement, in one round trip (pipeline mode): a push used to wait
            # for each of them before its first read.
            self._pending = [("BEGIN", ())]
            self._begun = False
            if lock_till is not None:
                # One ingest per till at a time, across hub processes.
                self._pending.append(
                    ("SELECT 1 FROM hub_tills WHERE id = %s FOR UPDATE", (lock_till,))
                )
            try:
                yield
                # Statements deferred to the end go out with the COMMIT: one round trip.
                self._send(("COMMIT", ()))
            except BaseException:
                self._pending = []
                if self._begun and not self._conn.closed:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
                self._pending = []
                self._begun = False

    def _send(self, last: tuple[str, tuple[Any, ...]] | None = None) -> Any:
        """Send the pending statements (and `last`) in one round trip; `last`'s cursor."""
        pending, self._pending = self._pending, []
        if last is not None:
            pending.append(last)
        if not pending:
            return None
        self._begun = True
        if len(pending) == 1:
            # A BEGIN or COMMIT alone: a simple query, as psycopg's own transactions send it.
            sql, args = pending[0]
            return self._conn.execute(sql, args or None, prepare=False)
        with self._conn.pipeline():
            for sql, args in pending:
                cursor = self._conn.execute(sql, args)
        return cursor

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._pending:
                cursor = self._send((self._sql(sql), tuple(args)))
            else:
                cursor = self._conn.execute(self._sql(sql), tuple(args))
            return cursor.fetchall() if cursor.description else []

    def defer(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self._lock:
            if self._depth:
                # Its result is not read: it goes out with the next statement
                # or the COMMIT (a failure then still rolls the whole transaction back).
                self._pending.append((self._sql(sql), tuple(args)))
            else:
                self._conn.execute(self._sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock, self._conn.cursor() as cursor:
            self._send()
            cursor.executemany(self._sql(sql), rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], on_conflict: str
    ) -> None:
        # COPY into a temporary table, then one set-based INSERT ... SELECT:
        # per-row parameter binding was four fifths of ingest time here.
        if not rows:
            return
        stage = f"stage_{table}"
        names = ", ".join(columns)
        with self._lock:
            self._send()  # COPY cannot join a pipeline: what waits goes first
            self._conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS"
                f" SELECT {names} FROM {table} WITH NO DATA"
            )
            self._conn.execute(f"TRUNCATE {stage}")
            with (
                self._conn.cursor() as cursor,
                cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            self._conn.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {on_conflict}"
            )

    def overdrawn(self, accounts: Sequence[str]) -> dict[str, int]:
        # One array parameter instead of thousands of placeholders.
        rows = self.execute(
            "SELECT account, debits - credits FROM hub_balances"
            " WHERE account = ANY(?) AND debits > credits",
            (list(accounts),),
        )
        return {account: int(deficit) for account, deficit in rows}

    def units(self, accounts: Sequence[str]) -> dict[str, str]:
        rows = self.execute(
            "SELECT account, unit FROM hub_balances WHERE account = ANY(?)", (list(accounts),)
        )
        return dict(rows)

    def add_balances(
        self, deltas: Sequence[tuple[str, str, int, int]]
    ) -> dict[str, tuple[str, int, int]]:
        # One statement, its rows as one JSON parameter (psycopg dumps a list
        # parameter element by element in Python: five times the CPU; orjson
        # writes the text in a tenth of the standard encoder's instructions), no
        # staging table, and the totals come back from the rows it wrote (no
        # second read), only those to look at (a batch of 500 sales moves
        # 1,000 accounts, and fetching every row was a tenth of the client's
        # work). Rows are taken in the order given (sorted by the caller), so
        # two ingests moving the same accounts lock them in one order and
        # never deadlock.
        if not deltas:
            return {}
        # A row stored in another unit is left as it is (and not returned); the
        # count of rows written tells whether there was one, and only then
        # are the units read (the push is refused: it rolls back).
        rows = self.execute(
            "WITH added AS (INSERT INTO hub_balances (account, unit, debits, credits)"
            " SELECT d->>0, d->>1, (d->>2)::bigint, (d->>3)::bigint"
            " FROM json_array_elements(?::json) AS d"
            f" {_ADD} WHERE hub_balances.unit = excluded.unit"
            " RETURNING account, unit, debits, credits)"
            " SELECT account, unit, debits, credits FROM added WHERE debits > credits"
            " UNION ALL SELECT NULL, NULL, count(*), NULL FROM added",
            (compact(deltas),),
        )
        written = next(int(d) for account, _, d, _ in rows if account is None)
        out = {
            account: (unit, int(d), int(c)) for account, unit, d, c in rows if account is not None
        }
        if written < len(deltas):
            given = {row[0]: row[1] for row in deltas}
            for account, unit, d, c in self.execute(
                "SELECT account, unit, debits, credits FROM hub_balances WHERE account = ANY(?)",
                (list(given),),
            ):
                if unit != given[account]:
                    out[account] = (unit, int(d), int(c))
        return out

    def lock_accounts(self, accounts: Sequence[str]) -> None:
        # Row locks in one order, so two hub processes checking holds on the
        # same accounts wait for each other instead of both reading the same
        # available balance (and so never deadlock).
        self.execute(
            "SELECT account FROM hub_balances WHERE account = ANY(?) ORDER BY account FOR UPDATE",
            (sorted(accounts),),
        )

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """COPY rows into a table (receipt records, bulk loads, benchmark baselines)."""
        import psycopg

        try:
            with self._lock, self._conn.cursor() as cursor:
                self._send()  # COPY cannot join a pipeline: what waits goes first
                copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with cursor.copy(copy_sql) as copy:
                    _copy_text(copy, rows, len(columns))
        except psycopg.errors.UniqueViolation as error:
            raise DuplicateRows(f"{table}: {error}") from None

    def close(self) -> None:
        self._conn.close()


#: What COPY's text format escapes in a value (`_copy_text`).
_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
#: Text lines sent to the server at a time: about 32 KB of ingest's entries.
_COPY_CHUNK: Final = 96


def _copy_text(copy: Any, rows: Iterable[Sequence[Any]], width: int) -> None:
    """Write `rows` to a COPY in its text format, in chunks as they come.

    Text, integers and None are written as lines built here (psycopg's
    per-value formatting was a tenth of ingest's client instructions); a
    chunk is checked once for what would need escaping (a tab, line break or
    backslash inside a value), and only such a chunk is built again with
    escapes. From the first row holding any other value on, psycopg formats.
    """
    lines: list[str] = []
    chunk: list[Sequence[Any]] = []
    nulls = 0
    items = iter(rows)
    for row in items:
        fields = []
        for value in row:
            kind = type(value)
            if kind is str:
                fields.append(value)
            elif kind is int:
                fields.append(str(value))
            elif value is None:
                fields.append("\\N")
                nulls += 1
            else:
                break
        else:
            lines.append("\t".join(fields))
            chunk.append(row)
            if len(chunk) == _COPY_CHUNK:
                copy.write(_copy_chunk(lines, chunk, nulls, width))
                lines, chunk, nulls = [], [], 0
            continue
        # A value of another type: psycopg formats this row and the rest.
        if chunk:
            copy.write(_copy_chunk(lines, chunk, nulls, width))
        copy.write_row(row)
        for row in items:
            copy.write_row(row)
        return
    if chunk:
        copy.write(_copy_chunk(lines, chunk, nulls, width))


def _copy_chunk(lines: list[str], rows: list[Sequence[Any]], nulls: int, width: int) -> str:
    text = "\n".join(lines) + "\n"
    # Only the separators and the NULL markers: no value needs an escape.
    if (
        text.count("\t") == len(rows) * (width - 1)
        and text.count("\n") == len(rows)
        and text.count("\\") == nulls
        and "\r" not in text
    ):
        return text
    return "".join(
        "\t".join(
            "\\N"
            if value is None
            else value.translate(_COPY_ESCAPES)
            if type(value) is str
            else str(value)
            for value in row
        )
        + "\n"
        for row in rows
    )


def open_store(url: str) -> HubStore:
    """``sqlite:///path/hub.db`` (or a bare path) or ``postgresql://...``."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresHubStore(url)
    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SQLiteHubStore(path)
