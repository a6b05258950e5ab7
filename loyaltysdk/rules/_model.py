# SPDX-License-Identifier: Apache-2.0
"""What the rules are evaluated on (basket, member, context) and what they return."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from fractions import Fraction
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, cast

import attrs

from .._errors import RulesError
from .._ids import MAX_LINE_TEXT
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


class _Record(tuple[Any, ...]):
    """An immutable record on a tuple: attrs' frozen semantics, a tuple's cost.

    `_fields` names the items (for repr and pattern matching); the first
    `_compared` of them decide equality and the hash, as attrs' ``eq=False``
    fields did not take part.
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]
    _compared: ClassVar[int]
    _shown: ClassVar[int]  # the first items the repr shows

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            # A plain tuple of the same items is not equal (tuple's own
            # comparison, tried next on NotImplemented, would say it is).
            return False if isinstance(other, tuple) else NotImplemented
        n = self._compared
        return self[:n] == cast(tuple[Any, ...], other)[:n]

    def __ne__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return True if isinstance(other, tuple) else NotImplemented
        n = self._compared
        return self[:n] != cast(tuple[Any, ...], other)[:n]

    def __hash__(self) -> int:
        return hash((self.__class__.__name__, *self[: self._compared]))

    # Not ordered, as attrs' classes are not (a tuple would compare items).
    def __lt__(self, other: object) -> bool:
        return NotImplemented

    __le__ = __gt__ = __ge__ = __lt__

    def __repr__(self) -> str:
        n = self._shown
        shown = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields[:n], self[:n], strict=True)
        )
        return f"{self.__class__.__qualname__}({shown})"

    if not TYPE_CHECKING:  # (a __setattr__ would tell mypy that any attribute may be set)

        def __setattr__(self, name: str, value: object) -> None:
            raise attrs.exceptions.FrozenInstanceError

        def __delattr__(self, name: str) -> None:
            raise attrs.exceptions.FrozenInstanceError

    def __getnewargs__(self) -> tuple[Any, ...]:
        # pickle and copy rebuild through __new__, which takes the fields themselves.
        return tuple(self)


def _texts(sku: object, category: object, brand: object, reference: object) -> None:
    """A line's texts that the fast check did not pass: refused with what is wrong (the
    hub would refuse its receipt record), or, when each is within its own limit, taken."""
    for name, value in (("sku", sku), ("category", category), ("brand", brand)):
        if type(value) is not str:
            raise BasketError(f"a line's {name} is text (str), not {value!r:.40}")
    if type(reference) is not str:
        raise BasketError(f"a line's reference is text (str), not {reference!r:.40}")
    if not 0 < len(cast(str, sku)) <= MAX_LINE_TEXT:
        raise BasketError(f"a line's sku is 1 to {MAX_LINE_TEXT} characters, not {sku!r:.40}")
    for name, value in (("category", category), ("brand", brand)):
        if len(cast(str, value)) > MAX_LINE_TEXT:
            raise BasketError(f"line {sku}: its {name} is at most {MAX_LINE_TEXT} characters")
    if not (cast(str, sku) + cast(str, category) + cast(str, brand)).isprintable():
        raise BasketError(f"line {sku!r:.40}: sku, category and brand are printable text")


def _item(n: int, doc: str) -> Any:
    return property(itemgetter(n), doc=doc)


