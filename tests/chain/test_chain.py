# SPDX-License-Identifier: Apache-2.0
"""One member account across the chain: every bullet of issue 13, played at two stores.

Each test plays what went wrong, through `DirectLink` (HTTP in test_chain_http.py),
and shows the opposite: redeemed, paid, refused where it must be, reported where it must be.
"""

from __future__ import annotations

from loyaltysdk import Basket, Line, Money
from loyaltysdk.sync import UpdateKind

from .conftest import Chain, card_reader

EUR = "EUR"
UID = bytes.fromhex("04C0FFEE000001")


def enrol_everywhere(
    chain: Chain, member: str, uid: bytes | None = None, kind: str = "purse"
) -> None:
    cards = [{"uid": uid.hex().upper(), "kind": kind}] if uid else []
    chain.hub.publish(UpdateKind.MEMBERS, {"members": [{"id": member, "cards": cards}]})
    chain.sync()


def test_a_card_loaded_at_one_store_pays_at_another(chain: Chain) -> None:
    enrol_everywhere(chain, "M1", UID)
    card, reader = card_reader(UID)
    one, two = chain.s1.till, chain.s2.till
    one.issue_card(reader.connect(), UID, "M1")
    one.top_up_card(reader.connect(), UID, Money(3_000, EUR), payment_ref="LOAD-1")
    sale = two.checkout(Basket(EUR, [Line("X", 1, 500)]), two.identify(UID))
    sale.pay_card(UID, Money(500, EUR))
    receipt = sale.complete("S2-R1", card=reader.connect())
    assert receipt.card_paid == 500 and receipt.card_balance == 2_500
    aid = one.purse.layout.aid  # type: ignore[union-attr]
    assert card.value_of(aid, 1) == 2_500
    assert two.pending_card_intents() == []
    chain.sync()
    hub = chain.hub.balance(f"card:{UID.hex().upper()}:{EUR}")
    assert hub is not None and hub[2] - hub[1] == 2_500  # the hub's shadow equals the chip
    assert set(chain.hub.unit_totals().values()) == {0}
    for till in (one, two):
        till.ledger.check()
