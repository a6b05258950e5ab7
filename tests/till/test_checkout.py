# SPDX-License-Identifier: Apache-2.0
"""The checkout API end to end, on the simulated card stack."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from loyaltysdk import InvalidAmount, Money
from loyaltysdk.rules import Basket, BasketError, Line
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.till import (
    CardBlocked,
    EmptyBasket,
    NotEnoughPoints,
    OverPayment,
    PaymentInterrupted,
    PresenceRequired,
    ReceiptConflict,
    RefundRefused,
    Till,
    UnknownMember,
    VoidRefused,
    WrongCurrency,
)
from loyaltysdk.vouchers import VoucherIssuer, VoucherTemplate, VoucherWrongCurrency

from .conftest import ISSUER, Clock, open_till

EUR = "EUR"


def eur(minor: int) -> Money:
    return Money(minor, EUR)


def basket(*lines: Line) -> Basket:
    return Basket(
        EUR, lines or (Line("COFFEE", 2, 1_250, category="coffee"), Line("BREAD", 1, 999))
    )


def state(till: Till) -> Any:
    return [
        (b.account, b.posted, b.pending) for b in till.ledger.balances()
    ], till.ledger.outbox_status()


def card_agrees(till: Till, card: VirtualDesfire) -> None:
    aid = till.purse.layout.aid  # type: ignore[union-attr]
    shadow = till.balance("M1").cards[0][1]
    assert card.value_of(aid, 1) == shadow.minor
    till.ledger.check()


def test_quote_redeem_pay_complete_and_print(
    till: Till, member: str, card: VirtualDesfire, reader: VirtualReader
) -> None:
    till.checkout(basket(Line("TV", 1, 20_000)), till.identify("M1")).complete("R-0")
    who = till.identify(card.uid)  # a tap: present
    sale = till.checkout(basket(), who)
    quote = sale.quote()
    assert quote.total == eur(3_499) and quote.points_to_earn == 59  # 25 x2 coffee + 9
    assert "COFFEE: 25 pts - double on coffee" in quote.earn_lines
    sale.redeem_points(150)
    sale.pay_wallet(Money(1_000, EUR))
    sale.pay_card(card.uid, Money(500, EUR))
    assert sale.quote().due == eur(3_499 - 150 - 1_000 - 500)
    receipt = sale.complete("R-1", card=reader.connect())
    assert (receipt.points_earned, receipt.points_redeemed, receipt.to_pay) == (59, 150, eur(1_849))
    assert receipt.points_balance == 200 - 150 + 59
    printed = "\n".join(receipt.lines())
    assert "Points earned: 59" in printed and "Card balance: 25.00" in printed
    card_agrees(till, card)


def test_points_cover_the_exact_total(till: Till, member: str, card: VirtualDesfire) -> None:
    till.checkout(basket(Line("TV", 1, 90_000)), till.identify("M1")).complete("R-0")
    sale = till.checkout(basket(Line("X", 1, 743)), till.identify(card.uid))
    assert sale.quote().max_redeemable == 743
    sale.redeem_points(743)
    assert sale.quote().due == eur(0)
    with pytest.raises(OverPayment):
        sale.redeem_points(744)
    assert sale.complete("R-1").to_pay == eur(0)


def test_redemption_needs_presence(till: Till, member: str) -> None:
    till.checkout(basket(Line("TV", 1, 20_000)), till.identify("M1")).complete("R-0")
    typed = till.checkout(basket(), till.identify("M1"))
    with pytest.raises(PresenceRequired):
        typed.redeem_points(10)
    with pytest.raises(PresenceRequired):
        typed.redeem_points(10, pin="0000")
    typed.redeem_points(10, pin="1234")
    assert typed.quote().points_redeemed == 10


def test_cancel_voids_every_hold(till: Till, member: str, card: VirtualDesfire) -> None:
    till.checkout(basket(Line("TV", 1, 20_000)), till.identify("M1")).complete("R-0")
    before = till.balance("M1")
    sale = till.checkout(basket(), till.identify(card.uid))
    sale.redeem_points(100)
    sale.pay_wallet(Money(2_000, EUR))
    assert till.balance("M1").points_available == before.points_available - 100
    sale.cancel()
    after = till.balance("M1")
    assert (after.points_available, after.wallet_available) == (
        before.points_available,
        before.wallet_available,
    )


def test_complete_is_idempotent_by_receipt(till: Till, member: str) -> None:
    first = till.checkout(basket(), till.identify("M1")).complete("R-1")
    again = till.checkout(basket(), till.identify("M1")).complete("R-1")
    assert again == first and till.balance("M1").points_available == 59
    with pytest.raises(ReceiptConflict):
        till.checkout(basket(Line("OTHER", 1, 100)), till.identify("M1")).complete("R-1")


def test_a_receipt_stored_with_the_earlier_basket_digest_still_answers_its_retry(
    till: Till, member: str
) -> None:
    """Till files from before the compact digest hold the standard encoder's; a retry
    after an upgrade answers from them, and another basket is still refused."""
    first = till.checkout(basket(), till.identify("M1")).complete("R-1")
    (plan,) = till._conn.execute("SELECT plan FROM till_receipts WHERE ref = 'R-1'").fetchone()
    stored = json.loads(plan)
    earlier = hashlib.sha256(json.dumps([stored["lines"], "M1"]).encode()).hexdigest()[:32]
    assert earlier != stored["fingerprint"]  # the two forms differ, so this tests something
    with till.ledger.atomic():
        till._conn.execute("UPDATE till_receipts SET fingerprint = ? WHERE ref = 'R-1'", (earlier,))
    assert till.checkout(basket(), till.identify("M1")).complete("R-1") == first
    with pytest.raises(ReceiptConflict):
        till.checkout(basket(Line("OTHER", 1, 100)), till.identify("M1")).complete("R-1")
    assert till.balance("M1").points_available == 59


def test_vouchers_at_the_till(till: Till, member: str) -> None:
    issuer = VoucherIssuer(ISSUER)
    now = till.now()
    gift = issuer.issue(
        VoucherTemplate("value", 5_000, EUR, now, now.replace(year=2027), mode="partial")
    )
    sale = till.checkout(basket(), till.identify("M1"))
    use = sale.apply_voucher(gift.payload)
    assert (use.amount, use.remaining, use.offline) == (eur(3_499), eur(1_501), True)
    receipt = sale.complete("R-1")
    assert receipt.to_pay == eur(0) and receipt.vouchers[0].remaining == eur(1_501)
    assert "Voucher" in "\n".join(receipt.lines())
    usd = issuer.issue(VoucherTemplate("value", 500, "USD", now, now.replace(year=2027)))
    before = state(till)
    with pytest.raises(VoucherWrongCurrency):
        till.checkout(basket(), till.identify("M1")).apply_voucher(usd.payload)
    assert state(till) == before


def test_bad_input_is_typed_and_changes_nothing(
    till: Till, member: str, card: VirtualDesfire
) -> None:
    before = state(till)
    with pytest.raises(EmptyBasket):
        till.checkout(Basket(EUR, []), till.identify("M1"))
    with pytest.raises(BasketError):
        Line("A", -1, 100)
    with pytest.raises(BasketError):
        Line("A", 1, 12.5)  # type: ignore[arg-type]
    with pytest.raises(UnknownMember):
        till.identify("M-NOBODY")
    with pytest.raises(WrongCurrency):
        till.checkout(Basket("USD", [Line("A", 1, 100)]))
    sale = till.checkout(basket(), till.identify(card.uid))
    with pytest.raises(NotEnoughPoints):
        sale.redeem_points(1)
    with pytest.raises(OverPayment):
        sale.pay_wallet(Money(3_500, EUR))
    with pytest.raises(OverPayment):
        sale.pay_card(card.uid, Money(3_500, EUR))
    with pytest.raises(InvalidAmount):  # an amount, not a currency, is wrong
        sale.pay_wallet(Money(-5, EUR))
    assert state(till) == before


def test_refund_in_parts_and_refuse_a_second_refund(
    till: Till, member: str, card: VirtualDesfire, reader: VirtualReader
) -> None:
    till.checkout(basket(Line("TV", 1, 20_000)), till.identify("M1")).complete("R-0")
    sale = till.checkout(basket(), till.identify(card.uid))
    sale.redeem_points(100)
    sale.pay_wallet(Money(1_000, EUR))
    sale.pay_card(card.uid, Money(1_000, EUR))
    receipt = sale.complete("R-1", card=reader.connect())
    first = till.refund("R-1", {0: 1}, refund_ref="F-1", card=reader.connect())
    assert first.amount == eur(1_250) and first.points_clawed_back == 25
    total_back = (
        eur(first.points_reinstated) + first.wallet_credited + first.card_credited + first.cash_due
    )
    assert total_back == first.amount  # one point is one cent here
    assert till.refund("R-1", {0: 1}, refund_ref="F-1") == first  # idempotent
    second = till.refund("R-1", {0: 1, 1: 1}, refund_ref="F-2")  # card not here: to the wallet
    assert second.card_credited == eur(0) and second.wallet_credited.minor > 0
    with pytest.raises(RefundRefused):
        till.refund("R-1", {0: 1}, refund_ref="F-3")
    expected = 200 - 100 + receipt.points_earned
    expected += first.points_reinstated - first.points_clawed_back
    expected += second.points_reinstated - second.points_clawed_back
    assert till.balance("M1").points_available == expected
    assert first.points_clawed_back + second.points_clawed_back == receipt.points_earned
    # Shared cumulatively: refunding everything returns every redeemed point.
    assert first.points_reinstated + second.points_reinstated == 100
    card_agrees(till, card)


def test_refund_never_takes_points_below_zero(
    till: Till, member: str, card: VirtualDesfire
) -> None:
    till.checkout(basket(Line("TV", 1, 20_000)), till.identify("M1")).complete("R-1")
    spend = till.checkout(basket(Line("X", 1, 500)), till.identify(card.uid))
    spend.redeem_points(200)
    spend.complete("R-2")
    refund = till.refund("R-1", {0: 1}, refund_ref="F-1")
    assert refund.points_clawed_back == 5 and refund.points_shortfall == 195
    assert till.balance("M1").points_available == 0


def test_void_same_day_only(till: Till, member: str, clock: Clock) -> None:
    till.checkout(basket(), till.identify("M1")).complete("R-1")
    voided = till.void("R-1")
    assert voided.points_clawed_back == 59 and till.balance("M1").points_available == 0
    assert till.void("R-1") == voided  # a retried void answers as the first did
    till.checkout(basket(), till.identify("M1")).complete("R-2")
    clock.advance(days=1)
    with pytest.raises(VoidRefused):
        till.void("R-2")


def test_lost_card_blocked_and_value_moved(till: Till, member: str, card: VirtualDesfire) -> None:
    moved = till.replace_card(card.uid, bytes.fromhex("04FFEEDDCCBBAA"))
    assert moved == eur(3_000) and till.balance("M1").wallet_available == eur(8_000)
    with pytest.raises(CardBlocked):
        till.identify(card.uid)
    assert till.identify(bytes.fromhex("04FFEEDDCCBBAA")).member.id == "M1"


def test_pending_points_released_after_the_return_window(tmp_path: Path, clock: Clock) -> None:
    from loyaltysdk.rules import load_rules

    from .conftest import RULES

    rules = load_rules({**RULES, "points": {"pending_days": 14, "expiry_days": 365}})
    till = Till.open(
        tmp_path / "t.db",
        store="S1",
        till_id="T1",
        currency=EUR,
        timezone="Europe/Berlin",
        rules=rules,
        clock=clock,
    )
    till.enrol("M1")
    receipt = till.checkout(basket(), till.identify("M1")).complete("R-1")
    assert receipt.spendable_on is not None
    assert till.balance("M1").points_not_yet_spendable == 59
    assert till.release_pending_points() == 0
    clock.advance(days=14)
    assert till.release_pending_points() == 59
    assert till.balance("M1").points_available == 59
    till.ledger.check()


def _card_sale(till: Till, card: VirtualDesfire, reader: VirtualReader, ref: str) -> Any:
    sale = till.checkout(basket(Line("X", 1, 700)), till.identify(card.uid))
    sale.pay_card(card.uid, Money(700, EUR))
    return sale


def test_card_torn_at_every_apdu_of_a_payment(tmp_path: Path, clock: Clock) -> None:
    apdus = 7
    for tear in [*range(apdus + 1), "after-commit"]:
        till = open_till(tmp_path / f"t-{tear}.db", clock)
        card = VirtualDesfire(bytes.fromhex("04112233445566"))
        reader = VirtualReader()
        reader.insert(card)
        till.enrol("M1", card_uid=card.uid, card_kind="purse")
        till.purse.issue(reader.connect(), card.uid)  # type: ignore[union-attr]
        till.top_up_card(reader.connect(), card.uid, Money(3_000, EUR), payment_ref="T")
        sale = _card_sale(till, card, reader, "R-1")
        if tear == "after-commit":
            card.faults.tear_after_commit = True
        else:
            card.faults.tear_before = card.apdu_count + int(tear)
        try:
            receipt = sale.complete("R-1", card=reader.connect())
        except PaymentInterrupted:
            if reader.card is None:
                reader.insert(card)  # the next tap
            receipt = sale.complete("R-1", card=reader.connect())
        assert receipt.card_paid == eur(700)
        assert card.value_of(till.purse.layout.aid, 1) == 2_300, tear  # type: ignore[union-attr]
        card_agrees(till, card)
        assert till.pending_card_intents() == []
        till.close()


def test_killed_between_card_commit_and_ledger_post(tmp_path: Path, clock: Clock) -> None:
    card_file = tmp_path / "card.json"
    card = VirtualDesfire(bytes.fromhex("04112233445566"))
    till = open_till(tmp_path / "t.db", clock)
    reader = VirtualReader()
    reader.insert(card)
    till.enrol("M1", card_uid=card.uid, card_kind="purse")
    till.purse.issue(reader.connect(), card.uid)  # type: ignore[union-attr]
    till.top_up_card(reader.connect(), card.uid, Money(3_000, EUR), payment_ref="T")
    card.save(card_file)
    till.close()
    pid = os.fork()
    if pid == 0:  # the till process that dies at the worst moment
        try:
            child = open_till(tmp_path / "t.db", clock)
            child_card = VirtualDesfire.load(card_file, autosave=True)
            child_reader = VirtualReader()
            child_reader.insert(child_card)
            from loyaltysdk.till._cards import CardJournal

            original = CardJournal.touch

            def then_die(self: CardJournal, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)  # the card has committed the debit
                os.kill(os.getpid(), signal.SIGKILL)

            CardJournal.touch = then_die  # type: ignore[method-assign]
            _card_sale(child, child_card, child_reader, "R-1").complete(
                "R-1", card=child_reader.connect()
            )
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    till = open_till(tmp_path / "t.db", clock)
    card = VirtualDesfire.load(card_file)
    assert card.value_of(till.purse.layout.aid, 1) == 2_300  # type: ignore[union-attr]
    assert len(till.pending_card_intents()) == 1
    reader = VirtualReader()
    reader.insert(card)
    report = till.resolve_card(reader.connect(), card.uid)
    assert report == ["sale R-1: completed"]
    assert till.receipt("R-1").card_paid == eur(700)
    card_agrees(till, card)
    assert till.resolve_card(reader.connect(), card.uid) == []  # exactly once


def test_refunding_a_sold_gift_card_or_top_up_takes_the_value_back_first(
    till: Till, member: str
) -> None:
    from loyaltysdk.vouchers import VoucherRevoked, new_code

    code = new_code()
    now = till.now()
    issuer = VoucherIssuer(ISSUER)
    gift = issuer.issue(
        VoucherTemplate("value", 5_000, EUR, now, now.replace(year=2027), mode="partial"), code
    )
    sold = till.checkout(
        Basket(
            EUR,
            [
                Line("GIFT-50", 1, 5_000, category="gift-card", reference=code),
                Line("TOPUP", 1, 2_000, category="stored-value"),
            ],
        ),
        till.identify("M1"),
    ).complete("R-GIFT")
    assert sold.points_earned == 20  # the gift card earns nothing (excluded), the top-up does
    assert till.vouchers.remaining(code) == 5_000
    assert till.balance("M1").wallet_available == eur(5_000 + 2_000)
    # The gift card is spent in part, the wallet too.
    till.checkout(basket(Line("X", 1, 3_000)), till.identify("M1")).apply_voucher(gift.payload)
    spend = till.checkout(basket(Line("X", 1, 3_000)), till.identify("M1"))
    spend.apply_voucher(gift.payload)
    spend.complete("R-SPEND")
    assert till.vouchers.remaining(code) == 2_000
    refund = till.refund("R-GIFT", {0: 1, 1: 1}, refund_ref="F-GIFT")
    # What is left of the gift card (2,000) and the whole top-up (the wallet holds it) come back.
    assert (refund.value_taken_back, refund.value_not_refunded) == (eur(2_000 + 2_000), eur(3_000))
    assert refund.amount == eur(4_000) and refund.cash_due == eur(4_000)
    assert till.vouchers.remaining(code) == 0
    with pytest.raises(VoucherRevoked):
        till.checkout(basket(Line("X", 1, 100)), till.identify("M1")).apply_voucher(gift.payload)
    till.ledger.check()


def test_value_lines_are_checked(till: Till, member: str) -> None:
    from loyaltysdk.till import NoMember
    from loyaltysdk.vouchers import VoucherCodeInvalid

    with pytest.raises(VoucherCodeInvalid):
        till.checkout(Basket(EUR, [Line("GIFT", 1, 1_000, category="gift-card", reference="nope")]))
    with pytest.raises(NoMember):
        till.checkout(Basket(EUR, [Line("TOPUP", 1, 1_000, category="stored-value")]))
