# SPDX-License-Identifier: Apache-2.0
"""A ledger transfer (purchase + earn + outbox), counted and timed against a bare commit.

The transfer is a purchase paid from a member's wallet that earns points: 4
postings (wallet -> sales, points issued -> the member's points lot), its
journal row and its outbox record, one durable commit. Measured in one run:

- per transfer: SQL statements, commits, WAL frames (pages written);
- instructions per transfer (callgrind, counted inside the N transfers only), beside the
  floor: the same rows written with one executemany per table and no reads
  (the least any ledger with these tables could do);
- p50 against a bare one-row durable commit with the flush held at 200 us
  and at 1 ms (an LD_PRELOAD shim replaces fsync by that sleep), and on the
  real disk; the two alternate in blocks of 100.

Beside it, a sale's two points entries (points taken, oldest lots first,
then points earned as a new lot) written by one `transfer_many` and, for
comparison, as two `transfer` calls in one `atomic()` block: statements and
instructions per sale.

Targets (issue 17): at most 300 k instructions, p50 at most 1.5x the bare
commit at fixed flush latency.

    python bench/ledger.py          # quick: 2,000 of each
    python bench/ledger.py --full   # 20,000 of each
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import BareCommit, percentile, result
from _measure import Counter, counting, parse_phase, rerun_with_shim, window_instructions

from loyaltysdk import Money, Points
from loyaltysdk.ledger import AccountFlags, Ledger, Posting

MEMBERS = 200
BLOCK = 100
EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


def open_ledger(path: Path, members: int = MEMBERS) -> Ledger:
    ledger = Ledger.open(path, origin="S001-T1")
    for name in ("sys:points:issued", "sys:points:redeemed", "sys:points:breakage"):
        ledger.open_account(name, "PTS")
    ledger.open_account("sys:sales:EUR", "EUR")
    ledger.open_account("sys:float:EUR", "EUR")
    limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    for m in range(members):
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


def purchase(ledger: Ledger, n: int, members: int = MEMBERS) -> float:
    member = f"M-{n % members}"
    paid, earned = Money(1000 + n % 5000, "EUR"), Points(10 + n % 50)
    postings = [
        Posting.debit(f"member:{member}:wallet:EUR", paid),
        Posting.credit("sys:sales:EUR", paid),
        Posting.debit("sys:points:issued", earned),
        Posting.credit(f"member:{member}:points", earned, expires_at=EXPIRES),
    ]
    start = time.perf_counter()
    ledger.transfer(f"R-{n}", postings)
    return time.perf_counter() - start


def seed_points(ledger: Ledger, members: int) -> None:
    """Points for every member to spend in sales: one lot each."""
    for m in range(members):
        pts = Points(10**6)
        ledger.transfer(
            f"seed-points-{m}",
            [
                Posting.debit("sys:points:issued", pts),
                Posting.credit(f"member:M-{m}:points", pts, expires_at=EXPIRES),
            ],
        )


def sale(ledger: Ledger, n: int, members: int, *, batched: bool = True) -> None:
    """A sale's points entries: points taken (before the earning, as the till does), earned."""
    points = f"member:M-{n % members}:points"
    taken, earned = Points(5 + n % 20), Points(10 + n % 50)
    entries: list[tuple[str, list[Posting], str | None]] = [
        (
            f"S-{n}:points",
            [Posting.debit(points, taken), Posting.credit("sys:points:redeemed", taken)],
            None,
        ),
        (
            f"S-{n}:earn",
            [
                Posting.debit("sys:points:issued", earned),
                Posting.credit(points, earned, expires_at=EXPIRES),
            ],
            None,
        ),
    ]
    if batched:
        ledger.transfer_many(entries)
        return
    with ledger.atomic():
        for key, postings, memo in entries:
            ledger.transfer(key, postings, memo=memo)


def floor(conn: sqlite3.Connection, n: int) -> None:
    """The same rows as a transfer, one executemany per table, no reads.

    Written through the ledger's own connection, so into the same tables and indexes
    its schema has (since version 3: no postings_by_account entry for the `sys:`
    postings, no lots_due), exactly as the transfer writes them."""
    member = f"M-{n % 5}"
    paid, earned = 1000 + n % 5000, 10 + n % 50
    conn.execute("BEGIN IMMEDIATE")
    seq = 10_000 + n
    conn.execute(
        "INSERT INTO transactions (seq, key, fingerprint, kind, status, created_at)"
        " VALUES (?, ?, ?, 'transfer', 'committed', ?)",
        (seq, f"F-{n}", b"x" * 16, n),
    )
    conn.executemany(
        "INSERT INTO postings (tx_seq, idx, account, side, amount, unit, pending, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
        [
            (seq, 0, f"member:{member}:wallet:EUR", "D", paid, "EUR", None),
            (seq, 1, "sys:sales:EUR", "C", paid, "EUR", None),
            (seq, 2, "sys:points:issued", "D", earned, "PTS", None),
            (seq, 3, f"member:{member}:points", "C", earned, "PTS", 1),
        ],
    )
    conn.executemany(
        "UPDATE accounts SET debits_posted = debits_posted + ?, credits_posted ="
        " credits_posted + ? WHERE id = ?",
        [
            (paid, 0, f"member:{member}:wallet:EUR"),
            (0, paid, "sys:sales:EUR"),
            (earned, 0, "sys:points:issued"),
            (0, earned, f"member:{member}:points"),
        ],
    )
    conn.execute(
        "INSERT INTO lots (account, tx_seq, amount, remaining, earned_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, 1)",
        (f"member:{member}:points", seq, earned, earned, n),
    )
    conn.execute(
        "INSERT INTO outbox (tx_seq, created_at, payload) VALUES (?, ?, ?)", (seq, n, "{}" * 200)
    )
    conn.execute("COMMIT")


