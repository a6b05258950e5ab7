# SPDX-License-Identifier: Apache-2.0
"""The whole public Till API in random orders, with tears and kills, against a small model.

The model is plain dicts: what each member's points (as lots with their
expiry) and wallet should hold, what each card's chip should hold, what
each voucher has left, and, per receipt, what each tender paid and has
given back so far. It earns by its own arithmetic (1 point per euro of the
basket, plus 50 a receipt) and checks every refund against the sharing rule
(each tender's share of all refunded so far, to the cent; exactly what it
paid once everything is refunded). After every step: every member, card
and voucher equals the model, every chip equals its ledger shadow,
`ledger.check()` passes, and no card intent is left pending.

Faults: a card torn at any APDU of a sale, top-up, refund or void (then a
retry with the card, or the card's next tap settles it), and the till
process SIGKILLed at any SQL statement of an operation (then reopened, and
the POS retries with the same reference: the retry answers as the first
did, and the model moves once).

CI runs LOYALTY_STATEFUL_EXAMPLES=25 examples of up to 30 steps; a long
soak: LOYALTY_STATEFUL_EXAMPLES=2000 LOYALTY_STATEFUL_STEPS=80 scripts/test
tests/till/test_till_stateful.py (see docs/testing.md).
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.reader import VirtualReader

from loyaltysdk import Basket, Line, Money, Till, load_rules
from loyaltysdk.cards.purse import Purse
from loyaltysdk.ledger import Posting
from loyaltysdk.till import (
    NotEnoughPoints,
    PaymentInterrupted,
    RefundRefused,
    TillPolicy,
    VoidRefused,
)
from loyaltysdk.vouchers import (
    IssuerKey,
    Keyring,
    RedemptionPolicy,
    VoucherIssuer,
    VoucherTemplate,
)

from ..forking import Child, Kill, run
from .conftest import KEYSTORE

EUR = "EUR"
EXAMPLES = int(os.environ.get("LOYALTY_STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("LOYALTY_STATEFUL_STEPS", "30"))
EXPIRY_DAYS = 30
RULES = {
    "schema": 1,
    "version": 1,
    "currency": EUR,
    "points": {"expiry_days": EXPIRY_DAYS},
    "rules": [
        {"id": "base", "description": "1 a euro", "effect": {"type": "earn", "points": 1, "per": 100}},
        {
            "id": "visit",
            "description": "50 a visit",
            "effect": {"type": "bonus", "points": 50, "per": "receipt"},
        },
    ],
}
ISSUER = IssuerKey.generate("HQ-SM")
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MEMBERS = ("M1", "M2", "M3")
CARDS = {"M1": bytes.fromhex("04000000000001"), "M2": bytes.fromhex("04000000000002")}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def open_till(path: Path, clock: Clock) -> Till:
    return Till.open(
        path,
        store="S1",
        till_id="S1-T1",
        currency=EUR,
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        clock=clock,
        purse=Purse(KEYSTORE, clock=lambda: clock().timestamp()),
        keyring=Keyring({"HQ-SM": ISSUER.public_key}),
        policy=TillPolicy(
            vouchers=RedemptionPolicy(offline_max_value=0), presence_for_redemption=False
        ),
    )


def share_bounds(paid: int, refunded: int, total: int) -> tuple[int, int]:
    return paid * refunded // total, -(-paid * refunded // total)


class TillMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="till-sm-"))
        self.clock = Clock()
        self.path = self.dir / "till.db"
        self.till = open_till(self.path, self.clock)
        self.cards: dict[str, VirtualDesfire] = {}
        self.reader = VirtualReader()
        # The model.
        self.lots: dict[str, list[list[Any]]] = {m: [] for m in MEMBERS}  # [earned, expires, left]
        self.wallet = dict.fromkeys(MEMBERS, 0)
        self.chips: dict[str, int] = {}
        self.card_of: dict[str, str] = {}  # member -> live purse card uid (hex)
        self.vouchers: dict[str, int] = {}
        self.voucher_payload: dict[str, str] = {}
        self.receipts: dict[str, dict[str, Any]] = {}
        self.answers: dict[tuple[str, str], Any] = {}  # (operation, key) -> first answer
        self.n = 0
        for member in MEMBERS:
            self.till.enrol(member, pin="0000")
        for member, uid in CARDS.items():
            card = VirtualDesfire(uid)
            self.cards[uid.hex().upper()] = card
            self.till.enrol(member)
            self.reader.insert(card)
            self.till.issue_card(self.reader.connect(), uid, member, initial=Money(2_000, EUR))
            self.chips[uid.hex().upper()] = 2_000
            self.card_of[member] = uid.hex().upper()
        issuer = VoucherIssuer(ISSUER)
        for n in range(2):
            gift = issuer.issue(
                VoucherTemplate("value", 3_000, EUR, START, START + timedelta(days=900), mode="partial")
            )
            self.till.vouchers.register(gift.terms)
            self.vouchers[gift.terms.code] = 3_000
            self.voucher_payload[gift.terms.code] = gift.payload
            del n

    def teardown(self) -> None:
        self.till.close()

    # -- helpers ----------------------------------------------------------------------

    def ref(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def available(self, member: str) -> int:
        now = self.clock.now
        return sum(left for _, expires, left in self.lots[member] if expires > now)

    def expire_model(self, member: str) -> None:
        now = self.clock.now
        self.lots[member] = [lot for lot in self.lots[member] if lot[1] > now and lot[2] > 0]

    def take_points(self, member: str, points: int) -> None:
        self.expire_model(member)
        for lot in sorted(self.lots[member], key=lambda lot: lot[0]):
            step = min(points, lot[2])
            lot[2] -= step
            points -= step
        assert points == 0, "the model spent more points than it had"

    def give_points(self, member: str, points: int) -> None:
        if points:
            now = self.clock.now
            self.lots[member].append([now, now + timedelta(days=EXPIRY_DAYS), points])

    def present(self, uid: str) -> Any:
        self.reader.insert(self.cards[uid])
        return self.reader.connect()

    def tear(self, uid: str, at: int | None) -> None:
        card = self.cards[uid]
        if at is None:
            card.faults.tear_after_commit = True
        else:
            card.faults.tear_before = card.apdu_count + at

    def clear_faults(self, uid: str) -> None:
        self.cards[uid].faults.tear_before = None
        self.cards[uid].faults.tear_after_commit = False

    def remember(self, operation: str, key: str, answer: Any) -> None:
        first = self.answers.setdefault((operation, key), answer)
        assert first == answer, f"{operation} {key} answered {answer}, first {first}"

    # -- steps ------------------------------------------------------------------------

    @rule(member=st.sampled_from(MEMBERS), amount=st.integers(1, 5_000))
    def top_up(self, member: str, amount: int) -> None:
        ref = self.ref("TOP")
        self.till.top_up(member, Money(amount, EUR), payment_ref=ref)
        self.wallet[member] += amount

    @rule(
        member=st.sampled_from(list(CARDS)),
        amount=st.integers(1, 3_000),
        tear=st.none() | st.integers(0, 8) | st.just(-1),
        retry=st.booleans(),
    )
    def top_up_card(self, member: str, amount: int, tear: int | None, retry: bool) -> None:
        uid = self.card_of.get(member)
        if uid is None or self.chips[uid] + amount > 50_000:
            return
        ref = self.ref("CTOP")
        done = self.card_call(
            uid,
            tear,
            retry,
            lambda: self.till.top_up_card(
                self.present(uid), bytes.fromhex(uid), Money(amount, EUR), payment_ref=ref
            ),
        )
        if done:
            self.chips[uid] += amount

    def card_call(self, uid: str, tear: int | None, retry: bool, call: Any) -> bool:
        """Run a card operation, maybe torn; then retry it, or let the next tap settle it.

        Returns whether the operation happened (the model then moves once).
        """
        if tear is not None:
            self.tear(uid, None if tear < 0 else tear)
        try:
            self.last = call()
            self.clear_faults(uid)
            return True
        except PaymentInterrupted:
            self.clear_faults(uid)
        if retry:
            self.last = call()
            return True
        report = self.till.resolve_card(self.present(uid), bytes.fromhex(uid))
        assert len(report) == 1, report
        return report[0].endswith("completed")

    @rule(
        member=st.sampled_from((None, *MEMBERS)),
        prices=st.lists(st.integers(1, 4_000), min_size=1, max_size=4),
        points=st.integers(0, 3_000),
        wallet=st.integers(0, 3_000),
        card=st.integers(0, 3_000),
        voucher=st.booleans(),
        tear=st.none() | st.integers(0, 7) | st.just(-1),
        retry=st.booleans(),
    )
    def sale(
        self,
        member: str | None,
        prices: list[int],
        points: int,
        wallet: int,
        card: int,
        voucher: bool,
        tear: int | None,
        retry: bool,
    ) -> None:
        ref = self.ref("R")
        basket = Basket(EUR, [Line(f"SKU{i}", 1 + i % 2, p) for i, p in enumerate(prices)])
        total = basket.total
        identity = self.till.identify(member) if member else None
        session = self.till.checkout(basket, identity)
        uid = self.card_of.get(member) if member else None
        due = total
        points = min(points, self.available(member), due) if member else 0
        if points:
            session.redeem_points(points)
            due -= points
        voucher_code = None
        if voucher and due:
            live = [code for code, left in self.vouchers.items() if left]
            if live:
                voucher_code = live[0]
                use = session.apply_voucher(self.voucher_payload[voucher_code])
                assert use.amount == min(self.vouchers[voucher_code], due)
                due -= use.amount
        wallet = min(wallet, self.wallet[member], due) if member else 0
        if wallet:
            session.pay_wallet(Money(wallet, EUR))
            due -= wallet
        card = min(card, self.chips[uid], due) if uid else 0
        if card:
            assert uid is not None
            session.pay_card(bytes.fromhex(uid), Money(card, EUR))
            due -= card
        assert session.quote().due == due
        if card:
            assert uid is not None
            done = self.card_call(
                uid, tear, retry, lambda: session.complete(ref, card=self.present(uid))
            )
            if not done:  # abandoned at the tap: nothing was taken, the holds were let go
                with_receipt = False
                assert self.till.pending_card_intents() == []
                return
            receipt = self.till.receipt(ref)
        else:
            receipt = session.complete(ref)
        with_receipt = True
        assert with_receipt
        self.book_sale(ref, member, basket, receipt, points, voucher_code, wallet, card, uid)

    def book_sale(
        self,
        ref: str,
        member: str | None,
        basket: Basket,
        receipt: Any,
        points: int,
        voucher_code: str | None,
        wallet: int,
        card: int,
        uid: str | None,
    ) -> None:
        total = basket.total
        expected = total // 100 + 50 if member else 0
        assert receipt.points_earned == expected
        assert (receipt.points_redeemed, receipt.wallet_paid, receipt.card_paid) == (
            points,
            wallet,
            card,
        )
        voucher_paid = sum(use.amount for use in receipt.vouchers)
        assert receipt.to_pay == total - points - voucher_paid - wallet - card
        if member:
            self.take_points(member, points)
            self.give_points(member, expected)
            self.wallet[member] -= wallet
        if voucher_code:
            self.vouchers[voucher_code] -= voucher_paid
        if uid:
            self.chips[uid] -= card
        paid = {"points": points, "wallet": wallet, "card": card, "cash": receipt.to_pay}
        if voucher_code:
            paid["voucher"] = voucher_paid
        self.receipts[ref] = {
            "member": member,
            "lines": [[line.quantity, line.net] for line in basket.lines],
            "refunded": [0] * len(basket.lines),
            "total": total,
            "paid": paid,
            "back": dict.fromkeys(paid, 0),
            "amount": 0,
            "points": receipt.points_earned,
            "line_points": list(receipt.line_points),
            "clawed_target": 0,
            "voucher": voucher_code,
            "uid": uid,
            "day": self.clock.now.date(),
            "voided": False,
        }
        self.remember("sale", ref, receipt)

    receipts_left = precondition(lambda self: any(not r["voided"] for r in self.receipts.values()))

    @receipts_left
    @rule(
        data=st.data(),
        with_card=st.booleans(),
        tear=st.none() | st.integers(0, 7) | st.just(-1),
        retry=st.booleans(),
    )
    def refund(self, data: st.DataObject, with_card: bool, tear: int | None, retry: bool) -> None:
        refs = sorted(ref for ref, r in self.receipts.items() if not r["voided"])
        ref = data.draw(st.sampled_from(refs))
        sold = self.receipts[ref]
        left = [(i, q - done) for i, ((q, _), done) in enumerate(zip(sold["lines"], sold["refunded"], strict=True)) if q > done]
        if not left:
            with_none = {0: 1}
            with_ref = self.ref("F")
            try:
                self.till.refund(ref, with_none, refund_ref=with_ref)
                raise AssertionError("refunding more than was sold must be refused")
            except RefundRefused:
                return
        lines = {i: data.draw(st.integers(1, n)) for i, n in left if data.draw(st.booleans())}
        lines = lines or {left[0][0]: 1}
        refund_ref = self.ref("F")
        uid = sold["uid"] if with_card and sold["paid"]["card"] else None
        card = self.present(uid) if uid else None

        def call() -> Any:
            return self.till.refund(
                ref, lines, refund_ref=refund_ref, card=self.present(uid) if uid else None
            )

        if uid:
            done = self.card_call(uid, tear, retry, call)
            if not done:
                return
            result = self.till._refunds._done(refund_ref, lines)
        else:
            result = call()
        del card
        self.book_refund(ref, lines, result)
        self.remember("refund", refund_ref, result)
        assert self.till.refund(ref, lines, refund_ref=refund_ref) == result  # a retry

    def book_refund(self, ref: str, lines: dict[int, int], result: Any) -> None:
        sold = self.receipts[ref]
        member = sold["member"]
        before = list(sold["refunded"])
        for i, q in lines.items():
            sold["refunded"][i] += q
        nominal = sum(
            net * sold["refunded"][i] // qty - net * before[i] // qty
            for i, (qty, net) in enumerate(sold["lines"])
        )
        assert result.amount == nominal
        sold["amount"] += result.amount
        whole = all(
            done == qty for done, (qty, _) in zip(sold["refunded"], sold["lines"], strict=True)
        )
        back = {
            "points": result.points_reinstated,
            "wallet": result.wallet_credited - (result.card_credited and 0),
            "card": result.card_credited,
            "voucher": result.vouchers_reinstated,
            "cash": result.cash_due,
        }
        # A card share paid back without the card goes to the wallet (members) or cash.
        card_share_elsewhere = 0
        if sold["paid"]["card"] and not result.card_credited:
            card_share_elsewhere = None  # checked through the totals below
        given = (
            result.points_reinstated
            + result.vouchers_reinstated
            + result.voucher_forfeited
            + result.wallet_credited
            + result.card_credited
            + result.cash_due
        )
        assert given == result.amount, result
        del card_share_elsewhere, back
        # Cumulative bounds per tender that can be told apart from the result.
        total = sold["total"]
        for name in ("points", "voucher"):
            if name in sold["paid"]:
                got = result.points_reinstated if name == "points" else result.vouchers_reinstated
                sold["back"][name] += got
                low, high = share_bounds(sold["paid"][name], sold["amount"], total)
                assert low <= sold["back"][name] <= high, (name, sold)
        if whole:
            assert sold["back"]["points"] == sold["paid"]["points"]
            if "voucher" in sold["paid"]:
                assert sold["back"]["voucher"] == sold["paid"]["voucher"]
        # Earned points: by line, and the visit bonus by value, all when whole.
        if member:
            by_line = sum(
                lp * done // qty
                for lp, done, (qty, _) in zip(
                    sold["line_points"], sold["refunded"], sold["lines"], strict=True
                )
            )
            value = sum(
                net * done // qty
                for done, (qty, net) in zip(sold["refunded"], sold["lines"], strict=True)
            )
            target = sold["points"] if whole else by_line + 50 * value // total
            wanted = target - sold["clawed_target"]
            sold["clawed_target"] = target
            self.expire_model(member)
            taken = min(wanted, self.available(member) + result.points_reinstated * 0)
            assert result.points_clawed_back + result.points_shortfall == wanted
            assert result.points_clawed_back == min(wanted, self.available(member))
            del taken
            self.take_points(member, result.points_clawed_back)
            self.give_points(member, result.points_reinstated)
            self.wallet[member] += result.wallet_credited
        if sold["voucher"]:
            self.vouchers[sold["voucher"]] += result.vouchers_reinstated
        if result.card_credited:
            self.chips[sold["uid"]] += result.card_credited

    @receipts_left
    @rule(data=st.data(), tear=st.none() | st.integers(0, 7) | st.just(-1), retry=st.booleans())
    def void(self, data: st.DataObject, tear: int | None, retry: bool) -> None:
        refs = sorted(ref for ref, r in self.receipts.items() if not r["voided"])
        ref = data.draw(st.sampled_from(refs))
        sold = self.receipts[ref]
        if any(sold["refunded"]) or sold["day"] != self.clock.now.date():
            try:
                self.till.void(ref)
                raise AssertionError("that void must be refused")
            except VoidRefused:
                return
        uid = sold["uid"] if sold["paid"]["card"] else None

        def call() -> Any:
            return self.till.void(ref, card=self.present(uid) if uid else None)

        if uid:
            if not self.card_call(uid, tear, retry, call):
                return
            result = self.till.void(ref, card=self.present(uid))
        else:
            result = call()
        lines = {i: qty for i, (qty, _) in enumerate(sold["lines"])}
        self.book_refund(ref, lines, result)
        sold["voided"] = True
        self.remember("void", ref, result)
        assert self.till.void(ref) == result  # a retried void answers as the first did

    @rule(member=st.sampled_from(list(CARDS)), with_card=st.booleans())
    def replace_card(self, member: str, with_card: bool) -> None:
        lost = self.card_of.get(member)
        if lost is None:
            return
        new_uid = os.urandom(7)
        new = VirtualDesfire(new_uid)
        uid = new_uid.hex().upper()
        self.cards[uid] = new
        transport = None
        if with_card:
            self.reader.insert(new)
            self.till.issue_card(self.reader.connect(), new_uid, member)
            self.chips[uid] = 0
            transport = self.present(uid)
        moved = self.till.replace_card(bytes.fromhex(lost), new_uid, transport=transport)
        assert moved == self.chips[lost]
        if with_card:
            self.chips[uid] += moved
            self.card_of[member] = uid
        else:
            self.wallet[member] += moved
            del self.card_of[member]
            self.till.issue_card(self.present(uid), new_uid, member) if False else None
        self.chips[lost] = 0  # hotlisted: its value lives elsewhere now
        self.remember("replace", lost, moved)

    @rule(days=st.integers(1, 40))
    def time_passes(self, days: int) -> None:
        self.clock.now += timedelta(days=days)
        self.till.upkeep()
        for member in MEMBERS:
            self.expire_model(member)

    @rule(
        member=st.sampled_from(MEMBERS),
        price=st.integers(1, 4_000),
        statement=st.integers(1, 40),
        wallet=st.integers(0, 1_000),
    )
    def killed_mid_sale(self, member: str, price: int, statement: int, wallet: int) -> None:
        """SIGKILL at the n-th SQL statement of a sale; the POS retries with the same number."""
        ref = self.ref("K")
        wallet = min(wallet, self.wallet[member], price)
        self.till.close()
        path, now = self.path, self.clock.now

        def body(child: Child) -> None:
            clock = Clock()
            clock.now = now
            till = open_till(path, clock)
            child.watch(till.ledger.store.connection)  # type: ignore[attr-defined]
            child.ready()
            session = till.checkout(
                Basket(EUR, [Line("K", 1, price)]), till.identify(member), receipt_ref=ref
            )
            if wallet:
                session.pay_wallet(Money(wallet, EUR))
            child.ack(repr(session.complete()))
            while True:
                till._conn.execute("SELECT 1").fetchone()

        outcome = run(body, Kill.at_statement(statement))
        assert outcome.killed
        self.till = open_till(self.path, self.clock)
        self.till.ledger.check()
        session = self.till.checkout(
            Basket(EUR, [Line("K", 1, price)]), self.till.identify(member), receipt_ref=ref
        )
        if wallet:
            session.pay_wallet(Money(wallet, EUR))
        receipt = session.complete()
        if outcome.acks:
            assert outcome.acks[0] == repr(receipt)  # the retry answers as the first did
        self.book_sale(ref, member, Basket(EUR, [Line("K", 1, price)]), receipt, 0, None, wallet, 0, None)

    @receipts_left
    @rule(data=st.data(), statement=st.integers(1, 40))
    def killed_mid_refund(self, data: st.DataObject, statement: int) -> None:
        refs = sorted(
            ref
            for ref, r in self.receipts.items()
            if not r["voided"] and any(d < q for d, (q, _) in zip(r["refunded"], r["lines"], strict=True))
        )
        if not refs:
            return
        ref = data.draw(st.sampled_from(refs))
        sold = self.receipts[ref]
        index = next(i for i, (q, _) in enumerate(sold["lines"]) if sold["refunded"][i] < q)
        lines = {index: 1}
        refund_ref = self.ref("KF")
        self.till.close()
        path, now = self.path, self.clock.now

        def body(child: Child) -> None:
            clock = Clock()
            clock.now = now
            till = open_till(path, clock)
            child.watch(till.ledger.store.connection)  # type: ignore[attr-defined]
            child.ready()
            child.ack(repr(till.refund(ref, lines, refund_ref=refund_ref)))
            while True:
                till._conn.execute("SELECT 1").fetchone()

        outcome = run(body, Kill.at_statement(statement))
        assert outcome.killed
        self.till = open_till(self.path, self.clock)
        self.till.ledger.check()
        result = self.till.refund(ref, lines, refund_ref=refund_ref)
        if outcome.acks:
            assert outcome.acks[0] == repr(result)
        self.book_refund(ref, lines, result)

    @precondition(lambda self: bool(self.answers))
    @rule(data=st.data())
    def retry_an_earlier_call(self, data: st.DataObject) -> None:
        """Any call already answered answers the same again."""
        operation, key = data.draw(st.sampled_from(sorted(self.answers)))
        first = self.answers[(operation, key)]
        if operation == "sale":
            assert self.till.receipt(key) == first
        elif operation == "refund":
            lines = {int(i): q for i, q in self.till._refunds._done(key, {}) and {} or {}}
            del lines
            stored = self.till._conn.execute(
                "SELECT lines FROM till_refunds WHERE ref = ?", (key,)
            ).fetchone()
            import json

            again = self.till.refund(
                first.receipt, {int(i): q for i, q in json.loads(stored[0]).items()}, refund_ref=key
            )
            assert again == first
        elif operation == "void":
            assert self.till.void(key) == first

    @rule(member=st.sampled_from(MEMBERS), points=st.integers(1, 500))
    def redeem_more_than_held_is_refused(self, member: str, points: int) -> None:
        available = self.available(member)
        session = self.till.checkout(Basket(EUR, [Line("X", 1, 10_000)]), self.till.identify(member))
        try:
            session.redeem_points(available + points)
            raise AssertionError("redeemed more points than the member has")
        except NotEnoughPoints:
            pass
        session.cancel()

    # -- what must hold after every step ---------------------------------------------

    @invariant()
    def members_cards_and_vouchers_equal_the_model(self) -> None:
        till = self.till
        for member in MEMBERS:
            balance = till.balance(member)
            assert balance.points_available == self.available(member), member
            assert balance.wallet_available == self.wallet[member], member
            assert balance.points_pending == 0  # no hold outlives its step
        aid = till.purse.layout.aid  # type: ignore[union-attr]
        for uid, card in self.cards.items():
            if not card.apps:
                continue
            shadow = till._minor(till.ledger.balance(till.card_account(uid)).posted)
            assert card.value_of(aid, 1) == self.chips.get(uid, 0) or uid not in self.card_of.values()
            if uid in self.card_of.values():
                assert shadow == card.value_of(aid, 1) == self.chips[uid], uid
        for code, left in self.vouchers.items():
            assert till.vouchers.remaining(code) == left, code
        assert till.pending_card_intents() == []
        till.ledger.check()


TillMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_till_against_the_model = TillMachine.TestCase


def test_seeded_ledger_postings_are_what_the_model_starts_from() -> None:
    """The machine's set-up: two issued cards with 20.00 each, two vouchers of 30.00."""
    machine = TillMachine()
    try:
        machine.members_cards_and_vouchers_equal_the_model()
        assert sorted(machine.chips.values()) == [2_000, 2_000]
        assert Posting  # the ledger is touched only through the Till API above
    finally:
        machine.teardown()