class Line(_Record):
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
        currency: the currency the prices were given in as `Money`, else None
            (not compared, not shown).

    A POS builds a basket's lines at every checkout, so a line is a tuple
    with the checks inline: a few hundred instructions, not an attrs
    object's thousands (bench/checkout.py counts them as the checkout's).
    """

    __slots__ = ()
    __match_args__ = (
        "sku",
        "quantity",
        "unit_price",
        "category",
        "brand",
        "discount",
        "reference",
        "currency",
    )
    _fields = __match_args__
    _compared = _shown = 7

    def __new__(
        cls,
        sku: str,
        quantity: int,
        unit_price: int | Money,
        category: str = "",
        brand: str = "",
        discount: int | Money = 0,
        reference: str = "",
        currency: str | None = None,
    ) -> Line:
        if type(unit_price) is not int or type(discount) is not int:
            for value in (unit_price, discount):
                if isinstance(value, Money):
                    if currency is not None and value.currency != currency:
                        raise BasketError(f"line {sku}: prices in {currency} and {value.currency}")
                    currency = value.currency
            unit_price = unit_price.minor if isinstance(unit_price, Money) else unit_price
            discount = discount.minor if isinstance(discount, Money) else discount
        # The usual all-int line passes one chained comparison (`or` stops before it
        # for another type); any other is named by the per-field checks.
        if (
            type(quantity) is not int
            or type(unit_price) is not int
            or type(discount) is not int
            or not (
                1 <= quantity <= MAX_AMOUNT
                and unit_price >= 0
                and 0 <= discount <= quantity * unit_price <= MAX_AMOUNT
            )
        ):
            _whole("quantity", quantity, minimum=1)
            _whole("unit_price", unit_price)
            _whole("discount", discount)
            if quantity * unit_price > MAX_AMOUNT:
                raise BasketError(f"line {sku}: its price is beyond the maximum amount")
            raise BasketError(f"line {sku}: discount exceeds the line's price")
        # The usual line: three short printable texts (the sum's length bounds each
        # one's), and a text reference; anything else is decided field by field.
        text: str | None
        try:
            text = sku + category + brand
            reference + ""  # a reference that is not text raises here
        except TypeError:
            text = None
        if not (type(text) is str and sku and len(text) <= MAX_LINE_TEXT and text.isprintable()):
            _texts(sku, category, brand, reference)
        return tuple.__new__(
            cls, (sku, quantity, unit_price, category, brand, discount, reference, currency)
        )

    if TYPE_CHECKING:

        @property
        def sku(self) -> str: ...
        @property
        def quantity(self) -> int: ...
        @property
        def unit_price(self) -> int: ...
        @property
        def category(self) -> str: ...
        @property
        def brand(self) -> str: ...
        @property
        def discount(self) -> int: ...
        @property
        def reference(self) -> str: ...
        @property
        def currency(self) -> str | None: ...

    else:
        sku = _item(0, "What was bought.")
        quantity = _item(1, "Units (a positive integer).")
        unit_price = _item(2, "Price per unit before discount, in minor units.")
        category = _item(3, "What was bought: its category.")
        brand = _item(4, "What was bought: its brand.")
        discount = _item(5, "Discount on the whole line, in minor units.")
        reference = _item(6, "The voucher code or member a value line sells to.")
        currency = _item(7, "The currency the prices were given in as Money, else None.")

    @property
    def gross(self) -> int:
        return self[1] * self[2]  # type: ignore[no-any-return]

    @property
    def net(self) -> int:
        """What the customer pays for the line."""
        return self[1] * self[2] - self[5]  # type: ignore[no-any-return]


def _lines(lines: Iterable[Line]) -> tuple[Line, ...]:
    return tuple(lines)


def _segments(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


@attrs.frozen
class Basket:
    """The lines of one receipt, in one currency."""

    currency: str
    lines: tuple[Line, ...] = attrs.field(converter=_lines)
    # Read several times a checkout; the lines cannot change.
    _total: int = attrs.field(init=False, default=0, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.currency, str) or not (
            len(self.currency) == 3
            and self.currency.isascii()
            and self.currency.isalpha()
            and self.currency.isupper()
        ):
            raise BasketError(f"a basket's currency is an ISO 4217 code, not {self.currency!r}")
        # One pass, a Line read by index (quantity 1, unit price 2, discount 5, currency 7).
        total = 0
        for line in self.lines:
            if not isinstance(line, Line):
                raise BasketError(f"a basket holds Line values, not {line!r}")
            if line[7] is not None and line[7] != self.currency:
                raise BasketError(
                    f"line {line.sku} is priced in {line.currency}, the basket in {self.currency}"
                )
            total += line[1] * line[2] - line[5]
        if total > MAX_AMOUNT:
            raise BasketError(f"the basket's total is beyond the maximum amount {MAX_AMOUNT}")
        object.__setattr__(self, "_total", total)

    @property
    def total(self) -> int:
        """The lines' net total in minor units (the rules' view; a checkout's `total` is Money)."""
        return self._total


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
# for a 30-line basket, and with a Python __init__ (a frame per object) they
# were about 40 % of an evaluation's instructions. These two are immutable
# tuples underneath, so the engine builds them with tuple.__new__ from
# columns (C all the way, no frame). To the caller they are what attrs made
# of them before (tests/rules/test_results.py): the same attributes (read
# through itemgetter properties), equality, hashing and repr, frozen and
# unordered; they also happen to be sequences of their fields, as a
# namedtuple is, and are no longer attrs classes (attrs.asdict on an
# EarnResult gives lists for them; nothing in the SDK serializes them).


