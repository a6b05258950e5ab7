# SPDX-License-Identifier: Apache-2.0
"""Earning rules: every condition kind, effects, caps, exclusions, rounding, tiers, time."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltysdk.rules import (
    Basket,
    BasketError,
    Context,
    Line,
    Member,
    RuleError,
    evaluate,
    load_rules,
)
from loyaltysdk.rules._schema import RulesError

BERLIN = "Europe/Berlin"
# A Wednesday, 12:00 in Berlin (CET, UTC+1).
NOON = datetime(2026, 1, 14, 11, 0, tzinfo=UTC)
BASE = {"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}


def ruleset(*rules: dict[str, Any], **top: Any) -> Any:
    document = {"schema": 1, "version": 3, "currency": "EUR", "rules": [BASE, *rules], **top}
    return load_rules(document)


def earn(
    rules: Any,
    lines: list[Line] | None = None,
    member: Member | None = None,
    *,
    at: datetime = NOON,
    store: str = "S1",
    region: str = "north",
) -> Any:
    basket = Basket("EUR", lines or [Line("SKU1", 1, 1000, category="food", brand="acme")])
    return evaluate(rules, basket, member or Member("M1"), Context(store, at, BERLIN, region))


EXTRA = {"type": "bonus", "points": 7, "per": "line"}
TIERS = {
    "window_days": 365,
    "review": "quarter",
    "levels": [
        {"name": "Silver", "min_spend": 0},
        {"name": "Gold", "min_spend": 50_000},
        {"name": "VIP", "min_spend": 200_000},
    ],
}


@pytest.mark.parametrize(
    ("condition", "member", "kwargs", "applies"),
    [
        ({"who": {"tiers": ["Gold"]}}, Member("M", tier="Gold"), {}, True),
        ({"who": {"tiers": ["Gold"]}}, Member("M", tier="Silver"), {}, False),
        ({"who": {"segments": ["students"]}}, Member("M", segments={"students"}), {}, True),
        ({"who": {"segments": ["students"]}}, Member("M"), {}, False),
        ({"who": {"birthday_month": True}}, Member("M", birthday=date(1990, 1, 30)), {}, True),
        ({"who": {"birthday_month": True}}, Member("M", birthday=date(1990, 2, 1)), {}, False),
        ({"who": {"birthday_month": True}}, Member("M"), {}, False),
        ({"what": {"skus": ["SKU1"]}}, None, {}, True),
        ({"what": {"skus": ["SKU2"]}}, None, {}, False),
        ({"what": {"categories": ["food"]}}, None, {}, True),
        ({"what": {"categories": ["toys"]}}, None, {}, False),
        ({"what": {"brands": ["acme"]}}, None, {}, True),
        ({"what": {"brands": ["other"]}}, None, {}, False),
        ({"when": {"from": "2026-01-14", "until": "2026-01-14"}}, None, {}, True),
        ({"when": {"from": "2026-01-15"}}, None, {}, False),
        ({"when": {"until": "2026-01-13"}}, None, {}, False),
        ({"when": {"weekdays": ["wed"]}}, None, {}, True),
        ({"when": {"weekdays": ["sat", "sun"]}}, None, {}, False),
        ({"when": {"hours": ["12:00", "13:00"]}}, None, {}, True),  # from is inclusive
        ({"when": {"hours": ["11:00", "12:00"]}}, None, {}, False),  # until is exclusive
        ({"where": {"stores": ["S1"]}}, None, {}, True),
        ({"where": {"stores": ["S2"]}}, None, {}, False),
        ({"where": {"regions": ["north"]}}, None, {}, True),
        ({"where": {"regions": ["south"]}}, None, {}, False),
    ],
)
def test_every_condition_kind(
    condition: dict[str, Any], member: Member | None, kwargs: dict[str, Any], applies: bool
) -> None:
    rules = ruleset({"id": "extra", "effect": EXTRA, **condition}, tiers=TIERS)
    result = earn(rules, member=member, **kwargs)
    assert result.points == 10 + (7 if applies else 0)
    assert any(c.rule == "extra" for c in result.lines[0].contributions) is applies


def test_effects_explained_per_line() -> None:
    rules = ruleset(
        {
            "id": "coffee-x3",
            "effect": {"type": "multiply", "factor": "3"},
            "what": {"categories": ["coffee"]},
        },
        {
            "id": "coffee-x2",
            "effect": {"type": "multiply", "factor": "2"},
            "what": {"categories": ["coffee"]},
        },
        {
            "id": "per-unit",
            "effect": {"type": "bonus", "points": 5, "per": "unit"},
            "what": {"skus": ["B"]},
        },
        {
            "id": "visit",
            "description": "visit bonus",
            "effect": {"type": "bonus", "points": 20, "per": "receipt"},
        },
        {"id": "big", "effect": {"type": "basket_bonus", "threshold": 2000, "points": 100}},
    )
    lines = [Line("A", 2, 500, category="coffee"), Line("B", 3, 300, category="food")]
    result = earn(rules, lines)
    a, b = result.lines
    # A: 10 base, x3 wins over x2 (the highest multiplier applies): +20.
    assert {c.rule: c.points for c in a.contributions} == {"base": 10, "coffee-x3": 20}
    assert {c.rule: c.points for c in b.contributions} == {"base": 9, "per-unit": 15}
    assert {c.rule: c.points for c in result.receipt} == {"visit": 20}  # 1900 < 2000: no "big"
    assert result.points == 10 + 20 + 9 + 15 + 20
    assert "A: 20 pts - coffee-x3" in result.explain()
    bigger = earn(rules, [*lines, Line("C", 1, 100)])
    assert {c.rule for c in bigger.receipt} == {"visit", "big"}  # exactly at the threshold


def test_exclusions_global_and_discounted() -> None:
    rules = ruleset(
        {"id": "promo", "effect": {"type": "bonus", "points": 50}, "exclude_discounted": True},
        {"id": "big", "effect": {"type": "basket_bonus", "threshold": 1000, "points": 100}},
        exclude={"categories": ["gift-card", "tobacco"], "skus": ["VOUCHER-10"]},
    )
    lines = [
        Line("GC", 1, 5000, category="gift-card"),
        Line("CIG", 1, 800, category="tobacco"),
        Line("VOUCHER-10", 1, 1000),
        Line("MILK", 1, 900, discount=100),
    ]
    result = earn(rules, lines)
    assert [line.excluded is not None for line in result.lines] == [True, True, True, False]
    milk = result.lines[3]
    assert {c.rule: c.points for c in milk.contributions} == {"base": 8}  # no promo: discounted
    assert result.points == 8  # excluded lines do not reach the 1000 threshold either
    assert "GC: no points (gift-card earns no points)" in result.explain()


@pytest.mark.parametrize(
    ("policy", "expected"), [("down", 2), ("up", 3), ("half_up", 2), ("half_even", 2)]
)
def test_rounding_once_per_receipt(policy: str, expected: int) -> None:
    rules = ruleset(rounding=policy)
    # Three lines of 0.83 points each: per-line rounding down would give 0.
    lines = [Line(f"L{i}", 1, 83) for i in range(3)]
    result = earn(rules, lines)
    assert result.exact == Fraction(249, 100)
    assert result.points == expected
    assert sum(line.points for line in result.lines) == expected
    half = earn(rules, [Line("H", 1, 250)])  # exactly 2.5
    assert half.points == {"down": 2, "up": 3, "half_up": 3, "half_even": 2}[policy]


def test_caps_rule_receipt_and_member() -> None:
    rules = ruleset(
        {
            "id": "double",
            "effect": {"type": "bonus", "points": 40, "per": "unit"},
            "cap_per_receipt": 100,
        },
        caps={"per_receipt": 150, "per_member": {"points": 1000, "period": "month"}},
    )
    result = earn(rules, [Line("A", 5, 1000)])  # base 50, bonus 200 -> capped 100; total 150
    assert result.points == 150 and "rule:double" in result.capped_by
    result = earn(rules, [Line("A", 10, 1000)])  # base 100 + 100 = 200 -> receipt cap 150
    assert result.points == 150 and "receipt" in result.capped_by
    near_cap = Member("M", earned_this_period=960)
    result = earn(rules, [Line("A", 5, 1000)], near_cap)
    assert result.points == 40 and "member month" in result.capped_by
    assert earn(rules, [Line("A", 5, 1000)], Member("M", earned_this_period=2000)).points == 0


def test_hours_window_across_midnight() -> None:
    rules = ruleset({"id": "night", "effect": EXTRA, "when": {"hours": ["22:00", "02:00"]}})
    tz = ZoneInfo(BERLIN)
    for hour, minute, applies in [
        (21, 59, False),
        (22, 0, True),
        (23, 30, True),
        (0, 0, True),
        (1, 59, True),
        (2, 0, False),
        (12, 0, False),
    ]:
        at = datetime(2026, 1, 14, hour, minute, tzinfo=tz)
        assert (earn(rules, at=at).points == 17) is applies, (hour, minute)


def test_windows_follow_the_wall_clock_across_a_dst_change() -> None:
    # Berlin goes from CET to CEST at 2026-03-29 02:00 local (01:00 UTC).
    rules = ruleset(
        {"id": "morning", "effect": EXTRA, "when": {"hours": ["08:00", "09:00"]}},
        {
            "id": "sunday",
            "effect": {"type": "bonus", "points": 1},
            "when": {"weekdays": ["sun"], "from": "2026-03-29", "until": "2026-03-29"},
        },
    )
    before = datetime(2026, 3, 28, 7, 30, tzinfo=UTC)  # 08:30 CET: inside
    after = datetime(2026, 3, 29, 7, 30, tzinfo=UTC)  # 09:30 CEST: outside, one hour later
    inside_after = datetime(2026, 3, 29, 6, 30, tzinfo=UTC)  # 08:30 CEST
    assert earn(rules, at=before).points == 17
    assert earn(rules, at=after).points == 10 + 1
    assert earn(rules, at=inside_after).points == 17 + 1
    # 23:30 UTC on Saturday is already Sunday 00:30 in Berlin (and the rule's day).
    assert earn(rules, at=datetime(2026, 3, 28, 23, 30, tzinfo=UTC)).points == 11


def test_pending_and_expiry_dates_are_local() -> None:
    rules = ruleset(points={"pending_days": 14, "expiry_days": 365})
    late = datetime(2026, 1, 14, 23, 30, tzinfo=UTC)  # 00:30 on the 15th in Berlin
    result = earn(rules, at=late)
    assert result.spendable_on == date(2026, 1, 29)
    assert result.expires_on == date(2026, 1, 15) + timedelta(days=365)


@pytest.mark.parametrize(
    ("spend", "tier"),
    [(0, "Silver"), (49_999, "Silver"), (50_000, "Gold"), (199_999, "Gold"), (200_000, "VIP")],
)
def test_tier_boundaries_exactly_at_the_threshold(spend: int, tier: str) -> None:
    policy = ruleset(tiers=TIERS).tiers
    assert policy is not None
    assert policy.qualified(spend) == tier


def test_tiers_upgrade_at_once_and_downgrade_at_review() -> None:
    policy = ruleset(tiers=TIERS).tiers
    assert policy is not None
    assert policy.upgrade("Silver", 50_000) == "Gold"
    assert policy.upgrade("VIP", 10) == "VIP"  # no downgrade mid-period
    assert policy.review_tier("VIP", 10) == "Silver"
    assert policy.next_review(date(2026, 2, 10)) == date(2026, 3, 31)
    assert policy.next_review(date(2026, 12, 31)) == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("document", "rule", "field"),
    [
        (
            {"rules": [{"id": "r", "effect": {"type": "earn", "points": 1.5, "per": 100}}]},
            "r",
            "effect.points",
        ),
        (
            {"rules": [{"id": "r", "effect": {"type": "multiply", "factor": 1.5}}]},
            "r",
            "effect.factor",
        ),
        ({"rules": [{"id": "r", "effect": {"type": "wrong"}}]}, "r", "effect.type"),
        (
            {"rules": [{"id": "r", "effect": EXTRA, "when": {"hours": ["25:00", "02:00"]}}]},
            "r",
            "when.hours[0]",
        ),
        (
            {"rules": [{"id": "r", "effect": EXTRA, "when": {"weekdays": ["funday"]}}]},
            "r",
            "when.weekdays",
        ),
        (
            {"rules": [{"id": "r", "effect": EXTRA, "when": {"from": "2026-13-01"}}]},
            "r",
            "when.from",
        ),
        (
            {
                "rules": [{"id": "r", "effect": EXTRA, "who": {"tiers": ["Platinum"]}}],
                "tiers": TIERS,
            },
            "r",
            "who.tiers",
        ),
        ({"rules": [{"id": "r", "effect": EXTRA, "wehre": {}}]}, "r", "wehre"),
        ({"rules": [{"id": "r", "effect": EXTRA}, {"id": "r", "effect": EXTRA}]}, "r", "id"),
        ({"rules": [{"effect": EXTRA}]}, "#0", "id"),
        ({"currency": "XXQ", "rules": []}, "", "currency"),
        ({"schema": 2, "rules": []}, "", "schema"),
    ],
)
def test_invalid_documents_name_the_rule_and_field(
    document: dict[str, Any], rule: str, field: str
) -> None:
    full = {"schema": 1, "version": 1, "currency": "EUR", **document}
    with pytest.raises(RuleError) as caught:
        load_rules(full)
    assert (caught.value.rule, caught.value.field) == (rule, field)
    assert field in str(caught.value)


def test_loads_json_and_toml_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "r.json").write_text(
        json.dumps({"schema": 1, "version": 2, "currency": "JPY", "rules": [BASE]})
    )
    (tmp_path / "r.toml").write_text(
        'schema = 1\nversion = 2\ncurrency = "EUR"\n[[rules]]\nid = "base"\n'
        '[rules.effect]\ntype = "earn"\npoints = 1\nper = 100\n'
        "[rules.when]\nfrom = 2026-01-01\n"
    )
    assert load_rules(tmp_path / "r.json").currency == "JPY"
    assert load_rules(tmp_path / "r.toml").rules[0].when.start == date(2026, 1, 1)


def test_bad_baskets_and_contexts() -> None:
    with pytest.raises(BasketError):
        Line("A", 0, 100)
    with pytest.raises(BasketError):
        Line("A", 1, 100, discount=101)
    with pytest.raises(BasketError):
        Line("A", 1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(RulesError):
        Context("S1", datetime(2026, 1, 1))  # naive time
    with pytest.raises(RulesError):
        evaluate(ruleset(), Basket("USD", [Line("A", 1, 100)]), Member("M"), Context("S", NOON))


lines_strategy = st.lists(
    st.builds(
        Line,
        sku=st.sampled_from(["A", "B", "C", "GC"]),
        quantity=st.integers(1, 5),
        unit_price=st.integers(0, 20_000),
        category=st.sampled_from(["food", "coffee", "gift-card"]),
    ),
    min_size=1,
    max_size=12,
)
PROPERTY_RULES = ruleset(
    {
        "id": "x15",
        "effect": {"type": "multiply", "factor": "1.5"},
        "what": {"categories": ["coffee"]},
    },
    {
        "id": "unit",
        "effect": {"type": "bonus", "points": 3, "per": "unit"},
        "what": {"skus": ["B"]},
    },
    {"id": "big", "effect": {"type": "basket_bonus", "threshold": 10_000, "points": 50}},
    exclude={"categories": ["gift-card"]},
    caps={"per_receipt": 2_000},
    rounding="half_up",
)


@given(lines_strategy, st.integers(0, 3_000))
def test_lines_always_add_up_to_the_rounded_total(lines: list[Line], earned: int) -> None:
    result = earn(PROPERTY_RULES, lines, Member("M", earned_this_period=earned))
    assert result.points == sum(line.points for line in result.lines) + sum(
        c.points for c in result.receipt
    )
    assert result.points == math.floor(result.exact + Fraction(1, 2))  # half_up, once
    assert 0 <= result.points <= 2_000
    for line in result.lines:
        assert all(c.points >= 0 for c in line.contributions)
        if line.excluded:
            assert line.points == 0 and not line.contributions


@given(lines_strategy)
def test_evaluation_is_pure(lines: list[Line]) -> None:
    first = earn(PROPERTY_RULES, lines)
    assert earn(PROPERTY_RULES, list(lines)) == first
