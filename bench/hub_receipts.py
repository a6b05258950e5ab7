# SPDX-License-Identifier: Apache-2.0
"""Hub ingest of receipt records (five lines each) on PostgreSQL, against raw COPY, in one run.

Receipt records from the report generator are pushed as a till's events
in batches of 500 through `Hub.push_events` (checked, exactly once, filed
in the report tables with COPY into staging); the baseline COPYs the very
rows those records become straight into empty tables of the same shape.
Target: at least 20,000 receipts per second.

    python bench/hub_receipts.py          # quick: 20,000 receipts
    python bench/hub_receipts.py --full   # 200,000 receipts
"""

from __future__ import annotations

import os
import random
import secrets
import time
from datetime import date

import psycopg
from _common import parse_args, result

from loyaltysdk.hub import Hub, PostgresHubStore
from loyaltysdk.reports import LINE_COLUMNS, RECEIPT_COLUMNS, receipt_rows
from loyaltysdk.reports._data import generated_records

DSN = os.environ.get("LOYALTY_BENCH_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
BATCH = 500


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 200_000 if args.full else 20_000
    records = [
        {**r, "till": "T-BENCH", "store": "S000"}
        for r in generated_records(
            random.Random(3), count, 10_000, 1, date(2026, 1, 1), 300, 5, ("EUR",), ("XMAS",)
        )
    ]
    schema = f"bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(DSN, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = PostgresHubStore(f"{DSN} options='-c search_path={schema}'")
        hub = Hub(store)
        hub.register("T-BENCH", hub.create_till("T-BENCH"))
        events = [(n, "receipt", r) for n, r in enumerate(records, start=1)]
        start = time.perf_counter()
        for i in range(0, len(events), BATCH):
            hub.push_events("T-BENCH", events[i : i + BATCH])
        ingest = time.perf_counter() - start
        filed = store.execute("SELECT count(*) FROM report_receipts")[0][0]
        assert filed == len(records), (filed, len(records))
        rows = [receipt_rows(r) for r in records]
        for table in ("base_receipts", "base_lines"):
            source = "report_receipts" if table == "base_receipts" else "report_lines"
            store.execute(f"CREATE TABLE {table} (LIKE {source} INCLUDING ALL)")
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            chunk = rows[i : i + BATCH]
            store.copy_rows("base_receipts", RECEIPT_COLUMNS, [r for r, _, _ in chunk])
            store.copy_rows("base_lines", LINE_COLUMNS, [x for _, lines, _ in chunk for x in lines])
        copy = time.perf_counter() - start
        store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    rate = len(records) / ingest
    print(f"records: {len(records):,} ({count:,} sales with refunds and voids), 5 lines each")
    print(f"raw COPY of the same rows   {len(records) / copy:10,.0f} receipts/s")
    print(
        f"hub ingest (push_events)    {rate:10,.0f} receipts/s   ratio to COPY {copy / ingest:.2f}"
    )
    result("hub_receipts", rate, 20_000, rate >= 20_000)


if __name__ == "__main__":
    main()
