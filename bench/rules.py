# SPDX-License-Identifier: Apache-2.0
"""Rules evaluation: instructions and time per 30-line basket under 200 active rules.

The figure that decides is counted, not timed: callgrind's instructions
inside the N evaluations only, divided by N (`_measure.window_instructions`:
start, imports and set-up are not counted at all), which is the same on a
busy machine as on an idle one. The baseline, counted and timed in the same run, is the
cheapest honest evaluation: one base earn rule on the same baskets, so the
ratio shows what 200 rules cost over the floor. Baskets per second (wall and
CPU time) are printed beside the counts. Target: at most 1,000,000
instructions per basket under 200 rules (about 2,000 baskets/s on one idle
core).

    python bench/rules.py          # quick: 2,000 baskets timed, 100 counted
    python bench/rules.py --full   # 20,000 baskets timed, 1,000 counted

Started with ``--phase 1|200|explain --count N`` (as callgrind runs it), it
builds the same engines and baskets, evaluates N baskets with the phase's
rule set (``explain``: 200 rules and the receipt text the till prints;
``checkout``: the demo chain's rules on 20-line baskets as bench/checkout.py
scans them, with the receipt text, which is the rules' share of a till's
checkout) and exits.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

# The SDK no longer imports numpy (sqlite-utils, which loads pandas and
# numpy when installed, is imported only where it is used), but a user's
# environment may: numpy's OpenBLAS threads spin after start-up, callgrind
# counts every thread, and their spinning follows the wall clock (5 % on a
# busy machine). One thread keeps the counts repeatable either way.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from _common import parse_args, result
from _measure import counting, parse_phase, window_instructions

from loyaltysdk._cli_demo import DEMO_RULES, demo_rules
from loyaltysdk.rules import Basket, Context, Line, Member, RulesEngine, load_rules

CATEGORIES = [f"cat{n}" for n in range(40)]
BRANDS = [f"brand{n}" for n in range(60)]
SKUS = [f"SKU{n:05d}" for n in range(5_000)]
TARGET = 1_000_000  # instructions per basket under 200 rules
WARM = 50  # evaluations before counting or timing: caches, zone lookups


def rules_document(count: int, rng: random.Random) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}
    ]
    for n in range(count - 1):
        kind = n % 4
        what: dict[str, Any] = (
            {"skus": rng.sample(SKUS, 5)}
            if n % 3 == 0
            else {"categories": [rng.choice(CATEGORIES)]}
            if n % 3 == 1
            else {"brands": [rng.choice(BRANDS)]}
        )
        effect: dict[str, Any] = [
            {"type": "multiply", "factor": rng.choice(["1.5", "2", "3"])},
            {"type": "bonus", "points": rng.randint(5, 50), "per": "unit"},
            {"type": "earn", "points": 1, "per": 200},
            {"type": "basket_bonus", "threshold": rng.randint(2_000, 20_000), "points": 100},
        ][kind]
        rule: dict[str, Any] = {"id": f"r{n}", "effect": effect, "what": what}
        if n % 5 == 0:
            rule["when"] = {
                "weekdays": ["mon", "tue", "wed", "thu", "fri"],
                "hours": ["08:00", "22:00"],
            }
        if n % 7 == 0:
            rule["who"] = {"tiers": ["Gold", "VIP"]}
        rules.append(rule)
    return {
        "schema": 1,
        "version": 1,
        "currency": "EUR",
        "rounding": "half_up",
        "exclude": {"categories": ["gift-card", "tobacco"]},
        "caps": {"per_receipt": 100_000, "per_member": {"points": 1_000_000, "period": "month"}},
        "tiers": {
            "window_days": 365,
            "levels": [
                {"name": "Silver", "min_spend": 0},
                {"name": "Gold", "min_spend": 50_000},
                {"name": "VIP", "min_spend": 200_000},
            ],
        },
        "rules": rules,
    }


def baskets(count: int, rng: random.Random) -> list[Basket]:
    out = []
    for _ in range(count):
        lines = [
            Line(
                rng.choice(SKUS),
                rng.randint(1, 4),
                rng.randint(50, 5_000),
                category=rng.choice(CATEGORIES),
                brand=rng.choice(BRANDS),
                discount=rng.choice([0, 0, 0, 10]),
            )
            for _ in range(30)
        ]
        out.append(Basket("EUR", lines))
    return out


def checkout_baskets(count: int) -> list[Basket]:
    """20-line baskets as bench/checkout.py's `Shop` draws them (its seed, SKUs, categories)."""
    rng = random.Random(5)
    skus = [(f"SKU{n}", rng.choice(DEMO_RULES["_categories"])) for n in range(500)]
    return [
        Basket(
            "EUR",
            [
                Line(sku, rng.randint(1, 3), rng.randint(50, 2_000), category=category)
                for sku, category in rng.sample(skus, 20)
            ],
        )
        for _ in range(count)
    ]


