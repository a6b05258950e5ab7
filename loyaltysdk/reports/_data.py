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

from .._errors import StorageError
from .._extras import require
from .._sale_record import is_head, record_from_head
from ..vouchers import VoucherTerms

REPORT_TABLES = (
    # One row per receipt record: a sale, or a refund or void with signed
    # figures naming the sale (`receipt`); `voided` marks a sale a void undid.
    "CREATE TABLE IF NOT EXISTS report_receipts (till TEXT NOT NULL, ref TEXT NOT NULL,"
    " type TEXT NOT NULL, receipt TEXT NOT NULL, member TEXT, store TEXT NOT NULL,"
    " day TEXT NOT NULL, hour INTEGER NOT NULL DEFAULT 0, weekday INTEGER NOT NULL DEFAULT 0,"
    " currency TEXT NOT NULL, total BIGINT NOT NULL, points_earned BIGINT NOT NULL DEFAULT 0,"
    " points_redeemed BIGINT NOT NULL DEFAULT 0, points_value BIGINT NOT NULL DEFAULT 0,"
    " voucher_value BIGINT NOT NULL DEFAULT 0, wallet BIGINT NOT NULL DEFAULT 0,"
    " card BIGINT NOT NULL DEFAULT 0, cash BIGINT NOT NULL DEFAULT 0, campaign TEXT,"
    " voided INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (till, ref))",
    "CREATE TABLE IF NOT EXISTS report_lines (till TEXT NOT NULL, ref TEXT NOT NULL,"
    " idx INTEGER NOT NULL, sku TEXT NOT NULL, category TEXT NOT NULL, brand TEXT NOT NULL,"
    " quantity BIGINT NOT NULL, unit_price BIGINT NOT NULL, discount BIGINT NOT NULL,"
    " points BIGINT NOT NULL, PRIMARY KEY (till, ref, idx))",
    "CREATE TABLE IF NOT EXISTS report_vouchers (till TEXT NOT NULL, ref TEXT NOT NULL,"
    " code TEXT NOT NULL, campaign TEXT NOT NULL, amount BIGINT NOT NULL,"
    " PRIMARY KEY (till, ref, code))",
    "CREATE TABLE IF NOT EXISTS report_members (member TEXT PRIMARY KEY, tier TEXT NOT NULL"
    " DEFAULT '', enrolled TEXT, store TEXT)",
    # Per campaign: vouchers issued and the value they grant (minor units, its currency).
    "CREATE TABLE IF NOT EXISTS report_campaigns (campaign TEXT PRIMARY KEY, issued BIGINT"
    " NOT NULL, value BIGINT NOT NULL DEFAULT 0, currency TEXT)",
)
#: On SQLite, covering indexes in the order the reports group by (one currency;
#: per store and member, per member, per store, day and hour): SQLite reads the
#: index alone and sorts nothing. PostgreSQL hashes its groups over a scan, so
#: there they would only slow the hub's ingest. The per-day index carries the
#: points too, for the liability (it replaces one without them: made once, on
#: the first open after an upgrade).
SQLITE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS report_receipts_store ON report_receipts"
    " (currency, store, member, day, type, voided, total)",
    "CREATE INDEX IF NOT EXISTS report_receipts_by_member ON report_receipts"
    " (currency, member, day, type, voided, total, points_redeemed, voucher_value)",
    "DROP INDEX IF EXISTS report_receipts_hours",
    "CREATE INDEX IF NOT EXISTS report_receipts_days ON report_receipts"
    " (currency, store, day, hour, type, voided, total, points_earned, points_redeemed)",
)
#: On PostgreSQL, one small index: which currencies there are and each one's first
#: and last day, read by a few index probes (`currencies`, `period`) instead of a
#: scan of every receipt, and a window with no receipts is found empty at once.
POSTGRES_INDEXES = (
    "CREATE INDEX IF NOT EXISTS report_receipts_currency_day ON report_receipts (currency, day)",
)
RECEIPT_COLUMNS = (
    "till",
    "ref",
    "type",
    "receipt",
    "member",
    "store",
    "day",
    "hour",
    "weekday",
    "currency",
    "total",
    "points_earned",
    "points_redeemed",
    "points_value",
    "voucher_value",
    "wallet",
    "card",
    "cash",
    "campaign",
    "voided",
)
LINE_COLUMNS = (
    "till",
    "ref",
    "idx",
    "sku",
    "category",
    "brand",
    "quantity",
    "unit_price",
    "discount",
    "points",
)
VOUCHER_COLUMNS = ("till", "ref", "code", "campaign", "amount")


