# SPDX-License-Identifier: Apache-2.0
"""A full checkout, counted and timed, against a bare one-row durable commit, in one run.

A checkout: identify the member by card UID, quote a 20-line basket under
the demo rules, redeem points, complete. Measured:

- counts per checkout (SQLite's trace, the WAL's growth): SQL statements,
  commits, WAL frames (pages written);
- instructions per checkout: callgrind, counted only inside a window around
  N checkouts (the POS building each basket's lines included; the
  benchmark's random draws of them not), divided by N; repeatable on a busy
  machine;
- wall p50 against the bare commit with the flush latency held fixed (an
  LD_PRELOAD shim sleeps 200 us, then 1 ms, after every fsync), and on the
  real disk beside it; the two alternate in blocks;
- flat with size: a checkout and `Till.balance` on a till file with many
  journal entries and a member with 10,000 open points lots, against a fresh
  file (the big file is built once into bench/.build and kept out of git).

Targets (issue 17): one commit, at most 20 statements, at most 1.5 M
instructions, p50 at most 2.5x the bare commit at both fixed latencies, and
the big file within 1.3x of the fresh one.

    python bench/checkout.py          # quick: 100,000 journal entries in the big file
    python bench/checkout.py --full   # 1,000,000
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import BareCommit, percentile, result
from _measure import (
    BUILD,
    Counter,
    counting,
    fsyncs,
    parse_phase,
    rerun_with_shim,
    window_instructions,
)

from loyaltysdk import Basket, Line, Money, Points, Till
from loyaltysdk._cli_demo import DEMO_RULES, demo_rules
from loyaltysdk.ledger import Posting

BLOCK = 50
LOTS = 10_000
#: Points a benchmark checkout redeems, and what each of the big file's lots holds.
REDEEM = 100
#: A line as the POS scanned it: sku, quantity, unit price, category.
Scanned = tuple[str, int, int, str]


class Shop:
    """A till with members who hold points and wallet value, and the benchmark's checkout."""

    def __init__(self, path: Path, members: int, *, fresh: bool = True) -> None:
        self.till = Till.open(
            path,
            store="S001",
            till_id="S001-T1",
            currency="EUR",
            timezone="Europe/Berlin",
            rules=demo_rules(),
            create=fresh,
        )
        self.rng = random.Random(5)
        self.uids = [bytes([4]) + m.to_bytes(6, "big") for m in range(members)]
        if fresh:
            for m, uid in enumerate(self.uids):
                self.till.enrol(f"M-{m}", card_uid=uid)
                self.till.top_up(f"M-{m}", Money(1_000_000, "EUR"), payment_ref=f"seed-{m}")
                big = Basket("EUR", [Line("TV", 1, 500_000, category="electronics")])
                self.till.checkout(big, self.till.identify(uid)).complete(f"seed-R-{m}")
        self.skus = [(f"SKU{n}", self.rng.choice(DEMO_RULES["_categories"])) for n in range(500)]

    def draw(self) -> list[Scanned]:
        """A basket's 20 lines as the POS scanned them: (sku, quantity, price, category)."""
        rng = self.rng
        return [
            (sku, rng.randint(1, 3), rng.randint(50, 2_000), category)
            for sku, category in rng.sample(self.skus, 20)
        ]

    def checkout(
        self, n: int, member: int | None = None, drawn: list[Scanned] | None = None
    ) -> float:
        """One checkout; the POS builds the basket's `Line`s here (SDK work), from lines
        drawn before (the benchmark's random draws are not counted as the SDK's)."""
        till = self.till
        uid = self.uids[n % len(self.uids) if member is None else member]
        scanned = self.draw() if drawn is None else drawn
        lines = [Line(sku, qty, price, category=category) for sku, qty, price, category in scanned]
        start = time.perf_counter()
        sale = till.checkout(Basket("EUR", lines), till.identify(uid))
        sale.redeem_points(min(REDEEM, sale.quote().max_redeemable))
        sale.complete(f"B-{n}-{member}")
        return time.perf_counter() - start

    def balance(self, member: int) -> float:
        start = time.perf_counter()
        self.till.balance(f"M-{member}")
        return time.perf_counter() - start


