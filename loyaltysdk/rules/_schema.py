# SPDX-License-Identifier: Apache-2.0
"""The rules document (JSON or TOML, schema 1) and its validation.

Every error names the rule and the field: ``rule 'gold-x2': when.hours[0]:
expected "HH:MM", got '25:00'``. Amounts are integers of minor units and
factors are decimal strings ("1.5"): a float is refused, as everywhere near
money. See docs/rules.md for the schema.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from .._errors import RulesError
from .._money import check_unit

SCHEMA = 1
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Rounding = Literal["down", "up", "half_up", "half_even"]
Period = Literal["month", "quarter", "year"]


class RuleError(RulesError, ValueError):
    """A rules document is invalid; the message names the rule and the field.

    Attributes:
        rule: the rule id ("" for a document-level field).
        field: the dotted path of the field.
    """

    def __init__(self, rule: str, field: str, problem: str) -> None:
        self.rule, self.field = rule, field
        where = f"rule {rule!r}: " if rule else ""
        super().__init__(f"{where}{field}: {problem}")


@attrs.frozen
class Who:
    tiers: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    birthday_month: bool = False


@attrs.frozen
class What:
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()

    @property
    def any(self) -> bool:
        return not (self.skus or self.categories or self.brands)


@attrs.frozen
class When:
    start: date | None = None
    end: date | None = None  # inclusive
    weekdays: frozenset[int] = frozenset()  # 0 = Monday
    hours: tuple[time, time] | None = None  # [from, until), may cross midnight


@attrs.frozen
class Where:
    stores: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()


@attrs.frozen
class Effect:
    """What a rule gives. `kind` is earn, multiply, bonus or basket_bonus."""

    kind: Literal["earn", "multiply", "bonus", "basket_bonus"]
    points: int = 0
    per_amount: int = 0  # earn: points per this many minor units
    factor: Fraction = Fraction(1)  # multiply
    per: Literal["unit", "line", "receipt"] = "line"  # bonus
    threshold: int = 0  # basket_bonus


@attrs.frozen
class Rule:
    id: str
    description: str
    effect: Effect
    who: Who = Who()
    what: What = What()
    when: When = When()
    where: Where = Where()
    exclude_discounted: bool = False
    cap_per_receipt: int | None = None
    once_per: Period | None = None  # a member has it at most once per period


@attrs.frozen
class TierLevel:
    name: str
    min_spend: int


@attrs.frozen
class TierPolicy:
    """Tiers from rolling spend: upgrade at once, downgrade only at a review.

    Attributes:
        window_days: how far back spend counts.
        review: when a member may move down (end of month, quarter or year).
        levels: from lowest to highest, each with the spend that reaches it.
    """

    window_days: int
    review: Period
    levels: tuple[TierLevel, ...]

    def rank(self, tier: str) -> int:
        for index, level in enumerate(self.levels):
            if level.name == tier:
                return index
        return -1

    def qualified(self, rolling_spend: int) -> str:
        """The highest tier whose threshold the spend reaches (at exactly the threshold too)."""
        best = self.levels[0].name
        for level in self.levels:
            if rolling_spend >= level.min_spend:
                best = level.name
        return best

    def upgrade(self, current: str, rolling_spend: int) -> str:
        """After a purchase: the qualified tier if higher, else the current one."""
        qualified = self.qualified(rolling_spend)
        return qualified if self.rank(qualified) > self.rank(current) else current

    def review_tier(self, current: str, rolling_spend: int) -> str:
        """At a review date: the qualified tier, up or down."""
        return self.qualified(rolling_spend)

    def next_review(self, day: date) -> date:
        """The last day of the period containing `day`; reviews happen after it."""
        return period_of(self.review, day)[2]


def period_of(period: Period, day: date) -> tuple[str, date, date]:
    """The period containing `day`: its name ("2026-11", "2026-Q4", "2026"), first and last day."""
    if period == "year":
        return f"{day.year}", date(day.year, 1, 1), date(day.year, 12, 31)
    months = 3 if period == "quarter" else 1
    start = (day.month - 1) // months * months + 1
    after = start + months  # the month after the period, 13 meaning January next year
    following = date(day.year + (after > 12), (after - 1) % 12 + 1, 1)
    name = f"{day.year}-Q{(start - 1) // 3 + 1}" if months == 3 else f"{day.year}-{start:02d}"
    return name, date(day.year, start, 1), following - timedelta(days=1)


@attrs.frozen
class RuleSet:
    """A validated, versioned rules document."""

    version: int
    currency: str
    rounding: Rounding
    pending_days: int
    expiry_days: int | None
    exclude_categories: frozenset[str]
    exclude_skus: frozenset[str]
    cap_per_receipt: int | None
    cap_per_member: int | None
    cap_period: Period
    tiers: TierPolicy | None
    rules: tuple[Rule, ...]


# -- loading ------------------------------------------------------------------------


def load_rules(source: str | Path | Mapping[str, Any]) -> RuleSet:
    """Load and validate a rules document (a dict, a JSON or TOML file, or JSON text).

    Raises:
        RuleError: the first problem found, naming the rule and the field.
    """
    if isinstance(source, Mapping):
        document: Any = source
    else:
        path = Path(source) if not str(source).lstrip().startswith("{") else None
        try:
            if path is None:
                document = json.loads(str(source))
            elif path.suffix == ".toml":
                document = tomllib.loads(path.read_text())
            else:
                document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise RuleError("", "document", f"cannot read: {error}") from error
    return _ruleset(_Fields("", document, ""))


class _Fields:
    """A mapping being validated: typed getters that name the field on error."""

    def __init__(self, rule: str, data: Any, prefix: str) -> None:
        if not isinstance(data, Mapping):
            raise RuleError(rule, prefix or "document", f"expected an object, got {data!r}")
        self.rule, self.data, self.prefix = rule, data, prefix
        self.used: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str) -> RuleError:
        return RuleError(self.rule, self.path(name), problem)

    def raw(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.data:
            if required:
                raise self.fail(name, "is required")
            return default
        return self.data[name]

    def integer(
        self, name: str, default: int | None = None, *, minimum: int = 0, required: bool = False
    ) -> int | None:
        value = self.raw(name, default, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            kind = "a float" if isinstance(value, float) else repr(value)
            raise self.fail(name, f"expected an integer, got {kind}")
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, *, minimum: int = 0) -> int:
        """A required integer."""
        value = self.integer(name, required=True, minimum=minimum)
        if value is None:  # unreachable: required
            raise self.fail(name, "is required")
        return value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(name, default, required=required)
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {value!r}")
        return value

    def strings(self, name: str) -> frozenset[str]:
        value = self.raw(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(name, f"expected a list of non-empty strings, got {value!r}")
        return frozenset(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def sub(self, name: str) -> _Fields | None:
        value = self.raw(name)
        return None if value is None else _Fields(self.rule, value, self.path(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown field (a typo?)")


def _choice(fields: _Fields, name: str, options: tuple[str, ...], default: str) -> str:
    value = fields.text(name, default)
    if value not in options:
        raise fields.fail(name, f"expected one of {', '.join(options)}, got {value!r}")
    return value


def _ruleset(doc: _Fields) -> RuleSet:
    schema = doc.integer("schema", required=True)
    if schema != SCHEMA:
        raise doc.fail("schema", f"this SDK reads schema {SCHEMA}, not {schema}")
    version = doc.number("version", minimum=1)
    currency = doc.text("currency", required=True)
    try:
        check_unit(currency)
    except ValueError as error:
        raise doc.fail("currency", str(error)) from None
    rounding = _choice(doc, "rounding", ("down", "up", "half_up", "half_even"), "down")
    pending_days, expiry_days = 0, None
    points = doc.sub("points")
    if points is not None:
        pending_days = points.integer("pending_days", 0) or 0
        expiry_days = points.integer("expiry_days", None, minimum=1)
        points.done()
    exclude_categories: frozenset[str] = frozenset()
    exclude_skus: frozenset[str] = frozenset()
    exclude = doc.sub("exclude")
    if exclude is not None:
        exclude_categories, exclude_skus = exclude.strings("categories"), exclude.strings("skus")
        exclude.done()
    cap_receipt = cap_member = None
    cap_period = "month"
    caps = doc.sub("caps")
    if caps is not None:
        cap_receipt = caps.integer("per_receipt", None)
        member = caps.sub("per_member")
        if member is not None:
            cap_member = member.integer("points", required=True)
            cap_period = _choice(member, "period", ("month", "quarter", "year"), "month")
            member.done()
        caps.done()
    tiers = _tiers(doc.sub("tiers"))
    raw_rules = doc.raw("rules", required=True)
    if not isinstance(raw_rules, list):
        raise doc.fail("rules", "expected a list of rules")
    rules, seen = [], set()
    for index, raw in enumerate(raw_rules):
        rule = _rule(raw, index, tiers)
        if rule.id in seen:
            raise RuleError(rule.id, "id", "used by two rules")
        seen.add(rule.id)
        rules.append(rule)
    doc.text("description", "")
    doc.done()
    return RuleSet(
        version,
        currency,
        rounding,  # type: ignore[arg-type]
        pending_days,
        expiry_days,
        exclude_categories,
        exclude_skus,
        cap_receipt,
        cap_member,
        cap_period,  # type: ignore[arg-type]
        tiers,
        tuple(rules),
    )


def _tiers(fields: _Fields | None) -> TierPolicy | None:
    if fields is None:
        return None
    window = fields.integer("window_days", 365, minimum=1) or 365
    review = _choice(fields, "review", ("month", "quarter", "year"), "year")
    raw_levels = fields.raw("levels", required=True)
    if not isinstance(raw_levels, list) or not raw_levels:
        raise fields.fail("levels", "expected a non-empty list")
    levels: list[TierLevel] = []
    for index, raw in enumerate(raw_levels):
        level = _Fields("", raw, fields.path(f"levels[{index}]"))
        name = level.text("name", required=True)
        spend = level.number("min_spend")
        level.done()
        if levels and spend <= levels[-1].min_spend:
            raise level.fail("min_spend", "levels must rise in min_spend")
        levels.append(TierLevel(name, spend))
    if levels[0].min_spend != 0:
        raise fields.fail("levels[0].min_spend", "the lowest tier starts at 0")
    fields.done()
    return TierPolicy(window, review, tuple(levels))  # type: ignore[arg-type]


def _fraction(fields: _Fields, name: str) -> Fraction:
    value = fields.raw(name, required=True)
    if isinstance(value, bool | float):
        raise fields.fail(name, f'use a decimal string such as "1.5", not {value!r}')
    try:
        result = Fraction(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise fields.fail(name, f"expected a decimal number, got {value!r}") from None
    if result <= 0:
        raise fields.fail(name, "must be positive")
    return result


def _hhmm(fields: _Fields, name: str, text: object) -> time:
    problem = fields.fail(name, f'expected "HH:MM", got {text!r}')
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        raise problem
    try:
        return time(int(text[:2]), int(text[3:]))
    except ValueError:
        raise problem from None


def _date(fields: _Fields, name: str) -> date | None:
    value = fields.raw(name)
    if value is None:
        return None
    if isinstance(value, date):  # TOML dates arrive parsed
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise fields.fail(name, f'expected "YYYY-MM-DD", got {value!r}') from None


def _rule(raw: Any, index: int, tiers: TierPolicy | None) -> Rule:
    top = _Fields(f"#{index}", raw, "")
    rule_id = top.text("id", required=True)
    fields = _Fields(rule_id, raw, "")
    fields.used |= {"id"}
    description = fields.text("description", rule_id)
    effect = _effect(fields.sub("effect") or _missing(fields, "effect"))
    who, what, when, where = Who(), What(), When(), Where()
    if (sub := fields.sub("who")) is not None:
        who = Who(sub.strings("tiers"), sub.strings("segments"), sub.flag("birthday_month"))
        unknown = who.tiers - {level.name for level in tiers.levels} if tiers else who.tiers
        if unknown:
            raise sub.fail("tiers", f"unknown tier {sorted(unknown)[0]!r}")
        sub.done()
    if (sub := fields.sub("what")) is not None:
        what = What(sub.strings("skus"), sub.strings("categories"), sub.strings("brands"))
        sub.done()
    if (sub := fields.sub("when")) is not None:
        start, end = _date(sub, "from"), _date(sub, "until")
        if start and end and end < start:
            raise sub.fail("until", "ends before it starts")
        days = set()
        for name in sub.strings("weekdays"):
            if name.lower()[:3] not in WEEKDAYS:
                raise sub.fail("weekdays", f"unknown weekday {name!r}")
            days.add(WEEKDAYS.index(name.lower()[:3]))
        hours = None
        raw_hours = sub.raw("hours")
        if raw_hours is not None:
            if not isinstance(raw_hours, list) or len(raw_hours) != 2:
                raise sub.fail("hours", 'expected ["HH:MM", "HH:MM"]')
            hours = (_hhmm(sub, "hours[0]", raw_hours[0]), _hhmm(sub, "hours[1]", raw_hours[1]))
            if hours[0] == hours[1]:
                raise sub.fail("hours", "an empty window")
        when = When(start, end, frozenset(days), hours)
        sub.done()
    if (sub := fields.sub("where")) is not None:
        where = Where(sub.strings("stores"), sub.strings("regions"))
        sub.done()
    exclude_discounted = fields.flag("exclude_discounted")
    cap = fields.integer("cap_per_receipt", None, minimum=1)
    once_per = None
    if fields.raw("once_per") is not None:
        once_per = _choice(fields, "once_per", ("month", "quarter", "year"), "month")
    fields.done()
    return Rule(
        rule_id,
        description,
        effect,
        who,
        what,
        when,
        where,
        exclude_discounted,
        cap,
        once_per,  # type: ignore[arg-type]
    )


def _missing(fields: _Fields, name: str) -> _Fields:
    raise fields.fail(name, "is required")


def _effect(fields: _Fields) -> Effect:
    kind = _choice(fields, "type", ("earn", "multiply", "bonus", "basket_bonus"), "")
    effect: Effect
    if kind == "earn":
        effect = Effect(
            "earn",
            points=fields.number("points", minimum=1),
            per_amount=fields.number("per", minimum=1),
        )
    elif kind == "multiply":
        effect = Effect("multiply", factor=_fraction(fields, "factor"))
    elif kind == "bonus":
        bonus = fields.number("points", minimum=1)
        per = _choice(fields, "per", ("unit", "line", "receipt"), "line")
        effect = Effect("bonus", points=bonus, per=per)  # type: ignore[arg-type]
    else:
        effect = Effect(
            "basket_bonus",
            points=fields.number("points", minimum=1),
            threshold=fields.number("threshold", minimum=1),
            per="receipt",
        )
    fields.done()
    return effect


def check_timezone(name: str) -> ZoneInfo:
    """The zone for a store's time zone name.

    Raises:
        RulesError: unknown zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RulesError(f"unknown time zone {name!r}") from None
