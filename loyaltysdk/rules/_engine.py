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

How it stays cheap (bench/rules.py counts it): the distinct who / when /
where conditions of a rule set are decided once per basket, and the rules
they leave active are compiled once per outcome into a `_Plan`: indexes
from SKU, category and brand to rule numbers (one for lines with a
discount, one without), what each rule does as a small tuple, and the
receipt-level rules and caps. A line then costs a few dictionary lookups
and integer operations; contributions are kept as parallel lists in the
order the result lists them, and become result objects once, at the end:
tuple.__new__ mapped over columns, so the about 120 objects of a 30-line
basket cost no Python frame each (see `_model`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from itertools import islice, repeat

from .._errors import RulesError
from ._model import Basket, Context, Contribution, EarnResult, LineResult, Member
from ._schema import Rule, RuleSet, When, Where, Who, check_timezone

# What a rule does to a matching line (the first field of its operation).
_EARN, _UNIT, _LINE, _MULTIPLY, _BASKET = range(5)
_Operation = tuple[int, int, int]
_Group = tuple[int, ...]
# What a group of rules does to a line, worked out when the plan is compiled:
# the contributions it adds, (rule, kind, amount) in document order, the sum
# of its earn amounts, its winning multiplier (rule or -1, and (a - b, b)),
# and its basket-threshold rules.
_Recipe = tuple[tuple[tuple[int, int, int], ...], int, int, int, int, tuple[int, ...]]
# A line index: rule numbers by the category (with the rules for every line),
# brand and SKU they name, and the rules for every line alone; then the
# recipes of the category groups and of the every-line group.
_LineIndex = tuple[
    dict[str, _Group], dict[str, _Group], dict[str, _Group], _Group, dict[str, _Recipe], _Recipe
]
_Condition = tuple[Who, When, Where]
_PLANS = 64  # compiled outcomes kept per engine (a rule set has few in practice)
_new = tuple.__new__  # (a result type, its fields): see _model


def _rounded(scaled: int, denominator: int, policy: str) -> int:
    """``scaled / denominator`` rounded by the rule set's policy, in integers."""
    if policy == "down":
        return scaled // denominator
    if policy == "up":
        return -(-scaled // denominator)
    if policy == "half_up":
        return (2 * scaled + denominator) // (2 * denominator)
    # half_even, as Fraction's round(): a tie goes to the even neighbour.
    floor, remainder = divmod(scaled, denominator)
    twice = 2 * remainder
    return floor + (twice > denominator or (twice == denominator and floor & 1))


def _scale(values: list[int], positions: Iterable[int], limit: int) -> bool:
    """Scale the values at `positions` down in proportion so they sum to exactly `limit`.

    Each gets the floor of its share; the few units left go to the largest
    remainders (the earlier position first on a tie), so a cap is reached
    exactly, never undershot.
    """
    at = list(positions)
    total = sum(values[p] for p in at)
    if total <= limit:
        return False
    remainders: list[tuple[int, int]] = []
    for p in at:
        share, remainder = divmod(values[p] * limit, total)
        values[p] = share
        remainders.append((-remainder, p))
    for _, p in sorted(remainders)[: limit - sum(values[p] for p in at)]:
        values[p] += 1
    return True


def _share_scaled(total: int, parts: list[int], denominator: int) -> list[int]:
    """Integers summing to `total`: each part's floor, plus one for the largest remainders.

    `parts` are integers over a common denominator and `total` their rounded
    sum, so it lies between the sum of the floors and that sum plus the
    number of parts.
    """
    floors = [p // denominator for p in parts]
    short = total - sum(floors)
    if short <= 0:
        return floors
    remainders = [p % denominator for p in parts]
    # Largest remainder first; a stable sort keeps the earlier part first on a tie.
    order = sorted(range(len(parts)), key=remainders.__getitem__, reverse=True)
    for i in order[:short]:
        floors[i] += 1
    return floors


def _holds(
    condition: _Condition,
    member: Member,
    local: datetime,
    today: date,
    now: time,
    context: Context,
) -> bool:
    """Whether one rule's who, when and where hold for this sale."""
    who, when, where = condition
    if who.tiers and member.tier not in who.tiers:
        return False
    if who.segments and not (who.segments & member.segments):
        return False
    if who.birthday_month and (member.birthday is None or member.birthday.month != local.month):
        return False
    if when.start and today < when.start:
        return False
    if when.end and today > when.end:
        return False
    if when.weekdays and local.weekday() not in when.weekdays:
        return False
    if when.hours:
        start, end = when.hours
        inside = start <= now < end if start < end else (now >= start or now < end)
        if not inside:
            return False
    if where.stores and context.store not in where.stores:
        return False
    return not (where.regions and context.region not in where.regions)


class _Plan:
    """What one set of active rules does, compiled for the per-line loop."""

    __slots__ = ("caps", "discounted", "overlap", "plain", "receipt")

    def __init__(
        self,
        plain: _LineIndex,
        discounted: _LineIndex,
        receipt: tuple[tuple[int, int, int, int], ...],
        caps: tuple[tuple[int, int, str], ...],
        overlap: bool,
    ) -> None:
        self.plain, self.discounted = plain, discounted
        self.overlap = overlap  # some rule is in two of a line's groups
        self.receipt = receipt  # (rule, _BASKET or _LINE, threshold, points * D), in order
        self.caps = caps  # (rule, cap * D, "rule:ID"), in document order


class RulesEngine:
    """A rule set compiled for fast evaluation.

    Rules are indexed by SKU, category and brand, so a line only meets the
    rules that name it. Points are computed as integers over one common
    denominator (every `per` amount and multiplier denominator divides it),
    so the exact arithmetic costs integer operations, not fractions.
    """

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        denominator = factors = 1
        for rule in rules.rules:
            effect = rule.effect
            if effect.kind == "earn":
                denominator = math.lcm(denominator, effect.per_amount)
            elif effect.kind == "multiply":
                denominator = math.lcm(denominator, effect.factor.denominator)
                factors = math.lcm(factors, effect.factor.denominator)
        # Multiply extras are earned * (a - b) / b: with b a factor of D / per
        # as well, every per-line value stays an integer.
        big_d = denominator * factors
        self._denominator = big_d
        self._ids = [rule.id for rule in rules.rules]
        self._descriptions = [rule.description for rule in rules.rules]
        # The highest factor wins; of equal factors, the first in the document.
        multipliers = sorted(
            (-rule.effect.factor, n)
            for n, rule in enumerate(rules.rules)
            if rule.effect.kind == "multiply"
        )
        rank = {n: position for position, (_, n) in enumerate(multipliers)}
        # What each rule does to a line: (kind, amount, rank); the amount is
        # points * D per minor unit (earn) or per unit or line (bonus), the
        # rank orders multipliers. A multiplier's (a - b, b) is in _factors.
        self._operations: list[_Operation] = []
        self._factors: dict[int, tuple[int, int]] = {}
        for n, rule in enumerate(rules.rules):
            effect = rule.effect
            operation: _Operation
            if effect.kind == "earn":
                operation = (_EARN, effect.points * (big_d // effect.per_amount), 0)
            elif effect.kind == "multiply":
                factor = effect.factor
                operation = (_MULTIPLY, 0, rank[n])
                self._factors[n] = (factor.numerator - factor.denominator, factor.denominator)
            elif effect.kind == "basket_bonus":
                operation = (_BASKET, 0, 0)
            else:  # a bonus per unit, per line, or per receipt (never on a line)
                operation = (_UNIT if effect.per == "unit" else _LINE, effect.points * big_d, 0)
            self._operations.append(operation)
        # Rules sharing a who / when / where are decided together, once per basket.
        conditions: dict[_Condition, int] = {}
        self._condition_of: list[int | None] = []
        for rule in rules.rules:
            condition = (rule.who, rule.when, rule.where)
            if condition == (Who(), When(), Where()):
                self._condition_of.append(None)
            else:
                self._condition_of.append(conditions.setdefault(condition, len(conditions)))
        self._conditions = tuple(conditions)
        self._once = tuple(n for n, rule in enumerate(rules.rules) if rule.once_per is not None)
        self._limits: list[tuple[int, str]] = []
        if rules.cap_per_receipt is not None:
            self._limits.append((rules.cap_per_receipt, "receipt"))
        self._member_cap = f"member {rules.cap_period}"
        self._pending = timedelta(days=rules.pending_days)
        self._expiry = timedelta(days=rules.expiry_days) if rules.expiry_days else None
        self._plans: dict[tuple[tuple[bool, ...], tuple[int, ...]], _Plan] = {}

    # -- compiling the active rules -------------------------------------------------

    def _plan(self, held: tuple[bool, ...], used: tuple[int, ...]) -> _Plan:
        """The plan for the rules whose conditions `held` and that `used` does not name."""
        key = (held, used)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        rules = self.rules.rules
        active = [
            n
            for n, condition in enumerate(self._condition_of)
            if (condition is None or held[condition]) and n not in used
        ]
        # Lines meet every rule but the per-receipt bonuses (a basket threshold
        # adds up the lines it names).
        on_lines = [n for n in active if _on_receipt(rules[n]) != "receipt"]
        plain = self._line_index(on_lines)
        discounted = self._line_index([n for n in on_lines if not rules[n].exclude_discounted])
        receipt: list[tuple[int, int, int, int]] = []
        for n in active:
            effect = rules[n].effect
            if _on_receipt(rules[n]) == "threshold":
                receipt.append((n, _BASKET, effect.threshold, effect.points * self._denominator))
            elif _on_receipt(rules[n]) == "receipt":
                receipt.append((n, _LINE, 0, effect.points * self._denominator))
        caps = tuple(
            (n, cap * self._denominator, f"rule:{rules[n].id}")
            for n in active
            if (cap := rules[n].cap_per_receipt) is not None
        )
        overlap = any(
            [bool(what.skus), bool(what.categories), bool(what.brands)].count(True) > 1
            for what in (rules[n].what for n in on_lines)
        )
        plan = _Plan(plain, discounted, tuple(receipt), caps, overlap)
        if len(self._plans) >= _PLANS:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def _line_index(self, numbers: list[int]) -> _LineIndex:
        """Rule numbers (ascending) by the category, brand and SKU they name.

        Each category's group holds the rules for every line as well; a line
        of a category no rule names meets the last group, those rules alone.
        """
        every: list[int] = []
        by_category: dict[str, list[int]] = {}
        by_brand: dict[str, list[int]] = {}
        by_sku: dict[str, list[int]] = {}
        for n in numbers:
            what = self.rules.rules[n].what
            if what.any:
                every.append(n)
            for category in what.categories:
                by_category.setdefault(category, []).append(n)
            for brand in what.brands:
                by_brand.setdefault(brand, []).append(n)
            for sku in what.skus:
                by_sku.setdefault(sku, []).append(n)
        categories = {name: tuple(sorted({*every, *group})) for name, group in by_category.items()}
        return (
            categories,
            {name: tuple(group) for name, group in by_brand.items()},
            {name: tuple(group) for name, group in by_sku.items()},
            tuple(every),
            {name: self._recipe(group) for name, group in categories.items()},
            self._recipe(every),
        )

    def _recipe(self, group: Sequence[int]) -> _Recipe:
        """What the rules of `group` (ascending) do to a line that meets them alone."""
        operations = [(n, *self._operations[n]) for n in group]
        adds = tuple((n, kind, a) for n, kind, a, _ in operations if kind in (_EARN, _UNIT, _LINE))
        earn = sum(a for _, kind, a, _ in operations if kind == _EARN)
        # The highest factor wins (the lowest rank), as in the per-line loop.
        ranked = [(rank, n) for n, kind, _, rank in operations if kind == _MULTIPLY]
        best = min(ranked)[1] if ranked else -1
        gain, denominator = self._factors.get(best, (0, 1))
        thresholds = tuple(n for n, kind, _, _ in operations if kind == _BASKET)
        return adds, earn, best, gain, denominator, thresholds

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
        today = local.date()
        if self._conditions:
            now = local.time()
            held = tuple(
                _holds(condition, member, local, today, now, context)
                for condition in self._conditions
            )
        else:
            held = ()
        used_rules = member.used_rules
        used = (
            tuple(n for n in self._once if self._ids[n] in used_rules)
            if used_rules and self._once
            else ()
        )
        plan = self._plan(held, used)
        big_d = self._denominator
        operations = self._operations
        exclude_categories, exclude_skus = rules.exclude_categories, rules.exclude_skus
        plain, discounted = plan.plain, plan.discounted
        # Whether a line can meet a rule through two groups (a rule naming a
        # category and a brand, say); if not, merging two groups is a sort.
        overlap = plan.overlap

        # Contributions in the order the result lists them: the lines' in
        # line order (each line's rules in document order, its multiplier
        # last), then the receipt's. `starts[i]` is where line i's begin.
        owners: list[int] = []  # rule number of each contribution
        values: list[int] = []  # its points * big_d
        starts: list[int] = []
        nets: list[int] = []
        reasons: list[str | None] = []
        totals: dict[int, int] = {}  # basket-threshold rule -> matching net
        excluded = 0
        add_owner, add_value = owners.append, values.append
        add_start, add_net, add_reason = starts.append, nets.append, reasons.append

        # A Line is a tuple (see _model): unpacked in its field order, as
        # six reads through its properties would cost more than the rest of
        # a line without rules.
        for sku, quantity, unit_price, category, brand, discount, _, _ in basket.lines:
            net = quantity * unit_price - discount
            add_net(net)
            add_start(len(values))
            if category in exclude_categories:
                add_reason(f"{category} earns no points")
                excluded += 1
                continue
            if sku in exclude_skus:
                add_reason("this item earns no points")
                excluded += 1
                continue
            add_reason(None)
            by_category, by_brand, by_sku, every, recipes, default = (
                discounted if discount else plain
            )
            brand_adds = by_brand.get(brand) if by_brand else None
            sku_adds = by_sku.get(sku) if by_sku else None
            if not (brand_adds or sku_adds):
                # The usual line meets its category's group alone, whose
                # recipe was worked out with the plan.
                adds, earn, best, gain, denominator, thresholds = recipes.get(category, default)
                for n, kind, a in adds:
                    add_owner(n)
                    add_value(net * a if kind == _EARN else a * quantity if kind == _UNIT else a)
                if best >= 0 and (earned := net * earn):
                    add_owner(best)
                    add_value(earned * gain // denominator)
                for n in thresholds:
                    totals[n] = totals.get(n, 0) + net
                continue
            # Once each, in document order: the category's group (which holds
            # the rules for every line too), then any the brand or SKU adds.
            found: Sequence[int] = by_category.get(category, every)
            more = brand_adds
            if more:
                found = sorted({*found, *more}) if overlap else sorted([*found, *more])
            more = sku_adds
            if more:
                found = sorted({*found, *more}) if overlap else sorted([*found, *more])
            earned = 0
            best = best_rank = -1
            for n in found:
                kind, a, rank = operations[n]
                if kind == _EARN:
                    value = net * a
                    earned += value
                elif kind == _UNIT:
                    value = a * quantity
                elif kind == _LINE:
                    value = a
                elif kind == _MULTIPLY:
                    if best < 0 or rank < best_rank:
                        best, best_rank = n, rank
                    continue
                else:
                    totals[n] = totals.get(n, 0) + net
                    continue
                add_owner(n)
                add_value(value)
            if best >= 0 and earned:
                gain, denominator = self._factors[best]
                add_owner(best)
                add_value(earned * gain // denominator)
        line_count = len(nets)
        add_start(len(values))

        for n, kind, threshold, points in plan.receipt:
            if totals.get(n, 0) >= threshold if kind == _BASKET else excluded < line_count:
                add_owner(n)
                add_value(points)

        capped: list[str] = []
        # Each rule's own cap, then the receipt cap and the member's remaining
        # allowance: each scales the contributions it covers down to fit.
        for n, limit, name in plan.caps:
            if _scale(values, [p for p, owner in enumerate(owners) if owner == n], limit):
                capped.append(name)
        limits = self._limits
        if rules.cap_per_member is not None:
            remaining = max(0, rules.cap_per_member - member.earned_this_period)
            limits = [*limits, (remaining, self._member_cap)]
        if limits:
            total_scaled = sum(values)
            for limit, name in sorted(limits):
                if total_scaled > limit * big_d and _scale(
                    values, range(len(values)), limit * big_d
                ):
                    capped.append(name)
                    total_scaled = limit * big_d

        total_scaled = sum(values)
        points = _rounded(total_scaled, big_d, rules.rounding)
        shares = _share_scaled(points, values, big_d)
        # The result objects, built by tuple.__new__ from columns (see
        # _model: no frame per object): every contribution, then each
        # line's slice of them.
        contributions = tuple(
            map(
                _new,
                repeat(Contribution),
                zip(
                    map(self._ids.__getitem__, owners),
                    map(self._descriptions.__getitem__, owners),
                    shares,
                    values,
                    repeat(big_d),
                ),
            )
        )
        # The lines in one pass: their slices and sums mapped over slice
        # objects (a thousand instructions each to make) cost more.
        lines: list[LineResult] = []
        add_line = lines.append
        start = 0
        for index, (line, net, reason, end) in enumerate(
            zip(basket.lines, nets, reasons, islice(starts, 1, None), strict=True)
        ):
            add_line(
                _new(
                    LineResult,
                    (index, line[0], net, sum(shares[start:end]), contributions[start:end], reason),
                )
            )
            start = end
        return EarnResult(
            points,
            Fraction(total_scaled, big_d),
            tuple(lines),
            contributions[starts[line_count] :],
            tuple(capped),
            today + self._pending,
            today + self._expiry if self._expiry is not None else None,
            rules.version,
        )


def _on_receipt(rule: Rule) -> str:
    """How a rule gives to the receipt as a whole: "threshold", "receipt", or "" (to lines)."""
    effect = rule.effect
    if effect.kind == "basket_bonus":
        return "threshold"
    return "receipt" if effect.kind == "bonus" and effect.per == "receipt" else ""


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