def counts() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "till.db"
        shop = Shop(path, 20)
        for n in range(5):
            shop.checkout(-n - 1)
        n = 50
        with Counter(shop.till.ledger.store.connection, path) as counted:
            shop.checkout(-100)  # the first commit after the WAL's reset writes its header
            statements, commits, flushed = counted.statements, counted.commits, fsyncs()
            for i in range(n):
                shop.checkout(i)
            statements, commits = counted.statements - statements, counted.commits - commits
            flushed = fsyncs() - flushed
        shop.till.close()
    return {
        "statements": statements / n,
        "commits": commits / n,
        "frames": counted.frames / (n + 1),
        "fsyncs": flushed / n,
    }


def wall(count: int) -> tuple[float, float, float]:
    """p50 of the bare commit and of a checkout, alternating blocks; and fsyncs per checkout."""
    with tempfile.TemporaryDirectory() as tmp:
        shop = Shop(Path(tmp) / "till.db", 200)
        bare = BareCommit(Path(tmp) / "bare.db")
        for n in range(100):
            bare.once()
            shop.checkout(-n - 1)
        bare_times, times = [], []
        flushed = 0
        for block in range(0, count, BLOCK):
            bare_times.extend(bare.once() for _ in range(BLOCK))
            before = fsyncs()
            times.extend(shop.checkout(n) for n in range(block, block + BLOCK))
            flushed += fsyncs() - before
        shop.till.ledger.check()
        shop.till.close()
        bare.close()
    return percentile(bare_times, 0.5), percentile(times, 0.5), flushed / count


def big_file(entries: int) -> Path:
    """A till file with `entries` journal entries and member M-0 holding LOTS open lots.

    Each lot holds what one checkout redeems, so a redemption takes one lot
    here as on the fresh file (whose lots are the seed sale's and each
    checkout's earnings): the two do the same work, and only the file's size
    and the lots the member holds differ. With one-point lots, a redemption
    of 100 points would rightly write 100 lots and 100 lot moves, work the
    fresh file's checkout does not do.
    """
    BUILD.mkdir(exist_ok=True)
    path = BUILD / f"till-{entries}-lots{REDEEM}.db"
    if path.exists():
        return path
    building = path.with_suffix(".building")
    for leftover in BUILD.glob(f"{building.name}*"):
        leftover.unlink()
    shop = Shop(building, 20)
    ledger = shop.till.ledger
    ledger.open_account("sys:bench:a", "EUR")
    ledger.open_account("sys:bench:b", "EUR")
    account = shop.till.points_account("M-0")
    expires = datetime.now(UTC) + timedelta(days=3650)
    made, batch = 0, 2_000
    print(f"building {path.name}: {entries:,} journal entries (once)", file=sys.stderr)
    while made < entries:
        with ledger.atomic():
            for _ in range(min(batch, entries - made)):
                if made < LOTS:  # earnings: each its own open lot
                    ledger.transfer(
                        f"lot-{made}",
                        [
                            Posting.debit("sys:points:issued", Points(REDEEM)),
                            Posting.credit(account, Points(REDEEM), expires_at=expires),
                        ],
                    )
                else:
                    amount = Money(1 + made % 997, "EUR")
                    ledger.transfer(
                        f"bulk-{made}",
                        [
                            Posting.debit("sys:bench:a", amount),
                            Posting.credit("sys:bench:b", amount),
                        ],
                    )
                made += 1
    shop.till.close()
    os.replace(building, path)
    return path


