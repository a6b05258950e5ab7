# SPDX-License-Identifier: Apache-2.0
"""Hub ingest on PostgreSQL against raw COPY of the same rows, in one run.

Tills' outbox records (a purchase: 4 postings) are pushed in batches of 500
through `Hub.push` (exactly-once dedupe, balances, conflict checks); the
baseline COPYs the same rows into a table of the same shape as
`hub_entries`. Also: replaying an all-duplicate batch, and how long 100
tills (quick: 10) with 10,000 (quick: 1,000) offline records each take to
converge once a partition heals. Targets: ingest at least 0.5 of COPY and
at least 10,000 transactions per second; duplicate replay at least twice
as fast as new ingest.

    python bench/hub_ingest.py          # quick
    python bench/hub_ingest.py --full   # 100 tills x 10,000 records
"""

from __future__ import annotations

import json
import os
import secrets
import time

import psycopg
from _common import parse_args, result

from loyaltysdk.hub import Hub, PostgresHubStore

DSN = os.environ.get("LOYALTY_BENCH_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
BATCH = 500


def record(till: str, n: int) -> str:
    member = f"member:M-{n % 5_000}"
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


def main() -> None:
    args = parse_args(__doc__ or "")
    tills, per_till = (100, 10_000) if args.full else (10, 1_000)
    schema = f"bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(DSN, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = PostgresHubStore(f"{DSN} options='-c search_path={schema}'")
        hub = Hub(store)
        # Fund the wallets so no overdraft exceptions skew the measurement.
        hub.register("FUND", hub.create_till("FUND"))
        # 1. One till, ingest vs COPY of the same rows.
        count = 20_000 if args.full else 10_000
        hub.register("T-BENCH", hub.create_till("T-BENCH"))
        rows = [(n, record("T-BENCH", n)) for n in range(1, count + 1)]
        start = time.perf_counter()
        for i in range(0, count, BATCH):
            hub.push("T-BENCH", rows[i : i + BATCH])
        ingest = time.perf_counter() - start
        store.execute(
            "CREATE TABLE bench_entries (till TEXT NOT NULL, seq BIGINT NOT NULL,"
            " key TEXT NOT NULL, kind TEXT NOT NULL, at BIGINT NOT NULL, memo TEXT,"
            " payload TEXT NOT NULL,"
            " PRIMARY KEY (till, seq))"
        )
        copy_rows = []
        for seq, payload in rows:
            data = json.loads(payload)
            copy_rows.append(("T-COPY", seq, data["key"], data["kind"], data["at"], None, payload))
        start = time.perf_counter()
        for i in range(0, count, BATCH):
            with store.transaction():
                store.copy_rows(
                    "bench_entries",
                    ["till", "seq", "key", "kind", "at", "memo", "payload"],
                    copy_rows[i : i + BATCH],
                )
        copy = time.perf_counter() - start
        # 2. Replay everything: all duplicates.
        start = time.perf_counter()
        for i in range(0, count, BATCH):
            hub.push("T-BENCH", rows[i : i + BATCH])
        replay = time.perf_counter() - start
        # 3. Many tills come back after a partition.
        for t in range(tills):
            hub.register(f"T{t}", hub.create_till(f"T{t}"))
        start = time.perf_counter()
        for t in range(tills):
            batch_rows = [(n, record(f"T{t}", n)) for n in range(1, per_till + 1)]
            for i in range(0, per_till, BATCH):
                hub.push(f"T{t}", batch_rows[i : i + BATCH])
        converge = time.perf_counter() - start
        totals = hub.unit_totals()
        assert all(v == 0 for v in totals.values()), totals
        assert hub.entries("T-BENCH") == count
        store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    rate = count / ingest
    ratio = copy / ingest
    print(f"records: {count} (4 postings each), batches of {BATCH}")
    print(f"raw COPY             {count / copy:10,.0f} rows/s")
    print(f"hub ingest           {rate:10,.0f} transactions/s   ratio to COPY {ratio:.2f}")
    print(
        f"duplicate replay     {count / replay:10,.0f} records/s   ({ingest / replay:.1f}x faster)"
    )
    print(f"{tills} tills x {per_till} offline records converged in {converge:.1f} s")
    result("hub_ingest", ratio, 0.5, ratio >= 0.5 and rate >= 10_000 and ingest / replay >= 2)


if __name__ == "__main__":
    main()
