# SPDX-License-Identifier: Apache-2.0
"""The rules evaluated the plain way, as the oracle for the compiled engine.

Every rule is checked on every line, in document order, with a dictionary
of contributions keyed by (line or None, rule id): the evaluator as it was
before the engine compiled its plans (issue 17), without the indexes. Its
results are what `RulesEngine.evaluate` must give, contribution for
contribution, exact value for exact value.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from fractions import Fraction

from loyaltysdk.rules import (
    Basket,
    Context,
    Contribution,
    EarnResult,
    Line,
    LineResult,
    Member,
    RuleSet,
)
from loyaltysdk.rules._schema import Rule, check_timezone

Key = tuple[int | None, str]


def _round(value: Fraction, policy: str) -> int:
    if policy == "down":
        return math.floor(value)
    if policy == "up":
        return math.ceil(value)
    if policy == "half_up":
        return math.floor(value + Fraction(1, 2))
    return round(value)  # half_even: Fraction rounds half to even


def _scale(scaled: dict[Key, int], keys: list[Key], limit: int) -> bool:
    """Scale the values under `keys` down in proportion to sum to exactly `limit`."""
    total = sum(scaled[k] for k in keys)
    if total <= limit:
        return False
    remainders: list[tuple[int, int, Key]] = []
    for k in keys:
        share, remainder = divmod(scaled[k] * limit, total)
        scaled[k] = share
        remainders.append((-remainder, len(remainders), k))
    for _, _, k in sorted(remainders)[: limit - sum(scaled[k] for k in keys)]:
        scaled[k] += 1
    return True


def _share(total: int, parts: list[int], denominator: int) -> list[int]:
    floors = [p // denominator for p in parts]
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] % denominator), i))
    for i in order[: max(total - sum(floors), 0)]:
        floors[i] += 1
    return floors


def _holds(rule: Rule, member: Member, local: datetime, context: Context) -> bool:
    if rule.once_per is not None and rule.id in member.used_rules:
        return False
    who, when, where = rule.who, rule.when, rule.where
    if who.tiers and member.tier not in who.tiers:
        return False
    if who.segments and not (who.segments & member.segments):
        return False
    if who.birthday_month and (member.birthday is None or member.birthday.month != local.month):
        return False
    today = local.date()
    if when.start and today < when.start:
        return False
    if when.end and today > when.end:
        return False
    if when.weekdays and local.weekday() not in when.weekdays:
        return False
    if when.hours:
        start, end = when.hours
        now = local.time()
        if not (start <= now < end if start < end else (now >= start or now < end)):
            return False
    if where.stores and context.store not in where.stores:
        return False
    return not (where.regions and context.region not in where.regions)


def _names(rule: Rule, line: Line) -> bool:
    what = rule.what
    return (
        what.any
        or line.sku in what.skus
        or line.category in what.categories
        or line.brand in what.brands
    )


def denominator(rules: RuleSet) -> int:
    """The common denominator the engine computes over (it decides how caps round)."""
    d = factors = 1
    for rule in rules.rules:
        if rule.effect.kind == "earn":
            d = math.lcm(d, rule.effect.per_amount)
        elif rule.effect.kind == "multiply":
            d = math.lcm(d, rule.effect.factor.denominator)
            factors = math.lcm(factors, rule.effect.factor.denominator)
    return d * factors


def evaluate(rules: RuleSet, basket: Basket, member: Member, context: Context) -> EarnResult:
    local = context.at.astimezone(check_timezone(context.timezone))
    active = [rule for rule in rules.rules if _holds(rule, member, local, context)]
    big_d = denominator(rules)
    scaled: dict[Key, int] = {}
    excluded: dict[int, str] = {}
    threshold_totals = {rule.id: 0 for rule in active}
    for index, line in enumerate(basket.lines):
        if line.category in rules.exclude_categories:
            excluded[index] = f"{line.category} earns no points"
            continue
        if line.sku in rules.exclude_skus:
            excluded[index] = "this item earns no points"
            continue
        earned = 0
        best: Rule | None = None
        for rule in active:
            effect = rule.effect
            if not _names(rule, line) or (line.discount > 0 and rule.exclude_discounted):
                continue
            if effect.kind == "earn":
                value = line.net * effect.points * (big_d // effect.per_amount)
                scaled[(index, rule.id)] = value
                earned += value
            elif effect.kind == "bonus" and effect.per != "receipt":
                count = line.quantity if effect.per == "unit" else 1
                scaled[(index, rule.id)] = effect.points * count * big_d
            elif effect.kind == "multiply":
                if best is None or effect.factor > best.effect.factor:
                    best = rule
            elif effect.kind == "basket_bonus":
                threshold_totals[rule.id] += line.net
        if best is not None and earned:
            factor = best.effect.factor
            extra = earned * (factor.numerator - factor.denominator) // factor.denominator
            scaled[(index, best.id)] = extra
    for rule in active:
        effect = rule.effect
        if effect.kind == "basket_bonus" and threshold_totals[rule.id] >= effect.threshold:
            scaled[(None, rule.id)] = effect.points * big_d
        if effect.kind == "bonus" and effect.per == "receipt" and len(excluded) < len(basket.lines):
            scaled[(None, rule.id)] = effect.points * big_d

    capped: list[str] = []
    for rule in rules.rules:
        if rule.cap_per_receipt is not None and _scale(
            scaled, [k for k in scaled if k[1] == rule.id], rule.cap_per_receipt * big_d
        ):
            capped.append(f"rule:{rule.id}")
    limits = []
    if rules.cap_per_receipt is not None:
        limits.append((rules.cap_per_receipt, "receipt"))
    if rules.cap_per_member is not None:
        remaining = max(0, rules.cap_per_member - member.earned_this_period)
        limits.append((remaining, f"member {rules.cap_period}"))
    for limit, name in sorted(limits):
        if _scale(scaled, list(scaled), limit * big_d):
            capped.append(name)

    total = Fraction(sum(scaled.values()), big_d)
    points = _round(total, rules.rounding)
    keys = list(scaled)
    shares = dict(zip(keys, _share(points, [scaled[k] for k in keys], big_d), strict=True))
    described = {rule.id: rule.description for rule in rules.rules}
    per_line: dict[int | None, list[Contribution]] = {}
    for key in keys:
        contribution = Contribution(key[1], described[key[1]], shares[key], scaled[key], big_d)
        per_line.setdefault(key[0], []).append(contribution)
    lines = tuple(
        LineResult(
            index,
            line.sku,
            line.net,
            sum(c.points for c in per_line.get(index, ())),
            tuple(per_line.get(index, ())),
            excluded.get(index),
        )
        for index, line in enumerate(basket.lines)
    )
    today = local.date()
    return EarnResult(
        points,
        total,
        lines,
        tuple(per_line.get(None, ())),
        tuple(capped),
        today + timedelta(days=rules.pending_days),
        today + timedelta(days=rules.expiry_days) if rules.expiry_days else None,
        rules.version,
    )


def explain(result: EarnResult) -> list[str]:
    """The receipt text as `EarnResult.explain` wrote it through attributes (issue 17):
    the engine's faster text must match it byte for byte, as receipts store it."""
    out = []
    for line in result.lines:
        if line.excluded:
            out.append(f"{line.sku}: no points ({line.excluded})")
            continue
        for c in line.contributions:
            if c.points:
                out.append(f"{line.sku}: {c.points} pts - {c.description}")
    out.extend(f"{c.points} pts - {c.description}" for c in result.receipt if c.points)
    for cap in result.capped_by:
        out.append(f"limited by {cap}")
    return out
