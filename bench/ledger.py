# SPDX-License-Identifier: Apache-2.0
"""Ledger write latency against a bare durable SQLite commit, in one run.

The ledger transaction is a purchase paid from a member's wallet that earns
points: 4 postings (wallet -> sales, points issued -> member points lot),
its journal row and its outbox record, one durable commit. The baseline is
one row in one durable commit on the same file system. The two run in
alternating blocks of 100, so both see the same disk over the run without
one file's fsync queueing behind the other's. Targets: p50 ratio at most
1.5, and at least 1,000 ledger transactions per second sequentially.

    python bench/ledger.py          # quick: 2,000 of each
    python bench/ledger.py --full   # 20,000 of each
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import BareCommit, parse_args, percentile, result

from loyaltysdk import Money, Points
from loyaltysdk.ledger import AccountFlags, Ledger, Posting

MEMBERS = 200
BLOCK = 100


def open_ledger(path: Path) -> Ledger:
    ledger = Ledger.open(path, origin="S001-T1")
    for name in ("sys:points:issued", "sys:points:breakage"):
        ledger.open_account(name, "PTS")
    ledger.open_account("sys:sales:EUR", "EUR")
    ledger.open_account("sys:float:EUR", "EUR")
    limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    for m in range(MEMBERS):
        ledger.open_account(f"member:M-{m}:wallet:EUR", "EUR", flags=limited)
        ledger.open_account(
            f"member:M-{m}:points",
            "PTS",
            flags=limited,
            lots=True,
            breakage_account="sys:points:breakage",
        )
        big = Money(10**9, "EUR")
        ledger.transfer(
            f"seed-{m}",
            [Posting.debit("sys:float:EUR", big), Posting.credit(f"member:M-{m}:wallet:EUR", big)],
        )
    return ledger


def purchase(ledger: Ledger, n: int, expires: datetime) -> float:
    member = f"M-{n % MEMBERS}"
    paid, earned = Money(1000 + n % 5000, "EUR"), Points(10 + n % 50)
    postings = [
        Posting.debit(f"member:{member}:wallet:EUR", paid),
        Posting.credit("sys:sales:EUR", paid),
        Posting.debit("sys:points:issued", earned),
        Posting.credit(f"member:{member}:points", earned, expires_at=expires),
    ]
    start = time.perf_counter()
    ledger.transfer(f"R-{n}", postings)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 20_000 if args.full else 2_000
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ledger = open_ledger(Path(tmp) / "ledger.db")
        bare = BareCommit(Path(tmp) / "bare.db")
        expires = datetime.now(UTC) + timedelta(days=365)
        for n in range(200):  # warm caches and the WAL file
            bare.once()
            purchase(ledger, -n - 1, expires)
        bare_times, ledger_times = [], []
        wall = time.perf_counter()
        for block in range(0, count, BLOCK):
            bare_times.extend(bare.once() for _ in range(BLOCK))
            ledger_times.extend(purchase(ledger, n, expires) for n in range(block, block + BLOCK))
        wall = time.perf_counter() - wall
        ledger.check()
        ledger.close()
        bare.close()
    p50_bare, p99_bare = percentile(bare_times, 0.5), percentile(bare_times, 0.99)
    p50_ledger, p99_ledger = percentile(ledger_times, 0.5), percentile(ledger_times, 0.99)
    throughput = count / sum(ledger_times)
    ratio = p50_ledger / p50_bare
    print(f"transactions: {count} of each, in alternating blocks of {BLOCK}, {wall:.1f} s")
    print(f"bare durable commit  p50 {p50_bare * 1e6:8.0f} us   p99 {p99_bare * 1e6:8.0f} us")
    print(f"ledger purchase      p50 {p50_ledger * 1e6:8.0f} us   p99 {p99_ledger * 1e6:8.0f} us")
    print(f"ratio                p50 {ratio:8.2f}      p99 {p99_ledger / p99_bare:8.2f}")
    print(f"ledger throughput    {throughput:,.0f} transactions/s sequentially (target >= 1,000)")
    result("ledger", ratio, 1.5, ratio <= 1.5 and throughput >= 1000)


if __name__ == "__main__":
    main()