class Contribution(_Record):
    """Points one rule gave (to a line, or to the receipt as a whole).

    `points` is the integer share after the receipt's one rounding;
    `exact` the rational value before it. Two contributions are equal when
    rule, description and points are (as before, `exact` takes no part).
    """

    __slots__ = ()
    __match_args__ = ("rule", "description", "points", "_scaled", "_denominator")
    _fields = __match_args__
    _compared = _shown = 3

    def __new__(
        cls, rule: str, description: str, points: int, scaled: int, denominator: int
    ) -> Contribution:
        return tuple.__new__(cls, (rule, description, points, scaled, denominator))

    if TYPE_CHECKING:

        @property
        def rule(self) -> str: ...
        @property
        def description(self) -> str: ...
        @property
        def points(self) -> int: ...
        @property
        def _scaled(self) -> int: ...
        @property
        def _denominator(self) -> int: ...

    else:
        rule = _item(0, "The rule's id.")
        description = _item(1, "The rule's description, as the receipt prints it.")
        points = _item(2, "The integer points, after the one rounding.")
        _scaled = _item(3, "`exact` times `_denominator`.")
        _denominator = _item(4, "The denominator of `exact`.")

    @property
    def exact(self) -> Fraction:
        """The exact points before the one rounding (after caps)."""
        return Fraction(self[3], self[4])


class LineResult(_Record):
    """A basket line's points with the rules that produced them."""

    __slots__ = ()
    __match_args__ = ("index", "sku", "net", "points", "contributions", "excluded")
    _fields = __match_args__
    _compared = _shown = 6

    def __new__(
        cls,
        index: int,
        sku: str,
        net: int,
        points: int,
        contributions: tuple[Contribution, ...],
        excluded: str | None = None,
    ) -> LineResult:
        return tuple.__new__(cls, (index, sku, net, points, contributions, excluded))

    if TYPE_CHECKING:

        @property
        def index(self) -> int: ...  # type: ignore[override]
        @property
        def sku(self) -> str: ...
        @property
        def net(self) -> int: ...
        @property
        def points(self) -> int: ...
        @property
        def contributions(self) -> tuple[Contribution, ...]: ...
        @property
        def excluded(self) -> str | None: ...

    else:
        index = _item(0, "The line's position in the basket.")
        sku = _item(1, "The line's SKU.")
        net = _item(2, "What the customer pays for the line, in minor units.")
        points = _item(3, "The line's points (the sum of its contributions').")
        contributions = _item(4, "The rules that gave the line points, in order.")
        excluded = _item(5, "Why the line earns nothing, if it is excluded; else None.")


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
        # The till prints this at every quote: the results are tuples (see
        # above), read by index here, as a property read per field cost more
        # than the text they make.
        out: list[str] = []
        add = out.append
        for line in self.lines:
            if line[5]:  # excluded
                add(f"{line[1]}: no points ({line[5]})")
                continue
            sku = line[1]
            for c in line[4]:  # (rule, description, points, ...)
                if c[2]:
                    add(f"{sku}: {c[2]} pts - {c[1]}")
        for c in self.receipt:
            if c[2]:
                add(f"{c[2]} pts - {c[1]}")
        for cap in self.capped_by:
            add(f"limited by {cap}")
        return out
