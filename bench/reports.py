# SPDX-License-Identifier: Apache-2.0
"""Every report over a million receipts of five lines, 100,000 members, 20 stores, in one run.

The generator files receipt records (sales, anonymous sales, vouchers,
refunds, voids) as a hub does; then every report runs once on SQLite and
on PostgreSQL: the member scan (shared by Pareto, RFM, tier mix and
campaigns), growth, liability, campaigns, stores and revenue by store,
month, weekday and hour. The baseline, in the same run and on the same
engine, is one bare aggregate scan of the receipts. Peak memory of this
process is printed. Target: all reports in under 10 s on each engine (the
RESULT is the slower engine).

    python bench/reports.py          # quick: 100,000 receipts, 10,000 members
    python bench/reports.py --full   # 1,000,000 receipts, 100,000 members
"""

from __future__ import annotations

import os
import resource
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import parse_args, result

from loyaltysdk.reports import (
    campaigns,
    connect,
    generate,
    growth,
    liability,
    member_stats,
    pareto,
    period,
    revenue_breakdowns,
    rfm,
    stores,
    tier_mix,
)

DSN = os.environ.get("LOYALTY_BENCH_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


def run(db: Any, receipts: int, members: int) -> tuple[float, float, dict[str, float], float]:
    start = time.perf_counter()
    generate(db, receipts=receipts, members=members, lines=5)
    if db.dialect == "postgres":
        db.execute("ANALYZE")
    generated = time.perf_counter() - start
    start = time.perf_counter()
    db.query("SELECT count(*), sum(total), max(day) FROM report_receipts")
    baseline = time.perf_counter() - start
    timings: dict[str, float] = {}

    def timed(name: str, work: Any) -> Any:
        mark = time.perf_counter()
        value = work()
        timings[name] = time.perf_counter() - mark
        return value

    start = time.perf_counter()
    first, last = period(db)
    stats = timed("member scan", lambda: member_stats(db, first, last))
    timed("pareto + rfm + tiers", lambda: (pareto(stats), rfm(stats, last), tier_mix(stats)))
    middle = first + (last - first) / 2
    timed("growth", lambda: growth(db, (first, middle), (middle + timedelta(days=1), last)))
    timed("liability", lambda: liability(db))
    timed("campaigns", lambda: campaigns(db, first, last, stats))
    timed("stores", lambda: stores(db, first, last))
    timed("revenue x4", lambda: revenue_breakdowns(db, first, last))
    total = time.perf_counter() - start
    return generated, baseline, timings, total


def main() -> None:
    args = parse_args(__doc__ or "")
    receipts, members = (1_000_000, 100_000) if args.full else (100_000, 10_000)
    totals = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        engines = os.environ.get("LOYALTY_BENCH_ENGINES", "sqlite,postgres").split(",")
        for engine in engines:
            if engine == "sqlite":
                db = connect(str(Path(tmp) / "reports.db"))
                schema = None
            else:
                import psycopg

                schema = f"bench_{secrets.token_hex(4)}"
                admin = psycopg.connect(DSN, autocommit=True)
                admin.execute(f"CREATE SCHEMA {schema}")
                db = connect(f"{DSN} options='-c search_path={schema}'")
            try:
                generated, baseline, timings, total = run(db, receipts, members)
            finally:
                db.close()
                if schema is not None:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")
                    admin.close()
            totals[engine] = total
            print(f"{engine}: {receipts:,} receipts of 5 lines, {members:,} members, 20 stores")
            print(f"  generated and filed in {generated:.1f} s")
            print(f"  bare aggregate scan    {baseline:6.2f} s")
            for name, seconds in timings.items():
                print(f"    {name:<21}{seconds:6.2f} s")
            print(f"  all reports            {total:6.2f} s  ({total / baseline:.1f}x the scan)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process {peak:,.0f} MiB (generation included)")
    slower = max(totals.values())
    result("reports", slower, 10.0, slower < 10.0)


if __name__ == "__main__":
    main()