def receipt_rows(
    record: dict[str, Any],
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A receipt record (checked by `loyaltysdk.sync.check_receipt`) as report rows."""
    till, ref = record["till"], record["ref"]
    tenders = record["tenders"]
    vouchers = tenders["vouchers"]
    campaign = next((v["campaign"] for v in vouchers if v["campaign"]), None)
    row = (
        till,
        ref,
        record["type"],
        record["receipt"],
        record["member"],
        record["store"],
        record["day"],
        record["hour"],
        date.fromisoformat(record["day"]).weekday(),
        record["currency"],
        record["total"],
        record["points_earned"],
        record["points_redeemed"],
        tenders["points"],
        sum(v["amount"] for v in vouchers),
        tenders["wallet"],
        tenders["card"],
        tenders["cash"],
        campaign,
        0,
    )
    lines = [
        (
            till,
            ref,
            index,
            line["sku"],
            line["category"],
            line["brand"],
            line["quantity"],
            line["unit_price"],
            line["discount"],
            line["points"],
        )
        for index, line in enumerate(record["lines"])
    ]
    merged: dict[str, list[Any]] = {}
    for v in vouchers:  # one voucher once a receipt, its parts summed
        merged.setdefault(v["code"], [v["campaign"], 0])[1] += v["amount"]
    return row, lines, [(till, ref, code, c, a) for code, (c, a) in merged.items()]


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
        # Reports scan whole tables: map the file, keep a large page cache, and
        # sort and group in memory rather than in temporary files.
        self.conn.execute("PRAGMA mmap_size = 4294967296")
        self.conn.execute("PRAGMA cache_size = -262144")
        self.conn.execute("PRAGMA temp_store = MEMORY")

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
        require("psycopg", extra="postgres", feature="reports on PostgreSQL")
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        # Reports group 100,000s of members: let the hash aggregates stay in memory
        # (the default 4 MB spills them to disk), for this session only.
        self.conn.execute("SET work_mem = '256MB'")

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
    indexes = SQLITE_INDEXES if db.dialect == "sqlite" else POSTGRES_INDEXES
    for statement in REPORT_TABLES + indexes:
        db.execute(statement)
    return db


Rows = list[tuple[Any, ...]]


def records_rows(
    records: Sequence[dict[str, Any]],
) -> tuple[Rows, Rows, Rows, list[tuple[str, str]]]:
    """Receipt records as report rows (receipts, lines, vouchers) and the sales voids undo."""
    receipts: Rows = []
    lines: Rows = []
    vouchers: Rows = []
    voided: list[tuple[str, str]] = []
    for record in records:
        row, its_lines, its_vouchers = receipt_rows(record)
        receipts.append(row)
        lines.extend(its_lines)
        vouchers.extend(its_vouchers)
        if record["type"] == "void":
            voided.append((record["till"], record["receipt"]))
    return receipts, lines, vouchers, voided


def load_records(db: SQLiteDb | PostgresDb, records: Sequence[dict[str, Any]]) -> int:
    """File receipt records in the report tables (a till's own, or any others); returns how many.

    A void marks the sale it undoes (`voided`): its figures and the void's
    net to zero, and the sale is no visit.
    """
    receipts, lines, vouchers, voided = records_rows(records)
    db.insert("report_receipts", RECEIPT_COLUMNS, receipts)
    db.insert("report_lines", LINE_COLUMNS, lines)
    db.insert("report_vouchers", VOUCHER_COLUMNS, vouchers)
    mark_voided(db, voided)
    return len(receipts)


def mark_voided(db: Any, sales: Sequence[tuple[str, str]]) -> None:
    """Mark sales that a void undid (`db` is a report `Db` or a hub store)."""
    for till, ref in sales:
        db.execute(
            "UPDATE report_receipts SET voided = 1 WHERE till = ? AND ref = ? AND type = 'sale'",
            (till, ref),
        )


def load_from_till(db: SQLiteDb) -> int:
    """Fill the report tables from a till's own file: its receipt records and members."""
    # A sale's event holds its record's head; the rest is its receipt row (_sale_record).
    records = []
    for payload, plan, receipt in db.query(
        "SELECT e.payload, r.plan, r.receipt FROM till_events AS e"
        " LEFT JOIN till_receipts AS r"
        " ON json_extract(e.payload, '$.stored_in') = 'till_receipts'"
        " AND r.ref = json_extract(e.payload, '$.ref')"
        " WHERE e.kind = 'receipt' ORDER BY e.seq"
    ):
        record = json.loads(payload)
        if is_head(record):
            if plan is None:  # written in one commit with its head: the file was altered
                raise StorageError(f"receipt {record['ref']}: its event has no receipt row")
            record = record_from_head(record, json.loads(plan), json.loads(receipt))
        records.append(record)
    for table in ("report_receipts", "report_lines", "report_vouchers"):
        db.execute(f"DELETE FROM {table}")  # noqa: S608 - a load replaces what it loaded
    loaded = load_records(db, records)
    store = records[0]["store"] if records else None
    members = db.query("SELECT id, tier, substr(enrolled_at, 1, 10) FROM till_members")
    db.insert(
        "report_members",
        ("member", "tier", "enrolled", "store"),
        [(m, tier, day, store) for m, tier, day in members],
    )
    return loaded


def load_from_hub(db: SQLiteDb | PostgresDb) -> int:
    """Bring a hub's member directory and campaigns into the report tables.

    The hub files every receipt record in `report_receipts` as it arrives,
    so only members (tier, enrolment day and store) and the campaigns of the
    vouchers head office published are refreshed here. Returns receipts held.
    """
    db.execute("DELETE FROM report_members")
    db.execute(
        "INSERT INTO report_members (member, tier, enrolled, store)"
        " SELECT id, tier, substr(coalesce(enrolled_at, ''), 1, 10), store FROM hub_members"
    )
    issued: dict[str, list[Any]] = {}
    for (payload,) in db.query("SELECT payload FROM hub_updates WHERE kind = 'vouchers'"):
        for data in json.loads(payload).get("terms", []):
            terms = VoucherTerms.from_json(data)  # checked at publish
            if terms.campaign:
                entry = issued.setdefault(terms.campaign, [0, 0, terms.currency])
                entry[0] += 1
                entry[1] += terms.amount if terms.kind == "value" else 0
    db.execute("DELETE FROM report_campaigns")
    db.insert(
        "report_campaigns",
        ("campaign", "issued", "value", "currency"),
        [(c, n, v, cur) for c, (n, v, cur) in sorted(issued.items())],
    )
    return int(db.query("SELECT count(*) FROM report_receipts")[0][0])


def generate(
    db: SQLiteDb | PostgresDb,
    *,
    receipts: int,
    members: int,
    stores: int = 20,
    days: int = 365,
    seed: int = 1,
    end: date = date(2026, 11, 22),
    lines: int = 1,
    currencies: Sequence[str] = ("EUR",),
) -> None:
    """Synthetic receipt records with a Pareto-shaped spend, for demos, tests and the benchmark.

    About one sale in seven is anonymous, 3 % use a campaign's voucher, 2 %
    are partly refunded and 1 % voided; store ``n`` sells in
    ``currencies[n % len(currencies)]``. Filed through `load_records`, as a
    hub files what tills send.
    """
    rng = random.Random(seed)
    start = end - timedelta(days=days - 1)
    tiers = ["Silver"] * 8 + ["Gold", "VIP"]
    db.insert(
        "report_members",
        ("member", "tier", "enrolled", "store"),
        [
            (f"M-{m:06d}", rng.choice(tiers), start.isoformat(), f"S{m % stores:03d}")
            for m in range(members)
        ],
    )
    campaigns = ["XMAS", "SPRING", "SUMMER"]
    db.insert(
        "report_campaigns",
        ("campaign", "issued", "value", "currency"),
        [
            (c, max(1, receipts // 50), 500 * max(1, receipts // 50), currencies[0])
            for c in campaigns
        ],
    )
    batch: list[dict[str, Any]] = []
    for record in generated_records(
        rng, receipts, members, stores, start, days, lines, currencies, campaigns
    ):
        batch.append(record)
        if len(batch) == 20_000:
            load_records(db, batch)
            batch.clear()
    if batch:
        load_records(db, batch)


def generated_records(
    rng: random.Random,
    receipts: int,
    members: int,
    stores: int,
    start: date,
    days: int,
    lines: int,
    currencies: Sequence[str],
    campaigns: Sequence[str],
) -> Iterator[dict[str, Any]]:
    """The receipt records `generate` files: members keep to a home store four times in five."""
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(members)]
    hours = list(range(8, 22))
    hour_weights = [1, 2, 3, 4, 6, 5, 4, 4, 5, 7, 8, 6, 3, 1]
    chosen = rng.choices(range(members), weights, k=receipts)
    for n, m in enumerate(chosen):
        store = m % stores if rng.random() < 0.8 else rng.randrange(stores)
        currency = currencies[store % len(currencies)]
        member = f"M-{m:06d}" if rng.random() < 6 / 7 else None
        day = start + timedelta(days=rng.randrange(days))
        hour = rng.choices(hours, hour_weights)[0]
        prices = [max(1, int(rng.lognormvariate(7.6, 0.8)) // lines) for _ in range(lines)]
        total = sum(prices)
        earned = total // 100 if member else 0
        voucher = member is not None and rng.random() < 0.03
        sale: dict[str, Any] = {
            "v": 1,
            "type": "sale",
            "ref": f"R-{n:08d}",
            "receipt": f"R-{n:08d}",
            "store": f"S{store:03d}",
            "till": f"S{store:03d}-T1",
            "at": f"{day.isoformat()}T{hour:02d}:30:00+00:00",
            "day": day.isoformat(),
            "hour": hour,
            "member": member,
            "currency": currency,
            "total": total,
            "lines": [
                {
                    "sku": f"SKU-{rng.randrange(500):03d}",
                    "category": rng.choice(("food", "drink", "home", "beauty")),
                    "brand": rng.choice(("A", "B", "C")),
                    "quantity": 1,
                    "unit_price": price,
                    "discount": 0,
                    "points": price // 100 if member else 0,
                }
                for price in prices
            ],
            "points_earned": earned,
            "points_redeemed": rng.choice((0,) * 12 + (100, 250)) if member else 0,
            "tenders": {
                "points": 0,
                "vouchers": [
                    {"code": f"V{n:08d}", "campaign": rng.choice(campaigns), "amount": 500}
                ]
                if voucher
                else [],
                "wallet": 0,
                "card": 0,
                "cash": max(0, total - (500 if voucher else 0)),
            },
        }
        yield sale
        undo = rng.random()
        if undo < 0.03:
            void = undo < 0.01
            back = sale["lines"] if void else sale["lines"][:1]
            amount = sum(line["unit_price"] for line in back)
            yield {
                **sale,
                "type": "void" if void else "refund",
                "ref": f"{'void:' if void else 'F-'}{sale['ref']}",
                "total": -amount,
                "lines": [{**line, "quantity": -1, "points": -line["points"]} for line in back],
                "points_earned": -(earned if void else back[0]["points"]),
                "points_redeemed": -sale["points_redeemed"] if void else 0,
                "tenders": {
                    "points": 0,
                    "vouchers": [],
                    "wallet": 0,
                    "card": 0,
                    "cash": -amount,
                },
            }
