# SPDX-License-Identifier: Apache-2.0
"""Hub ingest on PostgreSQL against raw COPY of the same rows, in one run.

Tills' outbox records (a purchase: 4 postings, a wallet payment and the
points it earns) are pushed in batches of 500 through `Hub.push`
(exactly-once dedupe, checks, balances, lots, overdraft detection). The
members' wallets are funded first, by a till's top-ups, so no record
overdraws and no exception is written: the figure is the usual case.

The baseline COPYs, in one transaction per batch, the rows ingest wrote
into tables of the same shapes and indexes: every table whose row counts
went up during ingest (entries, lots, balance rows: one per account a
batch moves), as many rows each. Balance rows are appended to a table
without the primary key (COPY cannot upsert), with an index on the
account instead. Both print what they wrote, statements, round trips,
commits, WAL bytes and CPU per transaction.

Also: replaying an all-duplicate batch, and how long 100 tills (quick: 10)
with 10,000 (quick: 1,000) offline records each take to converge once a
partition heals. Targets: ingest at least 0.5 of COPY and at least 20,000
transactions per second; duplicate replay at least twice as fast as new
ingest.

    python bench/hub_ingest.py          # quick
    python bench/hub_ingest.py --full   # 100 tills x 10,000 records
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from typing import Any

import psycopg
from _common import parse_args, result
from _measure import PgCounter, counting, parse_phase, window_instructions

from loyaltysdk.hub import Hub, PostgresHubStore

DSN = os.environ.get("LOYALTY_BENCH_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
BATCH = 500
MEMBERS = 5_000
#: What a top-up puts in each wallet: more than the full run spends from one.
FUNDS = 10_000_000


def record(till: str, n: int) -> str:
    member = f"member:M-{n % MEMBERS}"
    return json.dumps(
        {
            "v": 1,
            "origin": till,
            "key": f"{till}-R{n}",
            "kind": "transfer",
            "ref": None,
            "at": 1_795_000_000_000_000 + n,
            "expires_at": None,
            "memo": None,
            "postings": [
                [f"{member}:wallet:EUR", "D", 1_000 + n % 500, "EUR", None],
                ["sys:sales:EUR", "C", 1_000 + n % 500, "EUR", None],
                ["sys:points:issued", "D", 10, "PTS", None],
                [f"{member}:points", "C", 10, "PTS", None],
            ],
        },
        separators=(",", ":"),
    )


def top_up(n: int) -> str:
    """A till's wallet top-up: cash in, the member's wallet credited."""
    return json.dumps(
        {
            "v": 1,
            "origin": "FUND",
            "key": f"FUND-T{n}",
            "kind": "transfer",
            "ref": None,
            "at": 1_794_000_000_000_000 + n,
            "expires_at": None,
            "memo": None,
            "postings": [
                ["sys:cash:EUR", "D", FUNDS, "EUR", None],
                [f"member:M-{n}:wallet:EUR", "C", FUNDS, "EUR", None],
            ],
        },
        separators=(",", ":"),
    )


def push_all(hub: Hub, till: str, rows: list[tuple[int, str]]) -> None:
    for i in range(0, len(rows), BATCH):
        hub.push(till, rows[i : i + BATCH])


def copy_baseline(
    store: PostgresHubStore, conn: Any, schema: str, count: int, written: dict[str, Any]
) -> tuple[float, PgCounter]:
    """COPY as many rows as ingest wrote into each table it wrote, one commit per batch."""
    batches = -(-count // BATCH)
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for table, moved in sorted(written.items()):
        if table.startswith("hub_tills") or table == "hub_till_contact":
            continue  # one cursor row and one contact row, updated once per batch: below
        columns = _columns(conn, schema, table)
        if table == "hub_balances":
            store.execute(f"CREATE TABLE bench_{table} (LIKE {table} INCLUDING DEFAULTS)")
            store.execute(f"CREATE INDEX ON bench_{table} (account)")
        else:
            store.execute(f"CREATE TABLE bench_{table} (LIKE {table} INCLUDING ALL)")
        # Rows of the shape ingest wrote (the stored ones, keyed apart where a key needs it).
        names = ", ".join(name for name, _ in columns)
        mine = " WHERE till = 'T-BENCH'" if any(name == "till" for name, _ in columns) else ""
        sample = conn.execute(f"SELECT {names} FROM {table}{mine} ORDER BY 1, 2").fetchall()
        total = moved["inserted"] + moved["updated"]
        rows = []
        for i in range(total):
            row = list(sample[i % len(sample)])
            for j, (name, _) in enumerate(columns):
                if name == "seq":
                    row[j] = i + 1  # a fresh (till, seq) or (account, till, seq, idx)
            rows.append(tuple(row))
        tables[table] = rows
    columns_of = {t: [c for c, _ in _columns(conn, schema, t)] for t in tables}
    start = time.perf_counter()
    with PgCounter(conn, schema) as counter:
        for b in range(batches):
            with store.transaction():
                for table, rows in tables.items():
                    per = -(-len(rows) // batches)
                    store.copy_rows(
                        f"bench_{table}", columns_of[table], rows[b * per : (b + 1) * per]
                    )
                # The till's cursor and its last contact, as ingest moves them.
                store.execute("UPDATE hub_tills SET acked = acked WHERE id = 'FUND'")
                store.execute("UPDATE hub_till_contact SET head = head WHERE till = 'FUND'")
    return time.perf_counter() - start, counter


def _columns(conn: Any, schema: str, table: str) -> list[tuple[str, str]]:
    return list(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        )
    )


#: Records whose client-side instructions callgrind counts (after 500 to warm up).
COUNTED = 1_000


def counted_phase(count: int) -> None:
    """What callgrind runs: a funded hub, 500 records to warm up, then `count` more."""
    schema = f"bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(DSN, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = PostgresHubStore(f"{DSN} options='-c search_path={schema}'")
        hub = Hub(store)
        hub.register("FUND", hub.create_till("FUND"))
        push_all(hub, "FUND", [(n + 1, top_up(n)) for n in range(500 + COUNTED + 1)])
        hub.register("T-BENCH", hub.create_till("T-BENCH"))
        rows = [(n, record("T-BENCH", n)) for n in range(1, 500 + COUNTED + 1)]
        push_all(hub, "T-BENCH", rows[:500])
        with counting():  # ingest alone: the records are built before
            push_all(hub, "T-BENCH", rows[500 : 500 + count])
        assert not hub.exceptions()
        store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def main() -> None:
    phase, count_only, rest = parse_phase(sys.argv[1:])
    if phase == "ingest":
        counted_phase(count_only or 0)
        return
    sys.argv[1:] = rest
    args = parse_args(__doc__ or "")
    tills, per_till = (100, 10_000) if args.full else (10, 1_000)
    schema = f"bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(DSN, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = PostgresHubStore(f"{DSN} options='-c search_path={schema}'")
        conn = store._conn  # the benchmark counts what this connection does
        hub = Hub(store)
        hub.register("FUND", hub.create_till("FUND"))
        push_all(hub, "FUND", [(n + 1, top_up(n)) for n in range(MEMBERS)])
        assert not hub.exceptions()
        # 1. One till, ingest vs COPY of the same rows.
        count = 20_000 if args.full else 10_000
        hub.register("T-BENCH", hub.create_till("T-BENCH"))
        rows = [(n, record("T-BENCH", n)) for n in range(1, count + 1)]
        start = time.perf_counter()
        with PgCounter(conn, schema) as ingest_counts:
            push_all(hub, "T-BENCH", rows)
        ingest = time.perf_counter() - start
        exceptions = hub.exceptions()
        assert not exceptions, exceptions[:3]
        copy, copy_counts = copy_baseline(store, conn, schema, count, ingest_counts.rows)
        # 2. Replay everything: all duplicates.
        start = time.perf_counter()
        with PgCounter(conn, schema) as replay_counts:
            push_all(hub, "T-BENCH", rows)
        replay = time.perf_counter() - start
        # 3. Many tills come back after a partition.
        for t in range(tills):
            hub.register(f"T{t}", hub.create_till(f"T{t}"))
        start = time.perf_counter()
        for t in range(tills):
            push_all(hub, f"T{t}", [(n, record(f"T{t}", n)) for n in range(1, per_till + 1)])
        converge = time.perf_counter() - start
        totals = hub.unit_totals()
        assert all(v == 0 for v in totals.values()), totals
        assert hub.entries("T-BENCH") == count
        assert not hub.exceptions()
        store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    rate = count / ingest
    batches = -(-count // BATCH)
    ratio = copy / ingest
    print(f"records: {count} (4 postings each, wallets funded: 0 exceptions), batches of {BATCH}")
    print(f"raw COPY of the same rows {count / copy:10,.0f} transactions/s")
    print(copy_counts.describe(count, "txn", batches))
    print(f"hub ingest                {rate:10,.0f} transactions/s   ratio to COPY {ratio:.2f}")
    print(ingest_counts.describe(count, "txn", batches))
    print(
        f"duplicate replay          {count / replay:10,.0f} records/s"
        f"   ({ingest / replay:.1f}x faster than ingest)"
    )
    print(replay_counts.describe(count, "record", batches))
    print(f"{tills} tills x {per_till} offline records converged in {converge:.1f} s")
    if shutil.which("valgrind"):
        # The client's share, repeatable whatever else the machine does (the
        # server's is its CPU above: callgrind cannot follow it there).
        client = window_instructions(["--phase", "ingest"], COUNTED)
        print(f"client instructions (callgrind) {client:,.0f} per transaction")
    else:
        print("client instructions: not counted (valgrind is not installed)")
    print(
        f"targets: ratio >= 0.5 {'ok' if ratio >= 0.5 else 'missed'},"
        f" >= 20,000 transactions/s {'ok' if rate >= 20_000 else 'missed'},"
        f" replay >= 2x {'ok' if ingest / replay >= 2 else 'missed'}"
    )
    result("hub_ingest", ratio, 0.5, ratio >= 0.5 and rate >= 20_000 and ingest / replay >= 2)


if __name__ == "__main__":
    main()
