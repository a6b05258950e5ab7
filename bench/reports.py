# SPDX-License-Identifier: Apache-2.0
"""Every report over a million receipts of five lines, 100,000 members, 20 stores, in one run.

The generator files receipt records (sales, anonymous sales, vouchers,
refunds, voids) as a hub does; then every report runs once on SQLite and
on PostgreSQL: the member scan (shared by Pareto, RFM, tier mix and
campaigns), growth, liability, campaigns, stores and revenue by store,
month, weekday and hour. The baseline, in the same run and on the same
engine, is one bare aggregate scan of the receipts. Each report and the
scan run three times in a row and the fastest run counts (they only read;
load from other processes only adds time). Beside each time: the
SQL statements the report sent, the rows they returned and the CPU time of
this process (on SQLite nearly all the work, on PostgreSQL the client's
share; it moves much less with the machine's load than the time); beside each
size, the receipts and lines in the tables. Peak memory of this process is
printed. Target: all reports in under 10 s on each engine at 1,000,000
receipts (the RESULT is the slower engine).

``--full`` measures that size and compares it with the target; it runs
the quick sizes too and prints the quick estimate beside the measurement,
so every full run checks the estimate. The quick run cannot measure the
target: 100,000 receipts is a tenth of the size, and the reports' time
does not scale by a tenth (here, on 2026-12-02, 1 M took 7 to 16 times as
long as 100 k on one engine or the other, with the machine's load). So
the quick run measures every engine at two sizes, 25,000 and 100,000
receipts (members a tenth of the receipts, as in the full run), and
extrapolates the total to 1,000,000 from its growth over that factor of
4: t(1 M) = t(100 k) x 10^k with
k = log(t(100 k) / t(25 k)) / log 4, and k never below 1 (nothing is
assumed to grow slower than the rows). The exponent is taken from the
total, not report by report: single reports take a few hundredths of a
second at 25,000 receipts, and their exponents are mostly noise that the
tenfold extrapolation would multiply. Each report's exponent is printed
for a reader, not used. The quick RESULT is that extrapolated 1 M figure
against the full target, printed as such: an estimate, which ``--full``
measures. Wall times follow the machine's load; run on an idle machine.

    python bench/reports.py          # quick: 25,000 and 100,000 receipts, extrapolated
    python bench/reports.py --full   # 1,000,000 receipts, 100,000 members (and the quick sizes)
"""

from __future__ import annotations

import math
import os
import resource
import secrets
import tempfile
import time
from collections.abc import Callable
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
FULL = 1_000_000
TARGET = 10.0
REPEATS = 3


