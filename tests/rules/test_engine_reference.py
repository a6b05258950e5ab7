# SPDX-License-Identifier: Apache-2.0
"""The compiled engine against the plain reference evaluator, on random rules and baskets.

The engine decides conditions once per basket and caches what they leave
active (issue 17); the reference checks every rule on every line. They must
agree on everything a till or a printer sees: points, exact values, every
contribution in its order, exclusions, caps, dates and explain(); and, as
the engine builds its result objects from columns rather than through
their constructors, on their types, reprs and hashes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loyaltysdk.rules import (
    Basket,
    Context,
    Contribution,
    EarnResult,
    Line,
    LineResult,
    Member,
    RulesEngine,
    load_rules,
)

from . import reference

SKUS = ["A", "B", "C", "D", "GC"]
CATEGORIES = ["food", "coffee", "toys", "gift-card"]
BRANDS = ["acme", "zeta", "ohm"]
TIERS = ["Silver", "Gold", "VIP"]
RULE_IDS = [f"r{n}" for n in range(12)]


def some(values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)


effects = st.one_of(
    st.builds(
        lambda points, per: {"type": "earn", "points": points, "per": per},
        st.integers(1, 3),
        st.sampled_from([1, 7, 50, 100, 150, 200, 300]),
    ),
    st.builds(
        lambda factor: {"type": "multiply", "factor": factor},
        st.sampled_from(["0.5", "1.25", "1.5", "2", "2.5", "3"]),
    ),
    st.builds(
        lambda points, per: {"type": "bonus", "points": points, "per": per},
        st.integers(1, 60),
        st.sampled_from(["unit", "line", "receipt"]),
    ),
    st.builds(
        lambda threshold, points: {
            "type": "basket_bonus",
            "threshold": threshold,
            "points": points,
        },
        st.integers(1, 20_000),
        st.integers(1, 200),
    ),
)
whats = st.fixed_dictionaries(
    {},
    optional={"skus": some(SKUS), "categories": some(CATEGORIES), "brands": some(BRANDS)},
)
whos = st.fixed_dictionaries(
    {},
    optional={
        "tiers": some(TIERS),
        "segments": some(["students", "staff"]),
        "birthday_month": st.booleans(),
    },
)
whens = st.fixed_dictionaries(
    {},
    optional={
        "from": st.sampled_from(["2026-01-01", "2026-01-14", "2026-01-15"]),
        "until": st.sampled_from(["2026-01-15", "2026-06-30", "2026-12-31"]),
        "weekdays": some(["mon", "wed", "sat"]),
        "hours": st.sampled_from([["08:00", "12:00"], ["11:00", "22:00"], ["22:00", "02:00"]]),
    },
)
wheres = st.fixed_dictionaries(
    {}, optional={"stores": some(["S1", "S2"]), "regions": some(["north", "south"])}
)


@st.composite
def rule_sets(draw: st.DrawFn) -> Any:
    rules = []
    for n in range(draw(st.integers(0, len(RULE_IDS)))):
        rule: dict[str, Any] = {"id": RULE_IDS[n], "effect": draw(effects)}
        for name, strategy in (("what", whats), ("who", whos), ("when", whens), ("where", wheres)):
            if draw(st.booleans()):
                rule[name] = draw(strategy)
        if draw(st.integers(0, 3)) == 0:
            rule["exclude_discounted"] = True
        if draw(st.integers(0, 3)) == 0:
            rule["cap_per_receipt"] = draw(st.integers(1, 300))
        if draw(st.integers(0, 3)) == 0:
            rule["once_per"] = draw(st.sampled_from(["month", "year"]))
        if draw(st.booleans()):
            rule["description"] = f"rule number {n}"
        rules.append(rule)
    document: dict[str, Any] = {
        "schema": 1,
        "version": 4,
        "currency": "EUR",
        "rounding": draw(st.sampled_from(["down", "up", "half_up", "half_even"])),
        "tiers": {
            "levels": [{"name": t, "min_spend": m} for t, m in zip(TIERS, (0, 10, 20), strict=True)]
        },
        "rules": rules,
    }
    if draw(st.booleans()):
        document["exclude"] = {"categories": ["gift-card"], "skus": draw(some(SKUS))}
    caps: dict[str, Any] = {}
    if draw(st.booleans()):
        caps["per_receipt"] = draw(st.integers(0, 2_000))
    if draw(st.booleans()):
        caps["per_member"] = {"points": draw(st.integers(0, 5_000)), "period": "quarter"}
    if caps:
        document["caps"] = caps
    if draw(st.booleans()):
        document["points"] = {"pending_days": 14, "expiry_days": 365}
    return load_rules(document)


lines = st.builds(
    lambda sku, quantity, price, category, brand, discount: Line(
        sku, quantity, price, category, brand, min(discount, quantity * price)
    ),
    st.sampled_from(SKUS),
    st.integers(1, 5),
    st.integers(0, 9_000),
    st.sampled_from(CATEGORIES),
    st.sampled_from([*BRANDS, ""]),
    st.sampled_from([0, 0, 1, 250]),
)
baskets = st.builds(lambda ls: Basket("EUR", ls), st.lists(lines, min_size=0, max_size=10))
members = st.builds(
    Member,
    st.just("M1"),
    tier=st.sampled_from(["", *TIERS]),
    segments=st.frozensets(st.sampled_from(["students", "staff"])),
    birthday=st.sampled_from([None, date(1990, 1, 3), date(1985, 7, 9)]),
    earned_this_period=st.integers(0, 6_000),
    used_rules=st.frozensets(st.sampled_from(RULE_IDS), max_size=3),
)
contexts = st.builds(
    Context,
    st.sampled_from(["S1", "S2"]),
    st.sampled_from(
        [
            datetime(2026, 1, 14, 10, 30, tzinfo=UTC),  # Wednesday 11:30 in Berlin
            datetime(2026, 1, 14, 23, 30, tzinfo=UTC),  # Thursday 00:30 in Berlin
            datetime(2026, 1, 17, 21, 0, tzinfo=UTC),  # Saturday 22:00 in Berlin
            datetime(2026, 7, 1, 6, 0, tzinfo=UTC),
            datetime(2026, 1, 1, 2, 0, tzinfo=UTC),  # still 31 December in New York
        ]
    ),
    st.sampled_from(["Europe/Berlin", "America/New_York"]),
    st.sampled_from(["", "north", "south"]),
)


def seen(result: EarnResult) -> Any:
    """Everything of a result, the exact values of contributions included."""

    def parts(contributions: Any) -> list[Any]:
        return [(c.rule, c.description, c.points, c.exact) for c in contributions]

    return (
        result.points,
        result.exact,
        [
            (r.index, r.sku, r.net, r.points, parts(r.contributions), r.excluded)
            for r in result.lines
        ],
        parts(result.receipt),
        result.capped_by,
        result.spendable_on,
        result.expires_on,
        result.ruleset_version,
        result.explain(),
    )


@settings(max_examples=400, deadline=None)
@given(rule_sets(), st.lists(st.tuples(baskets, members, contexts), min_size=1, max_size=4))
def test_engine_agrees_with_the_reference(rules: Any, sales: list[Any]) -> None:
    engine = RulesEngine(rules)  # one engine for several sales: its plans are reused
    for basket, member, context in sales:
        got = engine.evaluate(basket, member, context)
        want = reference.evaluate(rules, basket, member, context)
        assert seen(got) == seen(want)
        assert got == want
        # explain() reads the tuples by index; the text is the attributes' own.
        assert got.explain() == reference.explain(got) == reference.explain(want)
        # The engine builds its result objects from columns, the reference
        # through their constructors: the same types, reprs and hashes.
        assert repr(got) == repr(want)
        assert hash(got) == hash(want)
        contributions = [c for r in got.lines for c in r.contributions] + list(got.receipt)
        assert {type(r) for r in got.lines} <= {LineResult}
        assert {type(c) for c in contributions} <= {Contribution}
        assert all(c._denominator > 0 for c in contributions)
