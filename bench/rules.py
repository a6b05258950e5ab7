# SPDX-License-Identifier: Apache-2.0
"""Rules evaluation throughput: a 30-line basket under 200 active rules.

The baseline, measured in the same run, is the cheapest honest evaluation:
one base earn rule on the same baskets, so the ratio shows what 200 rules
cost over the floor. Target: at least 2,000 baskets per second.

    python bench/rules.py          # quick: 2,000 baskets
    python bench/rules.py --full   # 20,000 baskets
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

from _common import parse_args, result

from loyaltysdk.rules import Basket, Context, Line, Member, RulesEngine, load_rules

CATEGORIES = [f"cat{n}" for n in range(40)]
BRANDS = [f"brand{n}" for n in range(60)]
SKUS = [f"SKU{n:05d}" for n in range(5_000)]


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


def run(engine: RulesEngine, work: list[Basket], member: Member, context: Context) -> float:
    start = time.perf_counter()
    for basket in work:
        engine.evaluate(basket, member, context)
    return len(work) / (time.perf_counter() - start)


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 20_000 if args.full else 2_000
    rng = random.Random(7)
    full = RulesEngine(load_rules(rules_document(200, rng)))
    floor = RulesEngine(load_rules(rules_document(1, rng)))
    work = baskets(count, rng)
    member = Member("M1", tier="Gold")
    # A Wednesday afternoon in Berlin, so the time-limited rules are active.
    context = Context("S001", datetime(2026, 1, 14, 14, 0, tzinfo=UTC), "Europe/Berlin")
    run(full, work[:200], member, context)  # warm up
    rate_floor = run(floor, work, member, context)
    rate = run(full, work, member, context)
    print(f"baskets: {count} x 30 lines")
    print(f"1 rule (baseline)   {rate_floor:10,.0f} baskets/s")
    slower = rate_floor / rate
    print(f"200 rules           {rate:10,.0f} baskets/s  ({slower:.1f}x the baseline's time)")
    result("rules", rate, 2000, rate >= 2000)


if __name__ == "__main__":
    main()
