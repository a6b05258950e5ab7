# SPDX-License-Identifier: Apache-2.0
"""The reporting tables: one row per receipt, per member, per campaign.

Reports read three plain tables, so the same SQL runs on a till's SQLite
file, a hub's SQLite file and a hub's PostgreSQL database:

- ``report_receipts``: receipt, member, store, local day, total (minor
  units), points earned and redeemed, voucher value and campaign;
- ``report_members``: member, tier, enrolment day;
- ``report_campaigns``: campaign, vouchers issued.

Loaders fill them from a till (`load_from_till`), from a hub's entries
(`load_from_hub`: the earn memos of member sales), or with synthetic data
(`generate`, the demo generator the benchmark uses).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any, Protocol

REPORT_TABLES = (
    "CREATE TABLE IF NOT EXISTS report_receipts (receipt TEXT PRIMARY KEY, member TEXT,"
    " store TEXT NOT NULL, day TEXT NOT NULL, total BIGINT NOT NULL, points_earned BIGINT"
    " NOT NULL DEFAULT 0, points_redeemed BIGINT NOT NULL DEFAULT 0, voucher_value BIGINT"
    " NOT NULL DEFAULT 0, campaign TEXT)",
    "CREATE TABLE IF NOT EXISTS report_members (member TEXT PRIMARY KEY, tier TEXT NOT NULL"
    " DEFAULT '', enrolled TEXT)",
    "CREATE TABLE IF NOT EXISTS report_campaigns (campaign TEXT PRIMARY KEY, issued BIGINT"
    " NOT NULL)",
    "CREATE INDEX IF NOT EXISTS report_receipts_member ON report_receipts (member, day)",
    # Covering index for the per-store reports: they group by store and member.
    "CREATE INDEX IF NOT EXISTS report_receipts_store ON report_receipts"
    " (store, member, day, total)",
)


class Db(Protocol):
    """What reports need of a connection: SQL with ? placeholders and rows back."""

    dialect: str

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...


class SQLiteDb:
    """Reports on a SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(args)).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self.conn:
            self.conn.execute(sql, tuple(args))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join("?" * len(columns))
        with self.conn:
            self.conn.executemany(
                f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                rows,
            )

    def close(self) -> None:
        self.conn.close()


class PostgresDb:
    """Reports on a PostgreSQL database (psycopg 3)."""

    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql.replace("?", "%s"), tuple(args)).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self.conn.execute(sql.replace("?", "%s"), tuple(args))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        with (
            self.conn.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        self.conn.close()


def connect(url: str) -> SQLiteDb | PostgresDb:
    """A SQLite path (or ``sqlite:///path``) or a ``postgresql://`` URL, with the tables made."""
    db: SQLiteDb | PostgresDb
    if url.startswith(("postgresql://", "postgres://")) or url.startswith("host="):
        db = PostgresDb(url)
    else:
        db = SQLiteDb(url.removeprefix("sqlite:///"))
    for statement in REPORT_TABLES:
        db.execute(statement)
    return db


RECEIPT_COLUMNS = (
    "receipt",
    "member",
    "store",
    "day",
    "total",
    "points_earned",
    "points_redeemed",
    "voucher_value",
    "campaign",
)


def load_from_till(db: SQLiteDb, *, store: str | None = None) -> int:
    """Fill the report tables from a till's own tables (same file). Returns receipts loaded."""
    rows = []
    for ref, receipt_text, day in db.query(
        "SELECT ref, receipt, local_date FROM till_receipts WHERE status = 'completed'"
    ):
        receipt = json.loads(receipt_text)
        vouchers = sum(v["amount"] for v in receipt["vouchers"])
        rows.append(
            (
                ref,
                receipt["member"],
                store or "",
                day,
                receipt["total"],
                receipt["points_earned"],
                receipt["points_redeemed"],
                vouchers,
                None,
            )
        )
    db.insert("report_receipts", RECEIPT_COLUMNS, rows)
    members = db.query("SELECT id, tier, substr(enrolled_at, 1, 10) FROM till_members")
    db.insert("report_members", ("member", "tier", "enrolled"), members)
    return len(rows)


def load_from_hub(db: SQLiteDb | PostgresDb) -> int:
    """Fill the report tables from a hub's entries: the earn memos of member sales."""
    rows = []
    for till, memo in db.query(
        "SELECT till, memo FROM hub_entries WHERE kind = 'transfer' AND key LIKE 'r:%:earn'"
    ):
        data = json.loads(memo or "{}")
        if "total" not in data:
            continue
        rows.append(
            (
                f"{till}/{data['receipt']}",
                data.get("member"),
                data.get("store", till),
                data.get("day", ""),
                data["total"],
                data.get("earned", 0),
                data.get("redeemed", 0),
                data.get("vouchers", 0),
                None,
            )
        )
    if rows:
        db.insert("report_receipts", RECEIPT_COLUMNS, rows)
    return len(rows)


def generate(
    db: SQLiteDb | PostgresDb,
    *,
    receipts: int,
    members: int,
    stores: int = 20,
    days: int = 365,
    seed: int = 1,
    end: date = date(2026, 11, 22),
) -> None:
    """Synthetic receipts with a Pareto-shaped spend, for demos and the benchmark."""
    rng = random.Random(seed)
    start = end - timedelta(days=days - 1)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(members)]
    tiers = ["Silver"] * 8 + ["Gold", "VIP"]
    db.insert(
        "report_members",
        ("member", "tier", "enrolled"),
        [(f"M-{m:06d}", rng.choice(tiers), start.isoformat()) for m in range(members)],
    )
    campaigns = ["XMAS", "SPRING", "SUMMER"]
    db.insert("report_campaigns", ("campaign", "issued"), [(c, receipts // 50) for c in campaigns])

    def rows() -> Iterator[tuple[Any, ...]]:
        chosen = rng.choices(range(members), weights, k=receipts)
        for n, m in enumerate(chosen):
            total = int(rng.lognormvariate(7.6, 0.8))
            voucher = rng.random() < 0.03
            yield (
                f"R-{n:08d}",
                f"M-{m:06d}",
                f"S{rng.randrange(stores):03d}",
                (start + timedelta(days=rng.randrange(days))).isoformat(),
                total,
                total // 100,
                rng.choice((0,) * 12 + (100, 250)),
                500 if voucher else 0,
                rng.choice(campaigns) if voucher else None,
            )

    batch: list[tuple[Any, ...]] = []
    for row in rows():
        batch.append(row)
        if len(batch) == 50_000:
            db.insert("report_receipts", RECEIPT_COLUMNS, batch)
            batch.clear()
    if batch:
        db.insert("report_receipts", RECEIPT_COLUMNS, batch)
