# SPDX-License-Identifier: Apache-2.0
"""All reports over one million receipts and 100,000 members, on SQLite.

The demo generator fills the report tables; then every report runs once
(the per-member scan shared by the Pareto and RFM reports, growth,
liability, campaigns, stores). The baseline, in the same run, is one bare
aggregate scan of the receipts. Peak memory is printed. Target: all reports
in under 10 seconds.

    python bench/reports.py          # quick: 100,000 receipts, 10,000 members
    python bench/reports.py --full   # 1,000,000 receipts, 100,000 members
"""

from __future__ import annotations

import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

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
    rfm,
    stores,
)


def main() -> None:
    args = parse_args(__doc__ or "")
    receipts, members = (1_000_000, 100_000) if args.full else (100_000, 10_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = connect(str(Path(tmp) / "reports.db"))
        start = time.perf_counter()
        generate(db, receipts=receipts, members=members)
        generated = time.perf_counter() - start
        start = time.perf_counter()
        db.query("SELECT count(*), sum(total), max(day) FROM report_receipts")
        baseline = time.perf_counter() - start
        timings = {}
        start = time.perf_counter()
        first, last = period(db)
        mark = time.perf_counter()
        stats = member_stats(db, first, last)
        timings["member scan"] = time.perf_counter() - mark
        mark = time.perf_counter()
        top = pareto(stats)
        segments = rfm(stats, last)
        timings["pareto + rfm"] = time.perf_counter() - mark
        middle = first + (last - first) / 2
        mark = time.perf_counter()
        growth(db, (first, middle), (middle + timedelta(days=1), last))
        timings["growth"] = time.perf_counter() - mark
        mark = time.perf_counter()
        liability(db)
        campaigns(db, first, last, stats)
        timings["liability + campaigns"] = time.perf_counter() - mark
        mark = time.perf_counter()
        stores(db, first, last)
        timings["stores"] = time.perf_counter() - mark
        total = time.perf_counter() - start
        db.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"receipts: {receipts:,}, members: {members:,} (generated in {generated:.1f} s)")
    print(f"bare aggregate scan  {baseline:6.2f} s")
    for name, seconds in timings.items():
        print(f"  {name:<22}{seconds:6.2f} s")
    print(f"all reports          {total:6.2f} s  ({total / baseline:.1f}x the bare scan)")
    print(
        f"top fifth share {float(top.top_fifth_share) * 100:.1f} %,"
        f" {len(segments):,} members scored"
    )
    print(f"peak memory          {peak:6.0f} MiB")
    result("reports", total, 10.0, total < 10.0)


if __name__ == "__main__":
    main()
