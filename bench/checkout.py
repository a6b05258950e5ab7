# SPDX-License-Identifier: Apache-2.0
"""A full checkout against a bare one-row durable SQLite commit, in one run.

A checkout: identify the member by card UID, quote a 20-line basket under
the demo rules, redeem points (a hold), complete (one durable commit). The
baseline is one row in one durable commit on the same file system; the two
alternate in blocks. Target: p50 ratio at most 2.5.

    python bench/checkout.py          # quick: 1,000 checkouts
    python bench/checkout.py --full   # 10,000 checkouts
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from _common import BareCommit, parse_args, percentile, result

from loyaltysdk import Basket, Line, Money, Till
from loyaltysdk._cli_demo import DEMO_RULES, demo_rules

MEMBERS = 200
BLOCK = 50


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 10_000 if args.full else 1_000
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        till = Till.open(
            Path(tmp) / "till.db",
            store="S001",
            till_id="S001-T1",
            currency="EUR",
            timezone="Europe/Berlin",
            rules=demo_rules(),
        )
        uids = []
        for m in range(MEMBERS):
            uid = bytes([4]) + m.to_bytes(6, "big")
            till.enrol(f"M-{m}", card_uid=uid)
            till.top_up(f"M-{m}", Money(1_000_000, "EUR"), payment_ref=f"seed-{m}")
            uids.append(uid)
        # Give every member points to redeem.
        for m, uid in enumerate(uids):
            big = Basket("EUR", [Line("TV", 1, 500_000, category="electronics")])
            till.checkout(big, till.identify(uid)).complete(f"seed-R-{m}")
        skus = [(f"SKU{n}", rng.choice(DEMO_RULES["_categories"])) for n in range(500)]
        bare = BareCommit(Path(tmp) / "bare.db")

        def checkout(n: int) -> float:
            uid = uids[n % MEMBERS]
            lines = [
                Line(sku, rng.randint(1, 3), rng.randint(50, 2_000), category=category)
                for sku, category in rng.sample(skus, 20)
            ]
            start = time.perf_counter()
            who = till.identify(uid)
            sale = till.checkout(Basket("EUR", lines), who)
            quote = sale.quote()
            sale.redeem_points(min(100, quote.max_redeemable))
            sale.complete(f"B-{n}")
            return time.perf_counter() - start

        for n in range(100):  # warm up
            bare.once()
            checkout(-n - 1)
        bare_times, checkout_times = [], []
        for block in range(0, count, BLOCK):
            bare_times.extend(bare.once() for _ in range(BLOCK))
            checkout_times.extend(checkout(n) for n in range(block, block + BLOCK))
        till.ledger.check()
        till.close()
        bare.close()
    p50_bare, p99_bare = percentile(bare_times, 0.5), percentile(bare_times, 0.99)
    p50, p99 = percentile(checkout_times, 0.5), percentile(checkout_times, 0.99)
    ratio = p50 / p50_bare
    print(f"checkouts: {count}, 20 lines each, alternating blocks of {BLOCK} with the baseline")
    print(f"bare durable commit  p50 {p50_bare * 1e6:8.0f} us   p99 {p99_bare * 1e6:8.0f} us")
    print(f"full checkout        p50 {p50 * 1e6:8.0f} us   p99 {p99 * 1e6:8.0f} us")
    print(f"ratio                p50 {ratio:8.2f}      p99 {p99 / p99_bare:8.2f}")
    result("checkout", ratio, 2.5, ratio <= 2.5)


if __name__ == "__main__":
    main()
