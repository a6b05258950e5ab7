# SPDX-License-Identifier: Apache-2.0
"""Cards through the till service: a reader attached to each store's service, one hub.

A POS that is not written in Python identifies members by a tap and takes
card payments over HTTP; the service talks to the reader. Shown with two
tills of two stores: a card loaded at store 1 pays at store 2's service, a
payment torn at the card finishes once on the retry, refunds and voids go
back onto the card, and a missing card or reader is a typed refusal.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from loyaltysdk import Money
from loyaltysdk.service import create_service_app
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.sync import UpdateKind

from .conftest import Chain

TOKEN = "service-token-" + "y" * 20
UID = bytes.fromhex("04CAFE00000001")


def eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


class Pos:
    """One store's POS: its till service (a TestClient) and the reader on the service."""

    def __init__(self, app: Any, reader: VirtualReader) -> None:
        self.http = TestClient(app)
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"
        self.reader = reader
        self.keys = 0

    def post(self, path: str, body: Any = None, key: str | None = None) -> Any:
        self.keys += 1
        return self.http.post(path, json=body, headers={"Idempotency-Key": key or f"k-{self.keys}"})


@pytest.fixture
def stores(chain: Chain) -> tuple[Pos, Pos, VirtualDesfire]:
    card = VirtualDesfire(UID)
    one, two = VirtualReader("Store 1 reader"), VirtualReader("Store 2 reader")
    chain.hub.publish(
        UpdateKind.MEMBERS,
        {"members": [{"id": "M1", "cards": [{"uid": UID.hex().upper(), "kind": "purse"}]}]},
    )
    chain.sync()
    one.insert(card)
    chain.s1.till.issue_card(one.connect(), UID, "M1")
    chain.s1.till.top_up_card(one.connect(), UID, Money(3_000, "EUR"), payment_ref="LOAD-1")
    one.remove()
    chain.sync()
    return (
        Pos(create_service_app(chain.s1.till, TOKEN, one), one),
        Pos(create_service_app(chain.s2.till, TOKEN, two), two),
        card,
    )


def chip(chain: Chain, card: VirtualDesfire) -> int:
    return card.value_of(chain.s1.till.purse.layout.aid, 1)  # type: ignore[union-attr]


def sale(pos: Pos, price: int, ref: str, pay: int) -> tuple[str, Any]:
    """Identify by a tap, open a checkout, pay `pay` from the card; the session's id."""
    who = pos.post("/v1/identify", {"tap": True, "wait_seconds": 1})
    assert who.status_code == 200, who.text
    assert who.json()["member"]["id"] == "M1" and who.json()["method"] == "card"
    opened = pos.post(
        "/v1/checkouts",
        {"lines": [{"sku": "X", "quantity": 1, "unit_price": eur(price)}], "member": {"tap": True}},
    )
    assert opened.status_code == 200, opened.text
    checkout = opened.json()["checkout_id"]
    paid = pos.post(f"/v1/checkouts/{checkout}/card", {"amount": eur(pay), "wait_seconds": 1})
    assert paid.status_code == 200, paid.text
    assert paid.json()["card_paid"] == eur(pay) and paid.json()["due"] == eur(price - pay)
    return checkout, paid.json()


def test_a_card_loaded_at_store_one_pays_at_store_twos_service(
    chain: Chain, stores: tuple[Pos, Pos, VirtualDesfire]
) -> None:
    _, two, card = stores
    two.reader.insert(card)
    checkout, _ = sale(two, 800, "S2-R1", 500)
    done = two.post(f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "S2-R1"}, "done-1")
    assert done.status_code == 200, done.text
    receipt = done.json()
    assert receipt["card_paid"] == eur(500) and receipt["card_balance"] == eur(2_500)
    assert receipt["to_pay"] == eur(300)
    assert chip(chain, card) == 2_500
    again = two.post(f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "S2-R1"}, "done-1")
    assert again.json() == receipt and chip(chain, card) == 2_500  # debited once
    chain.sync()
    hub = chain.hub.balance("card:04CAFE00000001:EUR")
    assert hub is not None and hub[2] - hub[1] == 2_500  # the hub's shadow equals the chip
    assert set(chain.hub.unit_totals().values()) == {0}
    chain.s1.till.ledger.check()
    chain.s2.till.ledger.check()