def counts() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        ledger = open_ledger(path, 20)
        for n in range(20):
            purchase(ledger, -n - 1, 20)
        n = 200
        conn = ledger.store.connection  # type: ignore[attr-defined]
        with Counter(conn, path) as counted:
            for i in range(n):
                purchase(ledger, i, 20)
        seed_points(ledger, 20)
        for i in range(20):
            sale(ledger, -i - 1, 20)
            sale(ledger, -i - 1001, 20, batched=False)
        with Counter(conn) as batched:
            for i in range(n):
                sale(ledger, i, 20)
        with Counter(conn) as pair:
            for i in range(n):
                sale(ledger, i + 1000, 20, batched=False)
        ledger.check()
        ledger.close()
    return {
        "statements": counted.statements / n,
        "commits": counted.commits / n,
        "frames": counted.frames / n,
        "batch statements": batched.statements / n,
        "pair statements": pair.statements / n,
    }


def wall(count: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(Path(tmp) / "ledger.db")
        bare = BareCommit(Path(tmp) / "bare.db")
        for n in range(200):
            bare.once()
            purchase(ledger, -n - 1)
        bare_times, times = [], []
        for block in range(0, count, BLOCK):
            bare_times.extend(bare.once() for _ in range(BLOCK))
            times.extend(purchase(ledger, n) for n in range(block, block + BLOCK))
        ledger.check()
        ledger.close()
        bare.close()
    return percentile(bare_times, 0.5), percentile(times, 0.5), count / sum(times)


def main() -> None:
    phase, count, rest = parse_phase(sys.argv[1:])
    if phase in ("instr", "floor", "batch", "pair"):  # under callgrind: set-up, `count` writes
        with tempfile.TemporaryDirectory() as tmp:
            ledger = open_ledger(Path(tmp) / "ledger.db", 5)
            for n in range(5):
                purchase(ledger, -n - 1, 5)
            if phase in ("batch", "pair"):
                seed_points(ledger, 5)
                for n in range(5):
                    sale(ledger, -n - 1, 5, batched=phase == "batch")
            conn = ledger.store.connection  # type: ignore[attr-defined]
            with counting():
                for n in range(count or 0):
                    if phase == "instr":
                        purchase(ledger, n, 5)
                    elif phase == "floor":
                        floor(conn, n)
                    else:
                        sale(ledger, n, 5, batched=phase == "batch")
        return
    if phase == "wall":
        bare, p50, throughput = wall(count or 2_000)
        print(f"WALL {bare} {p50} {throughput}")
        return
    runs = 20_000 if "--full" in rest else 2_000
    seen = counts()
    print(
        f"per transfer: {seen['statements']:.1f} SQL statements, {seen['commits']:.2f} commits,"
        f" {seen['frames']:.2f} WAL frames (pages written)"
    )
    instr = window_instructions(["--phase", "instr"], 200)
    least = window_instructions(["--phase", "floor"], 200)
    print(
        f"per transfer: {instr / 1e3:.0f} k instructions; the floor (same rows, executemany,"
        f" no reads) {least / 1e3:.0f} k"
    )
    batch = window_instructions(["--phase", "batch"], 200)
    pair = window_instructions(["--phase", "pair"], 200)
    print(
        f"per sale of 2 points entries: transfer_many {seen['batch statements']:.1f} SQL"
        f" statements, {batch / 1e3:.0f} k instructions; as 2 transfers in atomic()"
        f" {seen['pair statements']:.1f} statements, {pair / 1e3:.0f} k instructions"
    )
    ratios = {}
    for delay in (200, 1_000):
        out = rerun_with_shim(delay, ["--phase", "wall", "--count", str(runs)])
        bare, p50, _ = (float(x) for x in out.split("WALL ")[1].split())
        ratios[delay] = p50 / bare
        print(
            f"flush held at {delay:>5} us: bare commit p50 {bare * 1e6:6.0f} us, transfer p50"
            f" {p50 * 1e6:6.0f} us, ratio {ratios[delay]:.2f}"
        )
    bare, p50, throughput = wall(runs)
    print(
        f"real disk:              bare commit p50 {bare * 1e6:6.0f} us, transfer p50"
        f" {p50 * 1e6:6.0f} us, ratio {p50 / bare:.2f}; {throughput:,.0f} transfers/s"
    )
    checks = {
        "instructions <= 300 k": instr <= 300_000,
        "ratio <= 1.5 at 200 us": ratios[200] <= 1.5,
        "ratio <= 1.5 at 1 ms": ratios[1_000] <= 1.5,
    }
    for name, ok in checks.items():
        print(f"  {'ok    ' if ok else 'missed'} {name}")
    result("ledger", instr, 300_000, all(checks.values()))


if __name__ == "__main__":
    main()
