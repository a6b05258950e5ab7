# SPDX-License-Identifier: Apache-2.0
"""Money and points: integers in minor units, never floats.

`Money(1250, "EUR")` is twelve euros fifty. The number of minor-unit digits
comes from ISO 4217 (JPY 0, EUR 2, KWD 3), so parsing and formatting are
exact. Arithmetic between different currencies raises `CurrencyMismatch`.
`Points` are whole loyalty points in the unit `PTS`.
"""

from __future__ import annotations

import re
from typing import Final, Self

import attrs

from ._errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

#: The unit of loyalty points in the ledger.
POINTS_UNIT: Final = "PTS"

# Active ISO 4217 codes with their minor-unit exponent. Codes without a minor
# unit definition (precious metals, testing codes) are left out on purpose.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL "
    "BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK "
    "DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF "
    "IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA "
    "MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB "
    "PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD "
    "SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD XCG YER ZAR ZMW ZWG"
)
EXPONENTS: Final[dict[str, int]] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}

#: The largest amount (minor units or points) the SDK accepts: 2**53 - 1.
#: Every JSON reader, JavaScript's included, holds it exactly, and sums of
#: many such amounts stay far inside SQLite's 64-bit INTEGER columns.
MAX_AMOUNT: Final = 2**53 - 1

_DECIMAL = re.compile(r"^\s*(-)?(\d+)(?:\.(\d*))?\s*$")


def exponent(currency: str) -> int:
    """Return the ISO 4217 minor-unit exponent of `currency`.

    Raises:
        UnknownCurrency: `currency` is not an active ISO 4217 code.
    """
    try:
        return EXPONENTS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency(f"not an ISO 4217 currency code: {currency!r}") from None


def check_minor(value: object, *, what: str = "amount") -> int:
    """Return `value` if it is an int (not a bool, not a float) within ±`MAX_AMOUNT`.

    Raises:
        InvalidAmount: it is a float, a bool, a string, or out of range.
    """
    if type(value) is not int:
        raise InvalidAmount(
            f"{what} must be an int in minor units, not {type(value).__name__}: {value!r}"
        )
    if not -MAX_AMOUNT <= value <= MAX_AMOUNT:
        raise InvalidAmount(f"{what} {value} is beyond the maximum amount {MAX_AMOUNT}")
    return value


def _check_currency(_instance: object, _attribute: object, value: str) -> None:
    exponent(value)


def _check_minor(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_minor(value, what=attribute.name)


@attrs.frozen(order=False, init=False)
class Money:
    """An exact amount of one currency, in minor units.

    Attributes:
        minor: the amount in minor units (cents for EUR, yen for JPY).
        currency: the ISO 4217 code.
    """

    minor: int = attrs.field(validator=_check_minor)
    currency: str = attrs.field(validator=_check_currency)

    # Written out rather than attrs' validators: every receipt, quote and
    # posting builds several, and the validators' calls were most of their cost.
    def __init__(self, minor: int, currency: str) -> None:
        if type(minor) is not int or not -MAX_AMOUNT <= minor <= MAX_AMOUNT:
            check_minor(minor, what="minor")
        if type(currency) is not str or currency not in EXPONENTS:
            exponent(currency)
        _set_minor(self, minor)
        _set_currency(self, currency)

    @property
    def unit(self) -> str:
        """The ledger unit of this amount: its currency code."""
        return self.currency

    @classmethod
    def _checked(cls, minor: int, currency: str) -> Money:
        """`Money(minor, currency)`, cheaper where `currency` is known good (a till's own)."""
        if type(minor) is not int or not -MAX_AMOUNT <= minor <= MAX_AMOUNT:
            return cls(minor, currency)  # raises the typed error
        money = _new(cls)
        _set_minor(money, minor)
        _set_currency(money, currency)
        return money

    @classmethod
    def parse(cls, text: str, currency: str) -> Self:
        """Parse a decimal string such as ``"12.50"`` exactly.

        More fractional digits than the currency has are an error, not a
        rounding: ``Money.parse("1.005", "EUR")`` raises.

        Raises:
            InvalidAmount: the text is not a plain decimal number or has too
                many fractional digits.
            UnknownCurrency: `currency` is not an ISO 4217 code.
        """
        digits = exponent(currency)
        match = _DECIMAL.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidAmount(f"not a decimal amount: {text!r}")
        sign, whole, fraction = match.groups()
        fraction = fraction or ""
        if len(fraction) > digits:
            raise InvalidAmount(f"{text!r} has more than {digits} decimal places for {currency}")
        minor = int(whole) * 10**digits + int(fraction.ljust(digits, "0") or "0")
        return cls(-minor if sign else minor, currency)

    @classmethod
    def zero(cls, currency: str) -> Self:
        """Return nothing of `currency`."""
        return cls(0, currency)

    def format(self, *, grouped: bool = False) -> str:
        """The amount as a plain decimal string: ``"12.50"``, or ``"1,234.50"`` grouped."""
        digits = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, fraction = divmod(abs(self.minor), 10**digits)
        text = f"{whole:,}" if grouped else f"{whole}"
        if digits == 0:
            return f"{sign}{text}"
        return f"{sign}{text}.{fraction:0{digits}d}"

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise CurrencyMismatch(f"cannot combine {self} with {other!r}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self} with {other}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.minor + self._same(other).minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor - self._same(other).minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.minor < self._same(other).minor

    def __le__(self, other: Money) -> bool:
        return self.minor <= self._same(other).minor

    def __gt__(self, other: Money) -> bool:
        return self.minor > self._same(other).minor

    def __ge__(self, other: Money) -> bool:
        return self.minor >= self._same(other).minor

    def __bool__(self) -> bool:
        return self.minor != 0


# The slots' own setters, for the written-out __init__s and `_checked`: cheaper than
# object.__setattr__ by name (as attrs' generated frozen __init__ calls it).
_new = object.__new__
_set_minor, _set_currency = (vars(Money)[name].__set__ for name in ("minor", "currency"))


@attrs.frozen(order=True, init=False)
class Points:
    """A whole number of loyalty points."""

    value: int = attrs.field(validator=_check_minor)

    def __init__(self, value: int) -> None:  # see Money.__init__
        if type(value) is not int or not -MAX_AMOUNT <= value <= MAX_AMOUNT:
            check_minor(value, what="value")
        _set_value(self, value)

    @property
    def unit(self) -> str:
        """The ledger unit of points: ``"PTS"``."""
        return POINTS_UNIT

    @property
    def minor(self) -> int:
        """The number of points (named like `Money.minor` so both are amounts)."""
        return self.value

    def __add__(self, other: Points) -> Points:
        if not isinstance(other, Points):
            raise CurrencyMismatch(f"cannot add {other!r} to points")
        return Points(self.value + other.value)

    def __sub__(self, other: Points) -> Points:
        if not isinstance(other, Points):
            raise CurrencyMismatch(f"cannot subtract {other!r} from points")
        return Points(self.value - other.value)

    def __str__(self) -> str:
        return f"{self.value} {POINTS_UNIT}"


#: An amount the ledger can post: money or points.
Amount = Money | Points


_set_value = vars(Points)["value"].__set__


def amount_of(minor: int, unit: str) -> Amount:
    """Build the amount value for `minor` units of `unit` (a currency or PTS)."""
    if unit == POINTS_UNIT:
        return Points(minor)
    return Money(minor, unit)


def check_unit(unit: str) -> str:
    """Return `unit` if it is ``PTS`` or an ISO 4217 code.

    Raises:
        UnknownCurrency: it is neither.
    """
    if unit != POINTS_UNIT:
        exponent(unit)
    return unit