def test_a_payment_torn_at_the_card_finishes_once_on_the_retry(
    chain: Chain, stores: tuple[Pos, Pos, VirtualDesfire]
) -> None:
    one, _, card = stores
    one.reader.insert(card)
    checkout, _ = sale(one, 1_000, "S1-R1", 1_000)
    card.faults.tear_before = card.apdu_count + 3  # pulled away during the debit
    torn = one.post(f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "S1-R1"}, "done")
    assert torn.status_code == 409, torn.text
    problem = torn.json()
    assert problem["retry"] is True and problem["title"] in {"PaymentInterrupted", "CardRemoved"}
    if one.reader.card is None:
        one.reader.insert(card)  # the customer taps again
    finished = one.post(f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "S1-R1"}, "done")
    assert finished.status_code == 200, finished.text
    assert finished.json()["card_paid"] == eur(1_000)
    assert chip(chain, card) == 2_000  # once, whatever the tear left on the chip
    chain.s1.till.ledger.check()


def test_refund_and_void_go_back_onto_the_card(
    chain: Chain, stores: tuple[Pos, Pos, VirtualDesfire]
) -> None:
    one, two, card = stores
    two.reader.insert(card)
    checkout, _ = sale(two, 1_000, "S2-R1", 1_000)
    assert two.post(f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "S2-R1"}).is_success
    checkout, _ = sale(two, 400, "S2-R2", 400)
    assert two.post(f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "S2-R2"}).is_success
    assert chip(chain, card) == 1_600
    refund = two.post(
        "/v1/receipts/S2-R1/refunds",
        {"refund_ref": "S2-F1", "lines": {"0": 1}, "to_card": True, "wait_seconds": 1},
    )
    assert refund.status_code == 200, refund.text
    assert refund.json()["card_credited"] == eur(1_000)
    voided = two.post("/v1/receipts/S2-R2/void", {"to_card": True, "wait_seconds": 1})
    assert voided.status_code == 200, voided.text
    assert voided.json()["card_credited"] == eur(400)
    assert chip(chain, card) == 3_000
    chain.sync()
    two.reader.remove()
    one.reader.insert(card)  # store 1 sees the card's value as the chip holds it
    checkout, _ = sale(one, 3_000, "S1-R9", 3_000)
    assert one.post(f"/v1/checkouts/{checkout}/complete", {"receipt_ref": "S1-R9"}).is_success
    assert chip(chain, card) == 0


def test_no_card_and_no_reader_are_typed_refusals(
    chain: Chain, stores: tuple[Pos, Pos, VirtualDesfire]
) -> None:
    _, two, card = stores
    nobody = two.post("/v1/identify", {"tap": True, "wait_seconds": 0})
    assert nobody.status_code == 409 and nobody.json()["title"] == "ReaderTimeout"
    assert nobody.json()["retry"] is True
    opened = two.post(
        "/v1/checkouts",
        {"lines": [{"sku": "X", "quantity": 1, "unit_price": eur(500)}], "member": {"text": "M1"}},
    )
    checkout = opened.json()["checkout_id"]
    no_card = two.post(
        f"/v1/checkouts/{checkout}/card", {"amount": eur(500), "wait_seconds": 0}, "card-1"
    )
    assert no_card.status_code == 409 and no_card.json()["title"] == "ReaderTimeout"
    two.reader.insert(card)  # a retryable refusal is not remembered: the same key now pays
    paid = two.post(
        f"/v1/checkouts/{checkout}/card", {"amount": eur(500), "wait_seconds": 1}, "card-1"
    )
    assert paid.status_code == 200 and paid.json()["card_paid"] == eur(500)
    readerless = TestClient(create_service_app(chain.s2.till, TOKEN))
    readerless.headers["Authorization"] = f"Bearer {TOKEN}"
    refused = readerless.post(
        "/v1/identify", json={"tap": True}, headers={"Idempotency-Key": "tap-1"}
    )
    assert refused.status_code == 409 and refused.json()["title"] == "NoReader"
