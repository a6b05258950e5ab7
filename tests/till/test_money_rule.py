# SPDX-License-Identifier: Apache-2.0
"""One rule for amounts: every amount of money in and out of the till is a `Money`.

Walks the results of a whole sale (points, a voucher, the wallet, a card),
its refund and void, and a balance enquiry: every field is a `Money`, or one
of the named point counts, texts and flags. A money field added later as an
int fails here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from loyaltysdk import Basket, Line, Money, Till
from loyaltysdk._cli_demo import demo_rules
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.purse import Purse
from loyaltysdk.rules import BasketError
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.till import OverPayment, TillPolicy

EUR = "EUR"
UID = bytes.fromhex("04A1B2C3D4E5F6")
# Fields that are not money: points, counts, names, flags, dates.
NOT_MONEY = {
    "points_to_earn",
    "points_available",
    "points_redeemed",
    "max_redeemable",
    "points_earned",
    "line_points",
    "points_balance",
    "points_clawed_back",
    "points_shortfall",
    "points_reinstated",
    "points_posted",
    "points_pending",
    "points_not_yet_spendable",
    "next_expiry",
}


def eur(minor: int) -> Money:
    return Money(minor, EUR)


def _walk(value: Any, where: str) -> list[str]:
    """Paths of fields holding a bare int (or float) that is not a point count."""
    found: list[str] = []
    if attrs.has(type(value)) and not isinstance(value, Money):
        for field in attrs.fields(type(value)):
            inner = getattr(value, field.name)
            if field.name in NOT_MONEY:
                continue
            found += _walk(inner, f"{where}.{field.name}")
    elif isinstance(value, tuple | list):
        for i, inner in enumerate(value):
            found += _walk(inner, f"{where}[{i}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found.append(where)
    return found


@pytest.fixture
def setup() -> tuple[Till, VirtualReader, VirtualDesfire]:
    keys = SoftwareKeyStore.generate(b"MONEY-RULE")
    till = Till.in_memory(
        rules=demo_rules(), purse=Purse(keys), policy=TillPolicy(presence_for_redemption=False)
    )
    card, reader = VirtualDesfire(UID), VirtualReader()
    reader.insert(card)
    till.enrol("M-1", card_uid=UID, card_kind="purse")
    till.purse.issue(reader.connect(), UID)  # type: ignore[union-attr]
    assert till.top_up("M-1", eur(5_000), payment_ref="P-0") == eur(5_000)
    assert till.top_up_card(reader.connect(), UID, eur(2_000), payment_ref="P-1") == eur(2_000)
    till.checkout(Basket(EUR, [Line("TV", 1, eur(50_000))]), till.identify("M-1")).complete("R-0")
    return till, reader, card


def test_every_amount_out_is_money(setup: tuple[Till, VirtualReader, VirtualDesfire]) -> None:
    till, reader, _ = setup
    voucher = till.issue_voucher(eur(300), valid_for=timedelta(days=30))
    sale = till.checkout(
        Basket(EUR, [Line("A", 2, eur(1_250), discount=eur(100)), Line("B", 1, 999)]),
        till.identify(UID),
    )
    assert sale.total == eur(3_399) and sale.due == eur(3_399)
    results: list[Any] = [
        sale.quote(),
        sale.redeem_points(200),
        sale.apply_voucher(voucher.payload),
    ]
    results += [sale.pay_wallet(eur(1_000)), sale.pay_card(UID, eur(500))]
    assert sale.points_value.currency == EUR
    receipt = sale.complete("R-1", card=reader.connect())
    results += [receipt, till.receipt("R-1"), till.balance("M-1")]
    assert receipt.to_pay == eur(3_399 - receipt.points_value.minor - 300 - 1_000 - 500)
    refund = till.refund("R-1", {1: 1}, refund_ref="F-1", card=reader.connect())
    results.append(refund)
    other = till.checkout(Basket(EUR, [Line("C", 1, 700)]), till.identify("M-1"))
    other.pay_wallet(eur(200))
    other.complete("R-2")
    results.append(till.void("R-2"))
    assert till.wallet_available("M-1").currency == EUR
    for result in results:
        assert _walk(result, type(result).__name__) == [], result
    card_value = eur(2_000) - eur(500) + refund.card_credited
    assert till.balance("M-1").cards == (("04A1B2C3D4E5F6", card_value),)


def test_money_in_is_checked_and_every_message_formats_it(
    setup: tuple[Till, VirtualReader, VirtualDesfire],
) -> None:
    till, _, _ = setup
    with pytest.raises(BasketError, match="priced in USD"):
        Basket(EUR, [Line("A", 1, Money(100, "USD"))])
    with pytest.raises(BasketError, match="prices in EUR and USD"):
        Line("A", 1, eur(100), discount=Money(10, "USD"))
    assert Line("A", 2, eur(100), discount=eur(50)) == Line("A", 2, 100, discount=50)
    sale = till.checkout(Basket(EUR, [Line("A", 1, 1_000)]), till.identify("M-1"))
    with pytest.raises(OverPayment, match=r"30\.00 EUR is more than the 10\.00 EUR due"):
        sale.pay_wallet(eur(3_000))
    with pytest.raises(OverPayment, match=r"the 10\.00 EUR due"):
        sale.redeem_points(50_000)
