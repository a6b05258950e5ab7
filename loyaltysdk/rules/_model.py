# SPDX-License-Identifier: Apache-2.0
"""What the rules are evaluated on (basket, member, context) and what they return."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from fractions import Fraction

import attrs

from .._errors import RulesError
from .._money import MAX_AMOUNT, Money


class BasketError(RulesError, ValueError):
    """A basket line is malformed (negative price, a float, a discount above the price)."""


def _whole(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BasketError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise BasketError(f"{name} must be at least {minimum}, not {value}")
    if value > MAX_AMOUNT:
        raise BasketError(f"{name} {value} is beyond the maximum amount {MAX_AMOUNT}")
    return value


@attrs.frozen(init=False)
class Line:
    """One basket line.

    Prices are `Money` (``Line("A", 2, Money(1250, "EUR"))``), or ints in
    minor units of the basket's currency (the rules' own compact form, as in
    rules files and tests). Either way the attributes hold minor units, which
    is what the rules compute with; a `Money` price in another currency than
    the basket's is refused when the basket is made.

    Attributes:
        sku, category, brand: what was bought.
        quantity: units (a positive integer).
        unit_price: price per unit before discount, in minor units.
        discount: discount on the whole line (0 or more, at most the gross).
        reference: what the line sells when it is value itself: the voucher
            code a gift-card line activates, or the member a stored-value
            top-up line credits (see the till's checkout).
        currency: the currency the prices were given in as `Money`, else None.
    """

    sku: str
    quantity: int
    unit_price: int
    category: str = ""
    brand: str = ""
    discount: int = 0
    reference: str = ""
    currency: str | None = attrs.field(default=None, eq=False, repr=False)

    def __init__(
        self,
        sku: str,
        quantity: int,
        unit_price: int | Money,
        category: str = "",
        brand: str = "",
        discount: int | Money = 0,
        reference: str = "",
        currency: str | None = None,
    ) -> None:
        for value in (unit_price, discount):
            if isinstance(value, Money):
                if currency is not None and value.currency != currency:
                    raise BasketError(f"line {sku}: prices in {currency} and {value.currency}")
                currency = value.currency
        self.__attrs_init__(
            sku,
            quantity,
            unit_price.minor if isinstance(unit_price, Money) else unit_price,
            category,
            brand,
            discount.minor if isinstance(discount, Money) else discount,
            reference,
            currency,
        )

    def __attrs_post_init__(self) -> None:
        _whole("quantity", self.quantity, minimum=1)
        _whole("unit_price", self.unit_price)
        _whole("discount", self.discount)
        if self.quantity * self.unit_price > MAX_AMOUNT:
            raise BasketError(f"line {self.sku}: its price is beyond the maximum amount")
        if self.discount > self.quantity * self.unit_price:
            raise BasketError(f"line {self.sku}: discount exceeds the line's price")

    @property
    def gross(self) -> int:
        return self.quantity * self.unit_price

    @property
    def net(self) -> int:
        """What the customer pays for the line."""
        return self.gross - self.discount


def _lines(lines: Iterable[Line]) -> tuple[Line, ...]:
    return tuple(lines)


def _segments(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


@attrs.frozen
class Basket:
    """The lines of one receipt, in one currency."""

    currency: str
    lines: tuple[Line, ...] = attrs.field(converter=_lines)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.currency, str) or not (
            len(self.currency) == 3
            and self.currency.isascii()
            and self.currency.isalpha()
            and self.currency.isupper()
        ):
            raise BasketError(f"a basket's currency is an ISO 4217 code, not {self.currency!r}")
        for line in self.lines:
            if not isinstance(line, Line):
                raise BasketError(f"a basket holds Line values, not {line!r}")
            if line.currency is not None and line.currency != self.currency:
                raise BasketError(
                    f"line {line.sku} is priced in {line.currency}, the basket in {self.currency}"
                )
        if self.total > MAX_AMOUNT:
            raise BasketError(f"the basket's total is beyond the maximum amount {MAX_AMOUNT}")

    @property
    def total(self) -> int:
        """The lines' net total in minor units (the rules' view; a checkout's `total` is Money)."""
        return sum(line.net for line in self.lines)


@attrs.frozen
class Member:
    """Who is buying, as the rules see them.

    Attributes:
        id: the member number.
        tier: the member's current tier name ("" for none).
        segments: marketing segments the member belongs to.
        birthday: the date of birth, if known.
        earned_this_period: points already earned in the current cap period
            (for the per-member cap).
        used_rules: rules with a frequency limit (`once_per`) this member
            has already had in the rule's current period; they do not apply.
    """

    id: str
    tier: str = ""
    segments: frozenset[str] = attrs.field(default=frozenset(), converter=_segments)
    birthday: date | None = None
    earned_this_period: int = 0
    used_rules: frozenset[str] = attrs.field(default=frozenset(), converter=_segments)


@attrs.frozen
class Context:
    """Where and when: the store, its region and time zone, and the moment of sale."""

    store: str
    at: datetime
    timezone: str = "UTC"
    region: str = ""

    def __attrs_post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise RulesError("the context time must be timezone-aware")


# The engine makes a result object per line and per contribution, about 120
# for a 30-line basket, which made construction the largest part of an
# evaluation: attrs' frozen, slotted __init__ sets each field through
# object.__setattr__. These two keep their attributes in the instance dict,
# which a plain __init__ fills directly (about 40 % fewer instructions per
# object); equality, hashing, repr and immutability are attrs' as before.


@attrs.frozen(slots=False, init=False)
class Contribution:
    """Points one rule gave (to a line, or to the receipt as a whole).

    `points` is the integer share after the receipt's one rounding;
    `exact` the rational value before it.
    """

    rule: str
    description: str
    points: int
    _scaled: int = attrs.field(repr=False, eq=False, alias="scaled")
    _denominator: int = attrs.field(repr=False, eq=False, alias="denominator")

    def __init__(
        self, rule: str, description: str, points: int, scaled: int, denominator: int
    ) -> None:
        fields = self.__dict__
        fields["rule"] = rule
        fields["description"] = description
        fields["points"] = points
        fields["_scaled"] = scaled
        fields["_denominator"] = denominator

    @property
    def exact(self) -> Fraction:
        return Fraction(self._scaled, self._denominator)


@attrs.frozen(slots=False, init=False)
class LineResult:
    """A basket line's points with the rules that produced them."""

    index: int
    sku: str
    net: int
    points: int
    contributions: tuple[Contribution, ...]
    excluded: str | None = None

    def __init__(
        self,
        index: int,
        sku: str,
        net: int,
        points: int,
        contributions: tuple[Contribution, ...],
        excluded: str | None = None,
    ) -> None:
        fields = self.__dict__
        fields["index"] = index
        fields["sku"] = sku
        fields["net"] = net
        fields["points"] = points
        fields["contributions"] = contributions
        fields["excluded"] = excluded


@attrs.frozen
class EarnResult:
    """What the basket earns, explained.

    Attributes:
        points: the receipt's points after caps and the one rounding.
        exact: the exact points before rounding (after caps).
        lines: per line: points and the rules behind them (these sum, with
            `receipt`, to `points`).
        receipt: receipt-level contributions (basket bonuses, per-receipt bonuses).
        capped_by: which caps cut the result ("rule:ID", "receipt", "member").
        spendable_on: the local date the points become spendable (after the
            return window).
        expires_on: the local date they expire.
        ruleset_version: the version of the rules that decided.
    """

    points: int
    exact: Fraction
    lines: tuple[LineResult, ...]
    receipt: tuple[Contribution, ...]
    capped_by: tuple[str, ...]
    spendable_on: date
    expires_on: date | None
    ruleset_version: int

    def explain(self) -> list[str]:
        """Human-readable lines for the receipt printer."""
        out = []
        for line in self.lines:
            if line.excluded:
                out.append(f"{line.sku}: no points ({line.excluded})")
                continue
            for c in line.contributions:
                if c.points:
                    out.append(f"{line.sku}: {c.points} pts - {c.description}")
        out.extend(f"{c.points} pts - {c.description}" for c in self.receipt if c.points)
        for cap in self.capped_by:
            out.append(f"limited by {cap}")
        return out
