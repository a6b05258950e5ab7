# SPDX-License-Identifier: Apache-2.0
"""Issue 12's defects, one test each, named after it: value is neither made nor lost at one till.

Each reproduced a loss or a gain on the code before the fix; each checks
the ledger (`check()`), the chip against its shadow, and what the POS was told.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loyaltysdk import InvalidAmount, Money, Points
from loyaltysdk.hub import Hub, SQLiteHubStore
from loyaltysdk.ledger import AccountFlags, BalanceOverflow, Ledger, Posting
from loyaltysdk.rules import Basket, BasketError, Line, load_rules
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.sync import DirectLink, Syncer
from loyaltysdk.till import CardBlocked, CardInUse, PaymentInterrupted, Till, UnknownTier

from ..forking import Child, Kill, run
from .conftest import KEYSTORE, RULES, Clock, open_till

EUR = "EUR"


def eur(minor: int) -> Money:
    return Money(minor, EUR)


UID = bytes.fromhex("04112233445566")


def rules_with(**extra: Any) -> dict[str, Any]:
    rules = {**RULES, **extra}
    rules["rules"] = RULES["rules"] + extra.get("rules", [])
    return rules


def till_with(path: Path, clock: Clock, rules: dict[str, Any], **options: Any) -> Till:
    from loyaltysdk.cards.purse import Purse

    return Till.open(
        path,
        store="S1",
        till_id="S1-T1",
        currency=EUR,
        timezone="Europe/Berlin",
        rules=load_rules(rules),
        clock=clock,
        purse=Purse(KEYSTORE, clock=lambda: clock().timestamp()),
        **options,
    )


def chip(till: Till, card: VirtualDesfire) -> int:
    return card.value_of(till.purse.layout.aid, 1)  # type: ignore[union-attr]


def shadow(till: Till, card: VirtualDesfire) -> int:
    return till._minor(till.ledger.balance(till.card_account(card.uid.hex().upper())).posted)


def card_member(till: Till, value: int = 3_000) -> tuple[VirtualDesfire, VirtualReader]:
    card = VirtualDesfire(UID)
    reader = VirtualReader()
    reader.insert(card)
    till.enrol("M1", card_uid=card.uid, card_kind="purse", pin="1234")
    till.purse.issue(reader.connect(), card.uid)  # type: ignore[union-attr]
    till.top_up_card(reader.connect(), card.uid, Money(value, EUR), payment_ref="LOAD")
    return card, reader


def test_defect_01_card_refund_torn_after_the_card_committed(till: Till) -> None:
    card, reader = card_member(till)
    sale = till.checkout(Basket(EUR, [Line("X", 1, 700)]), till.identify(card.uid))
    sale.pay_card(card.uid, Money(700, EUR))
    sale.complete("R-1", card=reader.connect())
    assert (chip(till, card), shadow(till, card)) == (2_300, 2_300)
    card.faults.tear_after_commit = True
    with pytest.raises(PaymentInterrupted):
        till.refund("R-1", {0: 1}, refund_ref="F-1", card=reader.connect())
    assert chip(till, card) == 3_000  # the card took the refund
    assert len(till.pending_card_intents()) == 1  # and the till knows it might have
    reader.insert(card)
    refund = till.refund("R-1", {0: 1}, refund_ref="F-1", card=reader.connect())  # the retry
    assert refund.card_credited == eur(700) and refund.cash_due == eur(0)
    assert (chip(till, card), shadow(till, card)) == (3_000, 3_000)  # credited once
    assert till.refund("R-1", {0: 1}, refund_ref="F-1", card=reader.connect()) == refund
    assert till.pending_card_intents() == []
    till.ledger.check()


def test_defect_01_every_card_operation_resolves_at_the_next_tap(till: Till) -> None:
    """Sale, top-up, refund, void, transfer to a new card and issue, each torn after the commit."""
    card, reader = card_member(till)

    def torn(call: Any) -> None:
        card.faults.tear_after_commit = True
        with pytest.raises(PaymentInterrupted):
            call()
        reader.insert(card)

    sale = till.checkout(Basket(EUR, [Line("X", 2, 500)]), till.identify(card.uid))
    sale.pay_card(card.uid, Money(1_000, EUR))
    torn(lambda: sale.complete("R-1", card=reader.connect()))
    # The card's next use settles what it still owes first: the sale completes at the top-up.
    torn(lambda: till.top_up_card(reader.connect(), card.uid, Money(400, EUR), payment_ref="T2"))
    assert till.receipt("R-1").card_paid == eur(1_000)
    assert till.resolve_card(reader.connect(), card.uid) == ["topup T2: completed"]
    torn(lambda: till.refund("R-1", {0: 1}, refund_ref="F-1", card=reader.connect()))
    assert till.resolve_card(reader.connect(), card.uid) == ["refund F-1: completed"]
    assert (chip(till, card), shadow(till, card)) == (2_900, 2_900)
    other = till.checkout(Basket(EUR, [Line("Y", 1, 300)]), till.identify(card.uid))
    other.pay_card(card.uid, Money(300, EUR))
    other.complete("R-2", card=reader.connect())
    torn(lambda: till.void("R-2", card=reader.connect()))
    assert till.void("R-2", card=reader.connect()).card_credited == eur(
        300
    )  # the retry finishes it
    assert (chip(till, card), shadow(till, card)) == (2_900, 2_900)
    # The card is lost; its value goes onto a new card, which is torn while it is loaded.
    new = VirtualDesfire(bytes.fromhex("04AABBCCDDEEFF"))
    new_reader = VirtualReader()
    new_reader.insert(new)
    till.issue_card(new_reader.connect(), new.uid, "M1")
    new.faults.tear_after_commit = True
    with pytest.raises(PaymentInterrupted):
        till.replace_card(card.uid, new.uid, transport=new_reader.connect())
    new_reader.insert(new)
    assert till.replace_card(card.uid, new.uid, transport=new_reader.connect()) == eur(2_900)
    assert (chip(till, new), shadow(till, new)) == (2_900, 2_900)
    assert till.replace_card(card.uid, new.uid, transport=new_reader.connect()) == eur(2_900)
    assert shadow(till, card) == 0
    till.ledger.check()


def test_defect_01_issue_torn_at_every_apdu(tmp_path: Path, clock: Clock) -> None:
    for tear in range(20):
        till = open_till(tmp_path / f"t{tear}.db", clock)
        till.enrol("M1")
        card = VirtualDesfire(UID)
        reader = VirtualReader()
        reader.insert(card)
        card.faults.tear_before = tear
        try:
            till.issue_card(reader.connect(), card.uid, "M1", initial=Money(500, EUR))
        except PaymentInterrupted:
            reader.insert(card)
            till.issue_card(reader.connect(), card.uid, "M1", initial=Money(500, EUR))
        assert (chip(till, card), shadow(till, card)) == (500, 500), tear
        assert till.pending_card_intents() == []
        till.ledger.check()
        till.close()


BONUS = {
    "id": "visit",
    "description": "50 points a visit",
    "effect": {"type": "bonus", "points": 50, "per": "receipt"},
}


def test_defect_02_voids_and_refunds_take_receipt_bonuses_back(
    tmp_path: Path, clock: Clock
) -> None:
    till = till_with(tmp_path / "t.db", clock, rules_with(rules=[BONUS]))
    till.enrol("M1")
    for n in range(3):
        sale = till.checkout(Basket(EUR, [Line("X", 1, 100)]), till.identify("M1"))
        assert sale.complete(f"R-{n}").points_earned == 51
        till.void(f"R-{n}")
    assert till.balance("M1").points_available == 0  # no points farmed
    sale = till.checkout(
        Basket(EUR, [Line("A", 2, 1_000), Line("B", 1, 333)]), till.identify("M1")
    ).complete("R-9")
    assert sale.points_earned == 20 + 3 + 50
    back = [
        till.refund("R-9", {0: 1}, refund_ref="F-1"),
        till.refund("R-9", {1: 1}, refund_ref="F-2"),
    ]
    back.append(till.refund("R-9", {0: 1}, refund_ref="F-3"))
    assert sum(r.points_clawed_back for r in back) == 73  # the bonus came back with the lines
    assert back[0].points_clawed_back == 10 + 50 * 1_000 // 2_333
    assert till.balance("M1").points_available == 0
    till.ledger.check()


def test_defect_03_one_card_two_members(till: Till) -> None:
    till.enrol("M-1", card_uid=UID)
    with pytest.raises(CardInUse) as refused:
        till.enrol("M-2", card_uid=UID)
    assert UID.hex().upper() in str(refused.value) and "M-1" not in str(refused.value)
    assert till.identify(UID).member.id == "M-1"
    with pytest.raises(Exception, match="M-2"):
        till.member("M-2")  # nothing of the refused enrolment was kept
    till.enrol("M-1", card_uid=UID)  # the same again is harmless
    till.enrol("M-3")
    with pytest.raises(CardInUse):
        till.link_card("M-3", UID)


def test_defect_04_refunds_in_steps_do_not_drift(tmp_path: Path, clock: Clock) -> None:
    till = till_with(tmp_path / "t.db", clock, {**RULES, "rules": []})
    till.enrol("M1", pin="1234")
    till.ledger.transfer(
        "seed",
        [
            Posting.debit("sys:points:issued", Points(777)),
            Posting.credit(till.points_account("M1"), Points(777)),
        ],
    )
    till.top_up("M1", Money(1_111, EUR), payment_ref="P")
    prices = [999, 1_234, 577, 2_001, 1_311]
    sale = till.checkout(
        Basket(EUR, [Line(f"L{i}", 1, p) for i, p in enumerate(prices)]), till.identify("M1")
    )
    sale.redeem_points(777, pin="1234")
    sale.pay_wallet(Money(1_111, EUR))
    receipt = sale.complete("R-1")
    cash_paid = receipt.to_pay.minor
    total = sum(prices)
    points = wallet = cash = refunded = 0
    for i, price in enumerate(prices):
        r = till.refund("R-1", {i: 1}, refund_ref=f"F-{i}")
        points, wallet, cash, refunded = (
            points + r.points_reinstated,
            wallet + r.wallet_credited.minor,
            cash + r.cash_due.minor,
            refunded + r.amount.minor,
        )
        assert r.points_reinstated + r.wallet_credited.minor + r.cash_due.minor == price
        assert r.amount == eur(price)
        # Each tender has given back its share of all refunded so far, to the cent.
        for given, paid in ((points, 777), (wallet, 1_111), (cash, cash_paid)):
            assert paid * refunded // total <= given <= -(-paid * refunded // total)
    assert (points, wallet, cash) == (777, 1_111, cash_paid)  # exact, never more cash
    balance = till.balance("M1")
    assert (balance.points_available, balance.wallet_available) == (777, eur(1_111))
    till.ledger.check()


def test_defect_05_expired_points_are_not_available(tmp_path: Path, clock: Clock) -> None:
    till = till_with(tmp_path / "t.db", clock, {**RULES, "points": {"expiry_days": 30}})
    till.enrol("M1", pin="1234")
    till.checkout(Basket(EUR, [Line("A", 1, 10_000)]), till.identify("M1")).complete("R-1")
    assert till.points_available("M1") == 100
    clock.advance(days=45)
    assert till.points_available("M1") == 0  # at every read, before anything is booked
    sale = till.checkout(Basket(EUR, [Line("B", 1, 500)]), till.identify("M1"))
    assert sale.quote().points_available == 0 and sale.quote().max_redeemable == 0
    assert till.balance("M1").points_available == 0
    breakage = till.ledger.balance("sys:points:breakage")
    assert till._minor(breakage.posted) == -100 or till._minor(breakage.posted) == 100
    till.balance("M1")
    assert till.ledger.balance("sys:points:breakage") == breakage  # booked once
    till.ledger.check()


TIERS = {
    "window_days": 365,
    "review": "quarter",
    "levels": [{"name": "Silver", "min_spend": 0}, {"name": "Gold", "min_spend": 50_000}],
}


def test_defect_06_tiers_move_with_spend(tmp_path: Path, clock: Clock) -> None:
    gold_double = {
        "id": "gold",
        "description": "gold members earn double",
        "effect": {"type": "multiply", "factor": "2"},
        "who": {"tiers": ["Gold"]},
    }
    till = till_with(tmp_path / "t.db", clock, rules_with(tiers=TIERS, rules=[gold_double]))
    till.enrol("M1")
    till.checkout(Basket(EUR, [Line("A", 1, 30_000)]), till.identify("M1")).complete("R-1")
    assert till.member("M1").tier == "Silver"
    till.checkout(Basket(EUR, [Line("B", 1, 30_000)]), till.identify("M1")).complete("R-2")
    assert till.member("M1").tier == "Gold"  # 600.00 in the window: upgraded at once
    third = till.checkout(Basket(EUR, [Line("C", 1, 1_000)]), till.identify("M1"))
    assert third.quote().points_to_earn == 20  # the Gold rule applies from the next sale
    third.cancel()
    with pytest.raises(UnknownTier):
        till.set_tier("M1", "Platinum")
    till.refund("R-2", {0: 1}, refund_ref="F-2")  # spend falls to 300.00
    assert till.member("M1").tier == "Gold"  # down only at a review
    clock.now = datetime(2027, 1, 2, 10, 0, tzinfo=UTC)  # past the quarter's end
    assert till.review_tiers() == ["M1"]
    assert till.member("M1").tier == "Silver"
    assert till.review_tiers() == []


def test_defect_07_member_cap_regions_and_once_per_rules(tmp_path: Path, clock: Clock) -> None:
    rules = rules_with(
        caps={"per_member": {"points": 300, "period": "month"}},
        rules=[
            {
                "id": "north",
                "description": "5 extra in the north",
                "effect": {"type": "bonus", "points": 5, "per": "receipt"},
                "where": {"regions": ["north"]},
            },
            {
                "id": "birthday",
                "description": "a birthday gift",
                "effect": {"type": "bonus", "points": 100, "per": "receipt"},
                "who": {"birthday_month": True},
                "once_per": "year",
            },
        ],
    )
    till = till_with(tmp_path / "t.db", clock, rules, region="north")
    till.enrol("M1", birthday=date(1990, 11, 5))
    earned = []
    for n in range(4):
        sale = till.checkout(Basket(EUR, [Line("A", 1, 18_000)]), till.identify("M1"))
        earned.append(sale.complete(f"R-{n}").points_earned)
    assert earned[0] == 180 + 5 + 100  # the region's bonus and the birthday gift
    assert earned[1] == 300 - 285  # the month's cap
    assert sum(earned) == 300
    clock.advance(days=10)  # December: a new month, the birthday gift not again
    assert (
        till.checkout(Basket(EUR, [Line("A", 1, 1_000)]), till.identify("M1"))
        .complete("R-DEC")
        .points_earned
        == 10 + 5
    )
    till.void("R-DEC")
    till.ledger.check()


def test_defect_07_a_voided_birthday_gift_can_be_had_again(tmp_path: Path, clock: Clock) -> None:
    gift = {
        "id": "birthday",
        "description": "a birthday gift",
        "effect": {"type": "bonus", "points": 100, "per": "receipt"},
        "who": {"birthday_month": True},
        "once_per": "year",
    }
    till = till_with(tmp_path / "t.db", clock, rules_with(rules=[gift]))
    till.enrol("M1", birthday=date(1990, 11, 5))
    first = till.checkout(Basket(EUR, [Line("A", 1, 100)]), till.identify("M1")).complete("R-1")
    assert first.points_earned == 101
    till.void("R-1")
    again = till.checkout(Basket(EUR, [Line("A", 1, 100)]), till.identify("M1")).complete("R-2")
    assert again.points_earned == 101


def test_defect_08_background_sync_beside_sales_does_not_deadlock(
    tmp_path: Path, clock: Clock
) -> None:
    hub = Hub(SQLiteHubStore(tmp_path / "hub.db"))

    class Counting(DirectLink):
        rounds = 0

        def pull(self, after: int, limit: int = 500) -> Any:
            Counting.rounds += 1
            return super().pull(after, limit)

    link = Counting(hub, hub.register("S1-T1", hub.create_till("S1-T1")))
    till = till_with(tmp_path / "t.db", clock, RULES, hub=link)
    till.enrol("M1", pin="1234")
    till.top_up("M1", Money(1_000_000, EUR), payment_ref="P")
    till.ledger.transfer(
        "seed",
        [
            Posting.debit("sys:points:issued", Points(100_000)),
            Posting.credit(till.points_account("M1"), Points(100_000)),
        ],
    )
    syncer = Syncer(till, link)
    done: list[int] = []
    failures: list[BaseException] = []

    def pos() -> None:
        try:
            for n in range(300):
                sale = till.checkout(Basket(EUR, [Line("A", 1, 500)]), till.identify("M1"))
                sale.redeem_points(100, pin="1234")
                sale.pay_wallet(Money(200, EUR))
                sale.complete(f"R-{n}")
                done.append(n)
        except BaseException as error:
            failures.append(error)

    syncer.start(interval=0.0)
    worker = threading.Thread(target=pos)
    worker.start()
    worker.join(timeout=300)  # a guard against a hang only: the assertions are on progress
    syncer.stop()
    assert not failures and len(done) == 300, (failures, len(done))
    assert Counting.rounds > 1  # the sync ran beside the sales
    till.ledger.check()
    till.close()


def _void_at(path: Path, clock_now: datetime, kill: Kill) -> Any:
    def body(child: Child) -> None:
        clock = Clock()
        clock.now = clock_now
        till = open_till(
            path,
            clock,
        )
        child.watch(till.ledger.store.connection)  # type: ignore[attr-defined]
        child.ready()
        result = till.void("R-1")
        child.ack(repr(result))
        while True:  # statements after the void, so a late kill still lands
            till._conn.execute("SELECT 1").fetchone()

    return run(body, kill)


def test_defect_09_a_void_is_one_commit_and_answers_again(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "t.db"
    till = open_till(path, clock)
    till.enrol("M1")
    till.checkout(Basket(EUR, [Line("A", 2, 1_000)]), till.identify("M1")).complete("R-1")
    till.close()
    first = None
    for statement in range(1, 60):
        outcome = _void_at(path, clock.now, Kill.at_statement(statement))
        assert outcome.killed
        till = open_till(path, clock)
        till.ledger.check()
        _, _, status, _ = till._receipt_row("R-1")
        refunded = till._conn.execute("SELECT count(*) FROM till_refunds").fetchone()[0]
        assert (status, refunded) in (("completed", 0), ("voided", 1)), statement
        if status == "voided":
            first = first or till.void("R-1")
            assert till.void("R-1") == first  # every retry answers as the first did
            assert till.balance("M1").points_available == 0
            till.close()
            break
        till.close()
    assert first is not None


def test_defect_10_a_rerun_session_gets_the_stored_receipt(till: Till) -> None:
    card, _ = card_member(till)
    till.top_up("M1", Money(1_000, EUR), payment_ref="W")
    till.checkout(Basket(EUR, [Line("TV", 1, 20_000)]), till.identify("M1")).complete("R-0")

    def session(receipt_ref: str | None) -> Any:
        sale = till.checkout(
            Basket(EUR, [Line("A", 1, 1_500)]), till.identify(card.uid), receipt_ref=receipt_ref
        )
        sale.redeem_points(100)
        sale.pay_wallet(Money(1_000, EUR))
        return sale

    first = session("R-1").complete()
    assert till.wallet_available("M1") == eur(0)
    # The POS crashed before printing and runs the whole session again.
    again = session("R-1")
    assert again.complete() == first
    assert again.complete("R-1") == first
    # Told the number only at the end, the session's holds are let go.
    late = till.checkout(Basket(EUR, [Line("A", 1, 1_500)]), till.identify(card.uid))
    late.redeem_points(100)
    assert late.complete("R-1") == first
    balance = till.balance("M1")
    assert balance.points_pending == 0 and till.ledger.balance(
        till.points_account("M1")
    ).pending == Points(0)
    till.ledger.check()


def test_defect_11_amounts_beyond_the_maximum(till: Till) -> None:
    till.enrol("M1")
    with pytest.raises(InvalidAmount):
        Money(2**63 - 1, EUR)
    with pytest.raises(BasketError):
        Basket(EUR, [Line("A", 1, 2**53 - 1), Line("B", 1, 2**53 - 1)])
    with pytest.raises(BasketError):
        Line("A", 2, 2**53 - 1)
    big = Money(2**53 - 1, EUR)
    with pytest.raises(BalanceOverflow):
        for n in range(2):  # the second would take the wallet past the maximum
            till.top_up("M1", big, payment_ref=f"P-{n}")
    till.ledger.check()
    assert till.wallet_available("M1") == eur(2**53 - 1)


def test_defect_12_two_breakages_in_one_clock_tick() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    ledger = Ledger.in_memory(clock=lambda: now)
    ledger.open_account("sys:points:issued", "PTS")
    ledger.open_account("sys:points:redeemed", "PTS")
    ledger.open_account("sys:points:breakage", "PTS")
    limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    ledger.open_account(
        "member:M:points", "PTS", flags=limited, lots=True, breakage_account="sys:points:breakage"
    )
    expiry = now + timedelta(days=1)
    ledger.transfer(
        "earn",
        [
            Posting.debit("sys:points:issued", Points(100)),
            Posting.credit("member:M:points", Points(100), expires_at=expiry),
        ],
    )
    ledger.transfer(
        "spend",
        [
            Posting.debit("member:M:points", Points(40)),
            Posting.credit("sys:points:redeemed", Points(40)),
        ],
    )
    later = expiry + timedelta(seconds=1)
    assert len(ledger.expire(later)) == 1
    ledger.reverse("unspend", "spend")  # the 40 go back into the expired lot
    assert len(ledger.expire(later)) == 1  # the same instant: a second breakage, its own key
    assert ledger.balance("member:M:points").available == Points(0)
    ledger.check()


def test_a_blocked_card_is_replaced_with_its_value(till: Till) -> None:
    card, _ = card_member(till)
    till.block_card(card.uid, reason="lost")  # the member reports it lost
    assert till.replace_card(card.uid, bytes.fromhex("04EEEEEEEEEE01")) == eur(3_000)
    assert till.balance("M1").wallet_available == eur(3_000)
    with pytest.raises(CardBlocked):  # replaced once; not by another card again
        till.replace_card(card.uid, bytes.fromhex("04EEEEEEEEEE02"))
    till.ledger.check()