def run(
    engine: RulesEngine, work: list[Basket], member: Member, context: Context
) -> tuple[float, float]:
    """Baskets per second, by wall clock and by this process's CPU time."""
    start, cpu = time.perf_counter(), time.process_time()
    for basket in work:
        engine.evaluate(basket, member, context)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(work) / wall, len(work) / max(cpu, 1e-9)


def main() -> None:
    phase, count, rest = parse_phase(sys.argv[1:])
    sys.argv[1:] = rest
    args = parse_args(__doc__ or "")
    timed, counted = (20_000, 1_000) if args.full else (2_000, 100)
    # Everything below is built the same way in every run, counted or not:
    # a seeded generator and no set or dict order from string hashes.
    rng = random.Random(7)
    full = RulesEngine(load_rules(rules_document(200, rng)))
    floor = RulesEngine(load_rules(rules_document(1, rng)))
    # A counted child builds only the baskets it may evaluate (the first of
    # the same sequence), so callgrind does not spend minutes on set-up.
    work = baskets(timed if count is None else counted, rng)
    member = Member("M1", tier="Gold")
    # A Wednesday afternoon in Berlin, so the time-limited rules are active.
    context = Context("S001", datetime(2026, 1, 14, 14, 0, tzinfo=UTC), "Europe/Berlin")
    for basket in work[:WARM]:
        full.evaluate(basket, member, context).explain()
        floor.evaluate(basket, member, context).explain()
    if phase == "checkout":  # built only where counted, so the other phases' runs are as they were
        demo, demo_work = RulesEngine(demo_rules()), checkout_baskets(counted)
        # bench/checkout.py's seeded members are Gold; 15:00 in Berlin, after the morning bonus.
        gold = Member("M-0", tier="Gold")
        for basket in demo_work[:WARM]:
            demo.evaluate(basket, gold, context).explain()
    # The set-up's objects are not the evaluation's: out of the collector's
    # way, so a full collection costs what the evaluation allocated, not the
    # baskets, in the counted runs and in the timed ones alike.
    gc.collect()
    gc.freeze()

    if count is not None and phase == "checkout":
        with counting():
            for n in range(count):
                demo.evaluate(demo_work[n % len(demo_work)], gold, context).explain()
        return
    if count is not None:  # a counted child: exactly `count` evaluations, then exit
        engine = floor if phase == "1" else full
        explain = phase == "explain"
        with counting():
            for n in range(count):
                earned = engine.evaluate(work[n % len(work)], member, context)
                if explain:
                    earned.explain()
        return

    flags = ["--full"] if args.full else []
    counts = {
        name: window_instructions([*flags, "--phase", name], counted)
        for name in ("1", "200", "explain", "checkout")
    }
    run(full, work[:200], member, context)  # warm up the timed loop
    rate_floor, cpu_floor = run(floor, work, member, context)
    rate, cpu = run(full, work, member, context)
    print(f"baskets: {timed:,} timed, {counted:,} counted, 30 lines each")
    print(f"{'':22}{'instructions':>14}{'baskets/s':>12}{'(CPU time)':>12}")
    print(f"{'1 rule (baseline)':22}{counts['1']:14,.0f}{rate_floor:12,.0f}{cpu_floor:12,.0f}")
    print(f"{'200 rules':22}{counts['200']:14,.0f}{rate:12,.0f}{cpu:12,.0f}")
    print(f"{'200 rules + explain()':22}{counts['explain']:14,.0f}")
    print(f"{'checkout + explain()':22}{counts['checkout']:14,.0f}  (demo rules, 20 lines)")
    print(
        f"200 rules cost {counts['200'] / counts['1']:.1f}x the baseline's instructions, "
        f"{rate_floor / rate:.1f}x its time"
    )
    result("rules", counts["200"], TARGET, counts["200"] <= TARGET)


if __name__ == "__main__":
    main()
