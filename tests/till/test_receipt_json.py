# SPDX-License-Identifier: Apache-2.0
"""A receipt's stored form: every field, amounts in minor units, and back unchanged."""

from __future__ import annotations

from datetime import date

import attrs
from hypothesis import given
from hypothesis import strategies as st

from loyaltysdk import Money
from loyaltysdk.till import Receipt, VoucherUse

minor = st.integers(0, 10**12)
money = minor.map(lambda n: Money(n, "EUR"))
text = st.text(max_size=12)
uses = st.builds(VoucherUse, text, money, money, st.booleans(), st.booleans())
receipts = st.builds(
    Receipt,
    ref=text,
    member=st.none() | text,
    currency=st.just("EUR"),
    total=money,
    points_earned=minor,
    line_points=st.lists(minor, max_size=4).map(tuple),
    earn_lines=st.lists(text, max_size=4).map(tuple),
    spendable_on=st.none() | st.dates(date(2020, 1, 1), date(2040, 1, 1)),
    points_redeemed=minor,
    points_value=money,
    vouchers=st.lists(uses, max_size=3).map(tuple),
    wallet_paid=money,
    card_paid=money,
    card_uid=st.none() | text,
    mode=st.sampled_from(["standalone", "online", "offline"]),
    to_pay=money,
    points_balance=st.none() | minor,
    wallet_balance=st.none() | money,
    card_balance=st.none() | money,
)


@given(receipts)
def test_the_stored_form_has_every_field_and_reads_back_the_same(receipt: Receipt) -> None:
    stored = receipt.to_json()
    assert list(stored) == [field.name for field in attrs.fields(Receipt)]
    assert Receipt.from_json(stored) == receipt
    for name, value in attrs.asdict(receipt, recurse=False).items():
        if isinstance(value, Money):
            assert stored[name] == value.minor
        elif value is None or isinstance(value, str | int):
            assert stored[name] == value
