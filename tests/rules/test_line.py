# SPDX-License-Identifier: Apache-2.0
"""`Line` on a tuple with its checks inline: the same values accepted and refused, and
the same behaviour as a frozen record, as the attrs class it replaced."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltysdk import Money
from loyaltysdk._money import MAX_AMOUNT
from loyaltysdk.rules import Basket, Line
from loyaltysdk.rules._model import BasketError


def reference_error(quantity: Any, unit_price: Any, discount: Any) -> bool:
    """Whether the line is refused, said the plain way (every check in order)."""

    def whole(value: Any, minimum: int = 0) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and minimum <= value <= MAX_AMOUNT
        )

    if not (whole(quantity, 1) and whole(unit_price) and whole(discount)):
        return True
    return bool(quantity * unit_price > MAX_AMOUNT or discount > quantity * unit_price)


numbers = st.one_of(
    st.integers(-3, 10),
    st.integers(MAX_AMOUNT - 3, MAX_AMOUNT + 3),
    st.integers(0, MAX_AMOUNT),
    st.booleans(),
    st.floats(-2, 5),
    st.just("3"),
    st.none(),
)


@given(numbers, numbers, numbers)
def test_refuses_what_the_plain_checks_refuse(quantity: Any, price: Any, discount: Any) -> None:
    refused = reference_error(quantity, price, discount)
    try:
        line = Line("A", quantity, price, discount=discount)
    except BasketError:
        assert refused
    else:
        assert not refused
        assert (line.quantity, line.unit_price, line.discount) == (quantity, price, discount)
        assert line.net == quantity * price - discount


def test_money_prices_give_minor_units_and_their_currency() -> None:
    line = Line("A", 2, Money(150, "EUR"), discount=Money(20, "EUR"))
    assert (line.unit_price, line.discount, line.currency, line.net) == (150, 20, "EUR", 280)
    with pytest.raises(BasketError, match="prices in EUR and USD"):
        Line("A", 1, Money(150, "EUR"), discount=Money(20, "USD"))
    with pytest.raises(BasketError, match="EUR, the basket in USD"):
        Basket("USD", [line])


def test_a_frozen_record_compared_without_its_currency() -> None:
    line = Line("A", 2, 150, category="food", brand="B", discount=10, reference="r")
    same = Line("A", 2, Money(150, "EUR"), "food", "B", Money(10, "EUR"), "r")
    assert line == same and hash(line) == hash(same)
    assert (line != same) is False  # __ne__ is its own method on a tuple
    assert line != Line("A", 3, 150, category="food", brand="B", discount=10, reference="r")
    assert line != tuple(line)  # not a plain tuple of the same items
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        line.quantity = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(same)) == same
    assert copy.deepcopy(same).currency == "EUR"
    assert repr(line) == (
        "Line(sku='A', quantity=2, unit_price=150, category='food', brand='B',"
        " discount=10, reference='r')"
    )
    match line:
        case Line(sku, quantity, price):
            assert (sku, quantity, price) == ("A", 2, 150)


def test_a_basket_total_is_read_once_and_refused_beyond_the_maximum() -> None:
    basket = Basket("EUR", [Line("A", 2, 150, discount=10), Line("B", 1, 99)])
    assert basket.total == 389
    assert basket == Basket("EUR", [Line("A", 2, 150, discount=10), Line("B", 1, 99)])
    with pytest.raises(BasketError, match="maximum amount"):
        Basket("EUR", [Line("A", 1, MAX_AMOUNT), Line("B", 1, 1)])


texts = st.one_of(
    st.text(max_size=3),
    st.text(min_size=99, max_size=102),
    st.sampled_from(["", "A\x00", "A\n", "\u2028", "Caf\u00e9"]),
    st.integers(0, 9),
    st.none(),
)


@given(texts, texts, texts, st.one_of(st.text(max_size=3), st.none()))
def test_a_line_is_taken_exactly_when_its_receipt_record_can_reach_the_hub(
    sku: Any, category: Any, brand: Any, reference: Any
) -> None:
    """What the till takes, sync delivers: the hub's check of a receipt's line texts
    (`check_receipt`) is the rule, so no completed sale waits forever at a refusal."""
    from loyaltysdk.sync import check_receipt
    from loyaltysdk.sync._wire import BadRecord

    record = {
        "v": 1,
        "type": "sale",
        "ref": "R-1",
        "receipt": "R-1",
        "store": "S001",
        "till": "S001-T1",
        "at": "2026-12-06T10:00:00+01:00",
        "day": "2026-12-06",
        "hour": 10,
        "member": None,
        "currency": "EUR",
        "total": 100,
        "lines": [
            {
                "sku": sku,
                "category": category,
                "brand": brand,
                "quantity": 1,
                "unit_price": 100,
                "discount": 0,
                "points": 0,
            }
        ],
        "points_earned": 0,
        "points_redeemed": 0,
        "tenders": {"points": 0, "vouchers": [], "wallet": 0, "card": 0, "cash": 100},
    }
    try:
        check_receipt(record)
        deliverable = isinstance(reference, str)
    except BadRecord:
        deliverable = False
    try:
        Line(sku, 1, 100, category=category, brand=brand, reference=reference)
    except BasketError:
        assert not deliverable
    else:
        assert deliverable