class _Counted:
    """The reports' database, counting the statements sent and the rows they returned."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.dialect = db.dialect
        self.statements = 0
        self.rows = 0

    def query(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        self.statements += 1
        found: list[tuple[Any, ...]] = self.db.query(sql, args)
        self.rows += len(found)
        return found

    def execute(self, sql: str, args: Any = ()) -> None:
        self.statements += 1
        self.db.execute(sql, args)

    def insert(self, table: str, columns: Any, rows: Any) -> None:
        self.statements += 1
        self.db.insert(table, columns, rows)


class _Run:
    """One engine at one size: generation, the bare scan and each report, with counts."""

    def __init__(self, db: Any, receipts: int, members: int) -> None:
        self.receipts, self.members = receipts, members
        start = time.perf_counter()
        generate(db, receipts=receipts, members=members, lines=5)
        if db.dialect == "postgres":
            db.execute("ANALYZE")
        self.generated = time.perf_counter() - start
        ((self.rows_receipts,),) = db.query("SELECT count(*) FROM report_receipts")
        ((self.rows_lines,),) = db.query("SELECT count(*) FROM report_lines")
        self.baseline = math.inf
        for _ in range(REPEATS):
            start = time.perf_counter()
            db.query("SELECT count(*), sum(total), max(day) FROM report_receipts")
            self.baseline = min(self.baseline, time.perf_counter() - start)
        # name -> (seconds, statements, rows returned)
        self.timings: dict[str, tuple[float, int, int]] = {}
        # name -> CPU seconds of this process in the fastest run: on SQLite nearly all
        # the work (the engine runs in-process), on PostgreSQL the client's share. It
        # moves far less with other processes' load than the wall time does.
        self.cpu: dict[str, float] = {}
        counted = _Counted(db)

        def timed(name: str, work: Callable[[], Any]) -> Any:
            # Reports only read: each runs REPEATS times and the fastest counts,
            # since another process's load only ever adds time. Counts are of one run.
            statements, rows = counted.statements, counted.rows
            fastest = math.inf
            for _ in range(REPEATS):
                mark, cpu = time.perf_counter(), time.process_time()
                value = work()
                if time.perf_counter() - mark < fastest:
                    fastest = time.perf_counter() - mark
                    self.cpu[name] = time.process_time() - cpu
            self.timings[name] = (
                fastest,
                (counted.statements - statements) // REPEATS,
                (counted.rows - rows) // REPEATS,
            )
            return value

        first, last = timed("period", lambda: period(counted))
        stats = timed("member scan", lambda: member_stats(counted, first, last))
        timed("pareto + rfm + tiers", lambda: (pareto(stats), rfm(stats, last), tier_mix(stats)))
        middle = first + (last - first) / 2
        timed(
            "growth", lambda: growth(counted, (first, middle), (middle + timedelta(days=1), last))
        )
        timed("liability", lambda: liability(counted))
        timed("campaigns", lambda: campaigns(counted, first, last, stats))
        timed("stores", lambda: stores(counted, first, last))
        timed("revenue x4", lambda: revenue_breakdowns(counted, first, last))
        self.total = sum(seconds for seconds, _, _ in self.timings.values())
        self.total_cpu = sum(self.cpu.values())

    def show(self, engine: str) -> None:
        print(
            f"{engine}: {self.receipts:,} receipts of 5 lines, {self.members:,} members,"
            f" 20 stores ({self.rows_receipts:,} receipt rows, {self.rows_lines:,} line rows)"
        )
        print(f"  generated and filed in {self.generated:.1f} s")
        print(f"  bare aggregate scan    {self.baseline:6.2f} s  (1 statement)")
        for name, (seconds, statements, rows) in self.timings.items():
            print(
                f"    {name:<21}{seconds:6.2f} s  {statements:3} statements {rows:9,} rows back"
                f"  cpu {self.cpu[name]:5.2f} s"
            )
        print(
            f"  all reports            {self.total:6.2f} s"
            f"  ({self.total / self.baseline:.1f}x the scan; cpu of this process"
            f" {self.total_cpu:.2f} s)"
        )


def _engine(engine: str, tmp: Path, receipts: int, members: int) -> _Run:
    """One size on a fresh database of `engine`, dropped after."""
    if engine == "sqlite":
        path = tmp / f"reports-{receipts}.db"
        db = connect(str(path))
        try:
            return _Run(db, receipts, members)
        finally:
            db.close()
            path.unlink()
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        db = connect(f"{DSN} options='-c search_path={schema}'")
        try:
            return _Run(db, receipts, members)
        finally:
            db.close()
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _exponent(small: float, large: float, factor: float) -> float:
    return math.log(max(large, 1e-6) / max(small, 1e-6)) / math.log(factor)


def _extrapolate(small: _Run, large: _Run) -> tuple[float, float, dict[str, float]]:
    """All reports at 1 M receipts from the total's growth between two sizes (k >= 1).

    Returns the estimate, the total's exponent as measured, and each report's.
    """
    factor = large.receipts / small.receipts
    k = _exponent(small.total, large.total, factor)
    each = {
        name: _exponent(small.timings[name][0], seconds, factor)
        for name, (seconds, _, _) in large.timings.items()
    }
    return large.total * (FULL / large.receipts) ** max(1.0, k), k, each


def main() -> None:
    args = parse_args(__doc__ or "")
    engines = os.environ.get("LOYALTY_BENCH_ENGINES", "sqlite,postgres").split(",")
    # The full run measures the quick sizes too, so each full run checks the estimate.
    sizes = [(25_000, 2_500), (100_000, 10_000)] + ([(FULL, FULL // 10)] if args.full else [])
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for engine in engines:
            runs = [_engine(engine, Path(tmp), receipts, members) for receipts, members in sizes]
            for run in runs:
                run.show(engine)
            estimate, k, each = _extrapolate(runs[0], runs[1])
            print(
                f"  growth 25 k -> 100 k: {runs[1].total / runs[0].total:.2f}x for 4x,"
                f" exponent {k:.2f} (used: {max(1.0, k):.2f});"
                f" per report (not used): {', '.join(f'{n} {e:.2f}' for n, e in each.items())}"
            )
            print(
                f"  all reports at {FULL:,} receipts, extrapolated:"
                f" {estimate:6.2f} s = {runs[1].total:.2f} s x 10^{max(1.0, k):.2f}"
            )
            if args.full:
                print(
                    f"  all reports at {FULL:,} receipts, measured:    {runs[2].total:6.2f} s"
                    f" ({runs[2].total / runs[1].total:.1f}x the 100 k run;"
                    f" the estimate is {estimate / runs[2].total:.2f}x the measurement)"
                )
            figures[engine] = runs[2].total if args.full else estimate
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process {peak:,.0f} MiB (generation included)")
    slower = max(figures.values())
    if not args.full:
        print(
            f"quick: the RESULT is the slower engine's time extrapolated to {FULL:,} receipts"
            f" (an estimate; --full measures it)"
        )
    result("reports", slower, TARGET, slower < TARGET)


if __name__ == "__main__":
    main()
