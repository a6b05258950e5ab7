# SPDX-License-Identifier: Apache-2.0
"""Evaluating rules: a pure function of basket, member and context.

Order of work, as docs/rules.md states it:

1. Lines in a globally excluded category or SKU earn nothing and count for
   no threshold.
2. Rules whose who / when / where do not hold are dropped once per basket.
3. Per line, with exact fractions: earn rules add ``net * points / per``;
   of the multiply rules that match, the highest factor applies to the
   line's earned points (extra = earned * (factor - 1)); bonus rules add
   points per unit or per line. Per-receipt bonuses and basket-threshold
   bonuses go to the receipt.
4. Caps, in this order: each rule's cap_per_receipt scales that rule's
   contributions down; then the receipt cap and the member's remaining
   allowance for the period scale everything down proportionally.
5. The one rounding: the exact total is rounded by the rule set's policy,
   and the integer points are shared out over the contributions by
   largest remainder, so the lines add up to the total exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from fractions import Fraction

from .._errors import RulesError
from ._model import Basket, Context, Contribution, EarnResult, Line, LineResult, Member
from ._schema import Rule, RuleSet, check_timezone


def _round(value: Fraction, policy: str) -> int:
    if policy == "down":
        return math.floor(value)
    if policy == "up":
        return math.ceil(value)
    if policy == "half_up":
        return math.floor(value + Fraction(1, 2))
    return round(value)  # half_even: Fraction rounds half to even


def _share(total: int, parts: list[Fraction]) -> list[int]:
    """Integers summing to `total`: each part's floor, plus one for the largest remainders.

    `total` is the rounded sum of `parts`, so it lies between the sum of
    the floors and that sum plus the number of parts.
    """
    floors = [math.floor(p) for p in parts]
    short = total - sum(floors)
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] - floors[i]), i))
    for i in order[: max(short, 0)]:
        floors[i] += 1
    return floors


def _scale(
    scaled: dict[tuple[int | None, str], int], keys: list[tuple[int | None, str]], limit: int
) -> bool:
    """Scale the values under `keys` down in proportion so they sum to exactly `limit`.

    Each gets the floor of its share; the few units left go to the largest
    remainders, so a cap is reached exactly, never undershot.
    """
    total = sum(scaled[k] for k in keys)
    if total <= limit:
        return False
    remainders: list[tuple[int, int, tuple[int | None, str]]] = []
    for k in keys:
        share, remainder = divmod(scaled[k] * limit, total)
        scaled[k] = share
        remainders.append((-remainder, len(remainders), k))
    for _, _, k in sorted(remainders)[: limit - sum(scaled[k] for k in keys)]:
        scaled[k] += 1
    return True


def _share_scaled(total: int, parts: list[int], denominator: int) -> list[int]:
    """`_share` for parts given as integers over a common denominator."""
    floors = [p // denominator for p in parts]
    short = total - sum(floors)
    if short <= 0:
        return floors
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] % denominator), i))
    for i in order[:short]:
        floors[i] += 1
    return floors


class RulesEngine:
    """A rule set compiled for fast evaluation.

    Rules are indexed by SKU, category and brand, so a line only meets the
    rules that name it. Points are computed as integers over one common
    denominator (every `per` amount and multiplier denominator divides it),
    so the exact arithmetic costs integer operations, not fractions.
    """

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._order = {rule.id: index for index, rule in enumerate(rules.rules)}
        self._rule_of = {rule.id: rule for rule in rules.rules}
        self._line_index = _Index()
        self._basket_index = _Index()
        self._receipt_bonuses: list[Rule] = []
        denominator = 1
        for rule in rules.rules:
            effect = rule.effect
            if effect.kind == "earn":
                denominator = math.lcm(denominator, effect.per_amount)
            elif effect.kind == "multiply":
                denominator = math.lcm(denominator, effect.factor.denominator)
            if effect.kind == "basket_bonus":
                self._basket_index.add(rule)
            elif effect.kind == "bonus" and effect.per == "receipt":
                self._receipt_bonuses.append(rule)
            else:
                self._line_index.add(rule)
        # Multiply extras are earned * (a - b) / b: with b a factor of D / per
        # as well, every per-line value stays an integer.
        factors = 1
        for rule in rules.rules:
            if rule.effect.kind == "multiply":
                factors = math.lcm(factors, rule.effect.factor.denominator)
        self._denominator = denominator * factors

    # -- basket-level conditions --------------------------------------------------

    def _holds(self, rule: Rule, member: Member, local: datetime, context: Context) -> bool:
        if rule.once_per is not None and rule.id in member.used_rules:
            return False
        who = rule.who
        if who.tiers and member.tier not in who.tiers:
            return False
        if who.segments and not (who.segments & member.segments):
            return False
        if who.birthday_month and (member.birthday is None or member.birthday.month != local.month):
            return False
        when = rule.when
        today = local.date()
        if when.start and today < when.start:
            return False
        if when.end and today > when.end:
            return False
        if when.weekdays and local.weekday() not in when.weekdays:
            return False
        if when.hours:
            start, end = when.hours
            now = local.time().replace(tzinfo=None)
            inside = start <= now < end if start < end else (now >= start or now < end)
            if not inside:
                return False
        where = rule.where
        if where.stores and context.store not in where.stores:
            return False
        return not (where.regions and context.region not in where.regions)

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, basket: Basket, member: Member, context: Context) -> EarnResult:
        """Points for `basket`, per line with the rule behind each, after caps and rounding.

        Raises:
            RulesError: the basket's currency is not the rule set's, or the
                store's time zone is unknown.
        """
        rules = self.rules
        if basket.currency != rules.currency:
            raise RulesError(
                f"rules v{rules.version} are in {rules.currency}, the basket in {basket.currency}"
            )
        local = context.at.astimezone(check_timezone(context.timezone))
        active = {rule.id for rule in rules.rules if self._holds(rule, member, local, context)}
        big_d = self._denominator
        # (line index or None for the receipt, rule id) -> points * big_d
        scaled: dict[tuple[int | None, str], int] = {}
        excluded: dict[int, str] = {}
        basket_totals: dict[str, int] = defaultdict(int)
        order = self._order

        for index, line in enumerate(basket.lines):
            if line.category in rules.exclude_categories:
                excluded[index] = f"{line.category} earns no points"
                continue
            if line.sku in rules.exclude_skus:
                excluded[index] = "this item earns no points"
                continue
            discounted = line.discount > 0
            earned = 0
            best: Rule | None = None
            for rule in self._line_index.matching(line, active, discounted, order):
                effect = rule.effect
                kind = effect.kind
                if kind == "earn":
                    value = line.net * effect.points * (big_d // effect.per_amount)
                    scaled[(index, rule.id)] = value
                    earned += value
                elif kind == "bonus":
                    count = line.quantity if effect.per == "unit" else 1
                    scaled[(index, rule.id)] = effect.points * count * big_d
                elif best is None or effect.factor > best.effect.factor:
                    best = rule
            if best is not None and earned:
                factor = best.effect.factor
                extra = earned * (factor.numerator - factor.denominator) // factor.denominator
                scaled[(index, best.id)] = extra
            for rule in self._basket_index.matching(line, active, discounted, order):
                basket_totals[rule.id] += line.net

        for rule in rules.rules:
            if rule.id not in active:
                continue
            effect = rule.effect
            if effect.kind == "basket_bonus":
                if basket_totals[rule.id] >= effect.threshold:
                    scaled[(None, rule.id)] = effect.points * big_d
            elif (
                effect.kind == "bonus"
                and effect.per == "receipt"
                and len(excluded) < len(basket.lines)
            ):
                scaled[(None, rule.id)] = effect.points * big_d

        capped: list[str] = []
        # Each rule's own cap, then the receipt cap and the member's remaining
        # allowance: each scales the contributions it covers down to fit.
        for rule in rules.rules:
            if rule.cap_per_receipt is None:
                continue
            keys = [k for k in scaled if k[1] == rule.id]
            if _scale(scaled, keys, rule.cap_per_receipt * big_d):
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

        total_scaled = sum(scaled.values())
        total = Fraction(total_scaled, big_d)
        points = _round(total, rules.rounding)
        keys = list(scaled)
        shares = dict(
            zip(keys, _share_scaled(points, [scaled[k] for k in keys], big_d), strict=True)
        )
        rule_of = self._rule_of

        def contribution(key: tuple[int | None, str]) -> Contribution:
            rule = rule_of[key[1]]
            return Contribution(rule.id, rule.description, shares[key], scaled[key], big_d)

        per_line: dict[int | None, list[Contribution]] = defaultdict(list)
        for key in keys:
            per_line[key[0]].append(contribution(key))
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


class _Index:
    """Rules by the SKU, category and brand they name, plus rules for every line."""

    def __init__(self) -> None:
        self.by_sku: dict[str, list[Rule]] = defaultdict(list)
        self.by_category: dict[str, list[Rule]] = defaultdict(list)
        self.by_brand: dict[str, list[Rule]] = defaultdict(list)
        self.every_line: list[Rule] = []

    def add(self, rule: Rule) -> None:
        what = rule.what
        if what.any:
            self.every_line.append(rule)
        for sku in what.skus:
            self.by_sku[sku].append(rule)
        for category in what.categories:
            self.by_category[category].append(rule)
        for brand in what.brands:
            self.by_brand[brand].append(rule)

    def matching(
        self, line: Line, active: set[str], discounted: bool, order: dict[str, int]
    ) -> list[Rule]:
        """Active rules that name this line, once each, in document order."""
        found: dict[str, Rule] = {}
        for group in (
            self.every_line,
            self.by_sku.get(line.sku, ()),
            self.by_category.get(line.category, ()),
            self.by_brand.get(line.brand, ()),
        ):
            for rule in group:
                if rule.id in active and not (discounted and rule.exclude_discounted):
                    found[rule.id] = rule
        if len(found) < 2:
            return list(found.values())
        return sorted(found.values(), key=lambda r: order[r.id])


_ENGINES: dict[int, tuple[RuleSet, RulesEngine]] = {}


def evaluate(rules: RuleSet, basket: Basket, member: Member, context: Context) -> EarnResult:
    """Evaluate `rules` on a basket (compiling them once per rule set object)."""
    cached = _ENGINES.get(id(rules))
    if cached is None or cached[0] is not rules:
        if len(_ENGINES) > 16:
            _ENGINES.clear()
        cached = (rules, RulesEngine(rules))
        _ENGINES[id(rules)] = cached
    return cached[1].evaluate(basket, member, context)
