# SPDX-License-Identifier: Apache-2.0
"""Wrong input from the POS is a typed SDK error named for what it is, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyaltysdk import (
    Basket,
    InvalidAmount,
    Line,
    Money,
    Till,
    WrongType,
)
from loyaltysdk._cli_demo import demo_rules
from loyaltysdk.rules import BasketError
from loyaltysdk.till import OverPayment, UnknownMember, WalletShort

UID = bytes.fromhex("04A1B2C3D4E5F6")


@pytest.fixture
def till() -> Till:
    till = Till.in_memory(rules=demo_rules())
    till.enrol("M-1", card_uid=UID)
    till.top_up("M-1", Money(1_000, "EUR"), payment_ref="P-0")
    return till


def _sale(till: Till, price: int = 2_000):  # type: ignore[no-untyped-def]
    return till.checkout(Basket("EUR", [Line("A", 1, price)]), till.identify(UID))


def test_wrong_types_are_wrong_type(till: Till, tmp_path: Path) -> None:
    before = till.balance("M-1")
    cases = [
        lambda: till.identify(None),  # type: ignore[arg-type]
        lambda: till.checkout([Line("A", 1, 100)]),  # type: ignore[arg-type]
        lambda: till.checkout(Basket("EUR", [Line("A", 1, 100)]), "M-1"),  # type: ignore[arg-type]
        lambda: _sale(till).pay_wallet(500),  # type: ignore[arg-type]
        lambda: _sale(till).redeem_points("5"),  # type: ignore[arg-type]
        lambda: till.top_up("M-1", 500, payment_ref="P-1"),  # type: ignore[arg-type]
    ]
    for call in cases:
        with pytest.raises(WrongType):
            call()
    with pytest.raises(WrongType, match="load_rules"):
        Till.open(
            tmp_path / "t.db",
            store="S1",
            till_id="S1-T1",
            currency="EUR",
            timezone="UTC",
            rules={"schema": 1},  # type: ignore[arg-type]
        )
    assert not (tmp_path / "t.db").exists()  # refused before the file is made
    with pytest.raises(BasketError):
        Basket(1, [])  # type: ignore[arg-type]
    assert till.balance("M-1") == before


def test_negative_amounts_are_invalid_amount(till: Till) -> None:
    before = till.balance("M-1")
    with pytest.raises(InvalidAmount):
        _sale(till).pay_wallet(Money(-5, "EUR"))
    with pytest.raises(InvalidAmount):
        till.top_up("M-1", Money(-5, "EUR"), payment_ref="P-2")
    with pytest.raises(InvalidAmount):
        _sale(till).redeem_points(-5)
    assert till.balance("M-1") == before


def test_a_short_wallet_says_what_it_holds_in_money(till: Till) -> None:
    with pytest.raises(WalletShort) as caught:
        _sale(till).pay_wallet(Money(1_500, "EUR"))
    assert caught.value.available == Money(1_000, "EUR")
    assert "10.00 EUR" in str(caught.value) and "15.00 EUR" in str(caught.value)
    with pytest.raises(OverPayment, match=r"30\.00 EUR is more than the 20\.00 EUR due"):
        _sale(till).pay_wallet(Money(3_000, "EUR"))


def test_a_uid_typed_as_hex_gets_a_hint(till: Till) -> None:
    with pytest.raises(UnknownMember, match=r"bytes\.fromhex"):
        till.identify("04A1B2C3D4E5F6")
    with pytest.raises(UnknownMember) as caught:
        till.identify("M-404")
    assert "fromhex" not in str(caught.value)
