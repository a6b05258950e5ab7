# SPDX-License-Identifier: Apache-2.0
"""Money: exact minor units per ISO 4217, no floats, no mixing currencies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltysdk import CurrencyMismatch, InvalidAmount, Money, Points, UnknownCurrency
from loyaltysdk._money import EXPONENTS, MAX_AMOUNT


@pytest.mark.parametrize(
    ("text", "currency", "minor", "shown"),
    [
        ("12.50", "EUR", 1250, "12.50"),
        ("12.5", "EUR", 1250, "12.50"),
        ("12", "EUR", 1200, "12.00"),
        ("0.01", "EUR", 1, "0.01"),
        ("1500", "JPY", 1500, "1500"),
        ("12.50", "HKD", 1250, "12.50"),
        ("1.234", "KWD", 1234, "1.234"),
        ("-3.100", "BHD", -3100, "-3.100"),
        ("0.0001", "CLF", 1, "0.0001"),
    ],
)
def test_parse_and_format_are_exact(text: str, currency: str, minor: int, shown: str) -> None:
    money = Money.parse(text, currency)
    assert money == Money(minor, currency)
    assert money.format() == shown
    assert str(money) == f"{shown} {currency}"


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1.005", "EUR"),
        ("1.5", "JPY"),
        ("1,50", "EUR"),
        ("", "EUR"),
        ("1e3", "EUR"),
        ("--1", "EUR"),
    ],
)
def test_parse_refuses_what_it_cannot_represent(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.parse(text, currency)


@pytest.mark.parametrize("amount", [12.5, 1.0, True, "12", None, 2**63])
def test_only_ints_are_amounts(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        Money(amount, "EUR")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Points(amount)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["EURO", "eur", "XAU", "", "ABC"])
def test_unknown_currencies_are_refused(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        Money(1, code)


def test_mixing_currencies_is_an_error() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, "EUR") < Money(2, "GBP")
    with pytest.raises(CurrencyMismatch):
        Points(1) + Money(1, "EUR")  # type: ignore[operator]
    assert isinstance(CurrencyMismatch("x"), ValueError)


def test_exponents_follow_iso_4217() -> None:
    assert EXPONENTS["JPY"] == 0
    assert EXPONENTS["EUR"] == 2
    assert EXPONENTS["KWD"] == 3
    assert EXPONENTS["CLF"] == 4
    assert all(len(code) == 3 and code.isupper() for code in EXPONENTS)


@given(
    st.sampled_from(sorted(EXPONENTS)),
    st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT),
)
def test_format_then_parse_round_trips(currency: str, minor: int) -> None:
    money = Money(minor, currency)
    assert Money.parse(money.format(), currency) == money


def test_grouped_format() -> None:
    assert Money(123_456_789, "EUR").format(grouped=True) == "1,234,567.89"
    assert Money(-1_234_567, "JPY").format(grouped=True) == "-1,234,567"
    assert Money(1_234_567, "KWD").format(grouped=True) == "1,234.567"
    assert Money(123_456_789, "EUR").format() == "1234567.89"
