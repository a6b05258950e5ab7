# SPDX-License-Identifier: Apache-2.0
"""A sale reads its lines by position (a `Line` is a tuple): the same as by field name."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loyaltysdk import Basket, Line
from loyaltysdk.till._refunds import GIFT_CARD, STORED_VALUE
from loyaltysdk.till._sale import goods_spend, lines_of

lines = st.builds(
    lambda sku, qty, price, category, brand, off, ref: Line(
        sku,
        qty,
        price,
        category=category,
        brand=brand,
        discount=min(off, qty * price),
        reference=ref,
    ),
    st.text("AZaz09 -\u00e9", min_size=1, max_size=6),
    st.integers(1, 5),
    st.integers(0, 10_000),
    st.sampled_from(["food", "toys", GIFT_CARD, STORED_VALUE]),
    st.text("AZaz09 -", max_size=4),
    st.integers(0, 10_000),
    st.text(max_size=4),
)


@given(st.lists(lines, min_size=1, max_size=8))
def test_lines_by_position_are_the_lines_by_name(made: list[Line]) -> None:
    basket = Basket("EUR", made)
    assert lines_of(basket) == [
        [ln.sku, ln.quantity, ln.unit_price, ln.category, ln.brand, ln.discount, ln.reference]
        for ln in made
    ]
    assert goods_spend(basket) == sum(
        ln.net for ln in made if ln.category not in (GIFT_CARD, STORED_VALUE)
    )