def flat_with_size(entries: int, rounds: int) -> tuple[float, float]:
    """(checkout, balance) p50 on the big file over those on a fresh one, for member M-0."""
    source = big_file(entries)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "big.db"
        shutil.copy(source, copy)
        fresh = Shop(Path(tmp) / "fresh.db", 20)
        big = Shop(copy, 20, fresh=False)
        for shop in (fresh, big):
            for n in range(10):
                shop.checkout(-n - 1, member=0)
        times: dict[str, list[float]] = {"fc": [], "bc": [], "fb": [], "bb": []}
        for n in range(rounds):
            times["fc"].append(fresh.checkout(n, member=0))
            times["bc"].append(big.checkout(n, member=0))
            times["fb"].append(fresh.balance(0))
            times["bb"].append(big.balance(0))
        for shop in (fresh, big):
            shop.till.close()
    p50 = {k: percentile(v, 0.5) for k, v in times.items()}
    for name, c, b in (("fresh file", "fc", "fb"), ("big file  ", "bc", "bb")):
        print(f"{name}  checkout p50 {p50[c] * 1e3:7.2f} ms   balance p50 {p50[b] * 1e3:7.2f} ms")
    print(f"(big: {entries:,} journal entries, {LOTS:,} open lots for the member)")
    return p50["bc"] / p50["fc"], p50["bb"] / p50["fb"]


def main() -> None:
    phase, count, rest = parse_phase(sys.argv[1:])
    full = "--full" in rest
    if phase == "instr":  # under callgrind: the same set-up, then `count` checkouts
        with tempfile.TemporaryDirectory() as tmp:
            shop = Shop(Path(tmp) / "till.db", 5)
            for n in range(3):
                shop.checkout(-n - 1)
            baskets = [shop.draw() for _ in range(count or 0)]
            with counting():
                for n, drawn in enumerate(baskets):
                    shop.checkout(n, drawn=drawn)
        return
    if phase == "wall":
        bare, checkout, flushed = wall(count or 1_000)
        print(f"WALL {bare} {checkout} {flushed}")
        return
    runs = 10_000 if full else 1_000
    seen = counts()
    print(
        f"per checkout: {seen['statements']:.1f} SQL statements, {seen['commits']:.2f} commits,"
        f" {seen['frames']:.1f} WAL frames (pages written)"
    )
    instr = window_instructions(["--phase", "instr"], 50)
    print(f"per checkout: {instr / 1e6:.2f} M instructions (callgrind, inside 50 checkouts)")
    ratios = {}
    for delay in (200, 1_000):
        out = rerun_with_shim(delay, ["--phase", "wall", "--count", str(runs)])
        bare, checkout, flushed = (float(x) for x in out.split("WALL ")[1].split())
        ratios[delay] = checkout / bare
        print(
            f"flush held at {delay:>5} us: bare commit p50 {bare * 1e6:7.0f} us, checkout p50"
            f" {checkout * 1e6:7.0f} us, ratio {ratios[delay]:.2f}, {flushed:.2f} fsyncs/checkout"
        )
    bare, checkout, _ = wall(runs)
    print(
        f"real disk:              bare commit p50 {bare * 1e6:7.0f} us, checkout p50"
        f" {checkout * 1e6:7.0f} us, ratio {checkout / bare:.2f}"
    )
    scale_checkout, scale_balance = flat_with_size(1_000_000 if full else 100_000, 200)
    print(f"big / fresh: checkout {scale_checkout:.2f}x, balance {scale_balance:.2f}x")
    checks = {
        "one commit": seen["commits"] == 1,
        "statements <= 20": seen["statements"] <= 20,
        "instructions <= 1.5 M": instr <= 1.5e6,
        "ratio <= 2.5 at 200 us": ratios[200] <= 2.5,
        "ratio <= 2.5 at 1 ms": ratios[1_000] <= 2.5,
        "flat with size <= 1.3x": max(scale_checkout, scale_balance) <= 1.3,
    }
    for name, ok in checks.items():
        print(f"  {'ok    ' if ok else 'missed'} {name}")
    result("checkout", instr, 1.5e6, all(checks.values()))


if __name__ == "__main__":
    main()
