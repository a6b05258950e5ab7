# SPDX-License-Identifier: Apache-2.0
"""A checkout session: quote, redeem, apply vouchers, pay with stored value, complete.

Everything taken during the session is a hold (points, wallet) or a
checked promise (vouchers, card value); `complete` posts all of it and the
receipt in one durable commit, after the card (if any) has committed its
debit. The plan of the sale is stored with the card intent first, so a
sale whose card commit happened but whose ledger post did not (a crash, a
card pulled away at the wrong instant) is finished from the plan at the
card's next tap: never lost, never paid twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import attrs

from .._money import Money, Points
from ..cards.purse import CardIntent, Kind
from ..cards.transport import Transport
from ..ledger import AccountFlags, InsufficientFunds, Posting
from ..rules import Basket, Context, EarnResult, evaluate
from ._errors import (
    CheckoutError,
    EmptyBasket,
    NoMember,
    NotEnoughPoints,
    OverPayment,
    PresenceRequired,
    ReceiptConflict,
    RefundRefused,
    SessionClosed,
    WrongCurrency,
)
from ._receipt import Quote, Receipt, Refund, VoucherUse

if TYPE_CHECKING:
    from ._till import Identity, Till


class Checkout:
    """One basket at one till. Create it with `Till.checkout(basket, identity)`."""

    def __init__(self, till: Till, basket: Basket, identity: Identity | None) -> None:
        if not basket.lines:
            raise EmptyBasket("a checkout needs at least one line")
        if basket.currency != till.currency:
            raise WrongCurrency(
                f"the till works in {till.currency}, the basket is in {basket.currency}"
            )
        self.till = till
        self.basket = basket
        self.identity = identity
        _check_value_lines(till, basket, identity)
        self.session = os.urandom(8).hex()
        self.at = till.now()
        self._points = 0
        self._points_hold: str | None = None
        self._wallet = 0
        self._wallet_hold: str | None = None
        self._vouchers: list[tuple[str, VoucherUse]] = []
        self._card: tuple[str, int] | None = None
        self._closed = False
        self._mode: str = "standalone" if till.hub is None else "online"
        self._online_holds: list[str] = []
        self._offline_worth = 0
        self._total = basket.total
        self._earn = evaluate(till.rules, basket, self._member_view(), self._context())
        self._earn_lines = tuple(self._earn.explain())
        self._holds_made = 0

    # -- views ---------------------------------------------------------------------------

    def _member_view(self) -> Any:
        from ..rules import Member

        if self.identity is None:
            return Member("")
        return self.till.member_view(self.identity.member)

    def _context(self) -> Context:
        return Context(self.till.store, self.at, self.till.timezone)

    @property
    def total(self) -> int:
        return self._total

    def _others(self) -> int:
        vouchers = sum(use.amount for _, use in self._vouchers)
        card = self._card[1] if self._card else 0
        return vouchers + self._wallet + card

    @property
    def points_value(self) -> int:
        """What the redeemed points pay: their value, capped at what is left to pay."""
        value = math.floor(self._points * self.till.policy.minor_per_point)
        return max(0, min(value, self.total - self._others()))

    @property
    def due(self) -> int:
        return self.total - self.points_value - self._others()

    def _member_id(self) -> str:
        if self.identity is None:
            raise NoMember("identify the member first")
        return self.identity.member.id

    def _open(self) -> None:
        if self._closed:
            raise SessionClosed("this checkout was completed or cancelled")

    def quote(self) -> Quote:
        """Points to earn (with reasons), what the member can use, and what is due."""
        available = wallet = 0
        if self.identity is not None:
            member_id = self.identity.member.id
            available = self.till.points_available(member_id) + self._points
            wallet = self.till.wallet_available(member_id) + self._wallet
        per_point = self.till.policy.minor_per_point
        rest = self.due + self.points_value
        max_redeemable = min(available, math.ceil(Fraction(rest) / per_point)) if rest > 0 else 0
        return Quote(
            self.till.currency,
            self.total,
            self._earn.points,
            self._earn_lines,
            available,
            self._points,
            self.points_value,
            max_redeemable,
            tuple(use for _, use in self._vouchers),
            wallet,
            self._wallet,
            self._card[1] if self._card else 0,
            self.due,
            self._mode,
        )

    @property
    def earn(self) -> EarnResult:
        return self._earn

    # -- points ----------------------------------------------------------------------------

    def redeem_points(
        self, points: int, *, pin: str | None = None, otp: str | None = None
    ) -> Quote:
        """Pay with `points` (replacing any earlier amount), held until complete.

        The member must be present by policy: a card tap, or a PIN the till
        checks, or an OTP the POS's hook checks.

        Raises:
            NoMember, PresenceRequired, NotEnoughPoints, OverPayment.
        """
        self._open()
        member_id = self._member_id()
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            raise NotEnoughPoints(f"points to redeem must be a whole number, not {points!r}")
        assert self.identity is not None
        if self.till.policy.presence_for_redemption and not self.identity.present:
            proven = (pin is not None and self.till.check_pin(member_id, pin)) or (
                otp is not None
                and self.till.otp_check is not None
                and self.till.otp_check(member_id, otp)
            )
            if not proven:
                raise PresenceRequired("redeeming points needs a card tap, a PIN or an OTP")
        # Points may cover the exact total: the last point may be worth more
        # than the cent or two left, so the most is the ceiling of what is due.
        payable = self.total - self._others()
        most = math.ceil(Fraction(payable) / self.till.policy.minor_per_point) if payable > 0 else 0
        if points > most:
            raise OverPayment(f"{points} points pay more than the {payable} due ({most} at most)")
        # Check before letting go of the points this session already holds,
        # so a refused change leaves the earlier redemption in place.
        available = self.till.points_available(member_id) + self._points
        if points > available:
            raise NotEnoughPoints(f"member {member_id} has {available} points, not {points}")
        self.remove_points()
        if points == 0:
            return self.quote()
        self._holds_made += 1
        key = f"s:{self.session}:points:{self._holds_made}"
        value_now = math.floor(points * self.till.policy.minor_per_point)
        self._authorise(
            member_id, self.till.points_account(member_id), "PTS", points, key, value_now
        )
        try:
            self.till.ledger.hold(
                key,
                [
                    Posting.debit(self.till.points_account(member_id), Points(points)),
                    Posting.credit("sys:points:redeemed", Points(points)),
                ],
                timeout=self.till.policy.hold_timeout,
                durable=False,
            )
        except InsufficientFunds as error:
            raise NotEnoughPoints(str(error)) from error
        self._points, self._points_hold = points, key
        return self.quote()

    def _authorise(
        self, member: str, account: str, unit: str, amount: int, hold_id: str, worth: int
    ) -> None:
        """Online hold at the hub, or the offline allowance; remembers the mode."""
        from ._online import authorise

        mode = authorise(self.till, member, account, unit, amount, f"{self.till.till_id}:{hold_id}")
        if mode == "online":
            self._online_holds.append(f"{self.till.till_id}:{hold_id}")
        elif mode == "offline":
            self._mode = "offline"
            self._offline_worth += worth

    def _release_online(self) -> None:
        from .._errors import SyncError

        if self.till.hub is None:
            return
        for hold_id in self._online_holds:
            # Unreachable or refused: the hold expires at the hub on its own.
            with contextlib.suppress(SyncError, CheckoutError):
                self.till.hub.release_hold(hold_id)
        self._online_holds.clear()

    @property
    def mode(self) -> str:
        """ "standalone", "online" or "offline": how stored value was authorised."""
        return self._mode

    def remove_points(self) -> None:
        """Give back the points taken in this session."""
        if self._points_hold:
            self.till._void_hold(self._points_hold)
        self._points, self._points_hold = 0, None

    # -- vouchers ---------------------------------------------------------------------------

    def apply_voucher(self, scanned: str) -> VoucherUse:
        """Check a voucher (QR payload or typed code) for this basket and apply it.

        Raises:
            Any voucher refusal (forged, expired, wrong store...), OverPayment.
        """
        self._open()
        book = self.till.vouchers
        terms, known = book.terms_of(scanned)
        eligible = book.check(terms, self.basket, store=self.till.store)
        if any(code == terms.code for code, _ in self._vouchers):
            return next(use for code, use in self._vouchers if code == terms.code)
        if terms.kind == "percent":
            amount = eligible * terms.amount // 10_000
            remaining = 0
        else:
            balance = book.remaining(terms.code) if book.holds(terms.code) else terms.amount
            if balance <= 0:
                from ..vouchers import VoucherExhausted

                raise VoucherExhausted(f"voucher {terms.code} has nothing left")
            amount = min(eligible, balance)
            remaining = balance - amount if terms.mode == "partial" else 0
        amount = min(amount, max(self.due, 0))
        if amount <= 0:
            raise OverPayment("nothing is left to pay with a voucher")
        if not known:
            book._allow_offline(terms, terms.amount if terms.kind == "value" else amount)
        use = VoucherUse(terms.code, amount, remaining, not known, terms.mode == "partial")
        self._vouchers.append((scanned, use))
        return use

    def remove_voucher(self, code: str) -> None:
        self._vouchers = [(s, use) for s, use in self._vouchers if use.code != code]

    # -- stored value ------------------------------------------------------------------------

    def pay_wallet(self, amount: Money) -> Quote:
        """Pay from the member's ledger wallet (held until complete)."""
        self._open()
        member_id = self._member_id()
        minor = self.till._amount(amount)
        if minor > self.due + self._wallet:
            raise OverPayment(f"{amount} is more than the {self.due + self._wallet} due")
        self.remove_wallet()
        self._holds_made += 1
        key = f"s:{self.session}:wallet:{self._holds_made}"
        self._authorise(
            member_id, self.till.wallet_account(member_id), self.till.currency, minor, key, minor
        )
        try:
            self.till.ledger.hold(
                key,
                [
                    Posting.debit(self.till.wallet_account(member_id), amount),
                    Posting.credit(f"sys:wallet:tender:{self.till.currency}", amount),
                ],
                timeout=self.till.policy.hold_timeout,
                durable=False,
            )
        except InsufficientFunds as error:
            raise CheckoutError(f"the wallet holds less than {amount}") from error
        self._wallet, self._wallet_hold = minor, key
        return self.quote()

    def remove_wallet(self) -> None:
        if self._wallet_hold:
            self.till._void_hold(self._wallet_hold)
        self._wallet, self._wallet_hold = 0, None

    def pay_card(self, card_uid: bytes, amount: Money) -> Quote:
        """Pay `amount` from a stored-value card; the card is debited at `complete`."""
        self._open()
        minor = self.till._amount(amount)
        uid = card_uid.hex().upper()
        self.till._card(uid)
        if minor > self.due + (self._card[1] if self._card else 0):
            raise OverPayment(f"{amount} is more than is due")
        self._card = (uid, minor)
        return self.quote()

    def remove_card(self) -> None:
        self._card = None

    # -- ending ---------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Leave the session: every hold is voided."""
        if self._closed:
            return
        self.remove_points()
        self.remove_wallet()
        self._release_online()
        self._closed = True

    def complete(self, receipt_ref: str, *, card: Transport | None = None) -> Receipt:
        """Post everything and the receipt in one durable commit, idempotently by `receipt_ref`.

        A retry with the same reference and basket returns the same receipt.

        Raises:
            ReceiptConflict: the reference was used for another basket.
            PaymentInterrupted: the card left; tap it and call complete again.
        """
        till = self.till
        from ._till import Till, lines_of

        lines = lines_of(self.basket)
        member_id = self.identity.member.id if self.identity else None
        fingerprint = Till.fingerprint(lines, member_id)
        row = till._conn.execute(
            "SELECT fingerprint, receipt FROM till_receipts WHERE ref = ?", (receipt_ref,)
        ).fetchone()
        if row is not None:
            if row[0] != fingerprint:
                raise ReceiptConflict(f"receipt {receipt_ref} was completed with another basket")
            self._closed = True
            return Receipt.from_json(json.loads(row[1]))
        self._open()
        plan: dict[str, Any] = {
            "op": "sale",
            "ref": receipt_ref,
            "session": self.session,
            "member": member_id,
            "at": self.at.isoformat(),
            "lines": lines,
            "fingerprint": fingerprint,
            "points": self._points,
            "points_value": self.points_value,
            "points_hold": self._points_hold,
            "wallet": self._wallet,
            "wallet_hold": self._wallet_hold,
            "vouchers": [[scanned, use.amount] for scanned, use in self._vouchers],
            "card": list(self._card) if self._card else None,
            "mode": self._mode,
            "offline_worth": self._offline_worth,
        }
        intent_id = None
        if self._card is not None:
            uid, amount = self._card
            if card is None:
                raise SessionClosed("a card payment needs the card's transport at complete")
            intent = CardIntent.new(
                Kind.DEBIT, amount, receipt=receipt_ref, till=till._short_till(), now=till._epoch()
            )
            till._card_step(card, uid, intent, plan)
            intent_id = till._conn.execute(
                "SELECT id FROM till_card_intents WHERE receipt = ? AND uid = ?", (receipt_ref, uid)
            ).fetchone()[0]
        receipt = finish_sale(till, plan, intent_id, self._earn, self.basket)
        self._release_online()
        self._closed = True
        return receipt


def finish_sale(
    till: Till,
    plan: dict[str, Any],
    intent_id: str | None,
    earn: EarnResult | None = None,
    basket: Basket | None = None,
) -> Receipt:
    """Post a sale's plan: holds, vouchers, card value, points earned, receipt row. One commit.

    `earn` is the session's evaluation; recovery after a restart recomputes
    it from the plan (rules are a pure function of the stored basket, member
    and moment, so it is the same result).
    """
    from ._till import basket_of

    ref = plan["ref"]
    currency = till.currency
    member_id = plan["member"]
    at = datetime.fromisoformat(plan["at"])
    if basket is None:
        basket = basket_of(currency, plan["lines"])
    if earn is None:
        from ..rules import Member

        member = till.member_view(till.member(member_id)) if member_id else Member("")
        earn = evaluate(till.rules, basket, member, Context(till.store, at, till.timezone))
    existing = till._conn.execute(
        "SELECT receipt FROM till_receipts WHERE ref = ?", (ref,)
    ).fetchone()
    if existing is not None:
        return Receipt.from_json(json.loads(existing[0]))
    uses: list[VoucherUse] = []
    with till.ledger.atomic():
        if plan["points_hold"]:
            till.ledger.post(f"r:{ref}:points", plan["points_hold"])
        if plan["wallet_hold"]:
            till.ledger.post(f"r:{ref}:wallet", plan["wallet_hold"])
        for scanned, amount in plan["vouchers"]:
            redemption = till.vouchers.redeem(
                scanned, basket, receipt=ref, store=till.store, amount=amount
            )
            uses.append(
                VoucherUse(
                    redemption.code,
                    redemption.amount,
                    redemption.remaining,
                    redemption.offline,
                    redemption.partial,
                )
            )
        card_paid = 0
        card_uid = None
        if plan["card"]:
            card_uid, card_paid = plan["card"]
            till.ledger.transfer(
                f"r:{ref}:card",
                [
                    Posting.debit(till.card_account(card_uid), Money(card_paid, currency)),
                    Posting.credit(f"sys:card:tender:{currency}", Money(card_paid, currency)),
                ],
                memo=json.dumps({"receipt": ref, "card": card_uid}),
            )
        _sell_value(till, ref, basket, member_id)
        points_earned = earn.points if member_id else 0
        if points_earned:
            summary = {
                "total": basket.total,
                "redeemed": plan["points"],
                "vouchers": sum(use.amount for use in uses),
            }
            _credit_points(till, ref, member_id, points_earned, earn, at, summary)
        if intent_id is not None:
            till._conn.execute(
                "UPDATE till_card_intents SET status = 'done' WHERE id = ?", (intent_id,)
            )
        if plan.get("mode") == "offline":
            from ._online import record_offline

            record_offline(till, ref, member_id, plan.get("offline_worth", 0), at)
        voucher_total = sum(use.amount for use in uses)
        total = basket.total
        to_pay = total - plan["points_value"] - voucher_total - plan["wallet"] - card_paid
        receipt = Receipt(
            ref=ref,
            member=member_id,
            currency=currency,
            total=total,
            points_earned=points_earned,
            line_points=tuple(line.points for line in earn.lines)
            if member_id
            else tuple(0 for _ in basket.lines),
            earn_lines=tuple(earn.explain()) if member_id else (),  # for the printer
            spendable_on=earn.spendable_on if member_id and till.rules.pending_days else None,
            points_redeemed=plan["points"],
            points_value=plan["points_value"],
            vouchers=tuple(uses),
            wallet_paid=plan["wallet"],
            card_paid=card_paid,
            card_uid=card_uid,
            mode=plan.get("mode", "standalone"),
            to_pay=max(to_pay, 0),
            points_balance=till.points_available(member_id) if member_id else None,
            wallet_balance=till.wallet_available(member_id) if member_id else None,
            card_balance=(
                till._minor(till.ledger.balance(till.card_account(card_uid)).posted)
                if card_uid
                else None
            ),
        )
        till._conn.execute(
            "INSERT INTO till_receipts (ref, fingerprint, plan, receipt, status, local_date,"
            " created_at) VALUES (?, ?, ?, ?, 'completed', ?, ?)",
            (
                ref,
                plan["fingerprint"],
                json.dumps(plan),
                json.dumps(receipt.to_json()),
                till.local_date(at).isoformat(),
                till.now().isoformat(),
            ),
        )
    return receipt


def _check_value_lines(till: Till, basket: Basket, identity: Identity | None) -> None:
    """Gift-card lines name a voucher code; stored-value lines a known member."""
    from ..vouchers import parse_code
    from ._till import GIFT_CARD, STORED_VALUE

    for line in basket.lines:
        if line.category == GIFT_CARD:
            parse_code(line.reference)
        elif line.category == STORED_VALUE:
            member = line.reference or (identity.member.id if identity else "")
            if not member:
                raise NoMember("a stored-value top-up line needs the member it credits")
            till.member(member)


def _sell_value(till: Till, ref: str, basket: Basket, member_id: str | None) -> None:
    """Lines that sell value: activate the gift card, credit the top-up (in the sale's commit)."""
    from ..vouchers import parse_code
    from ._till import GIFT_CARD, STORED_VALUE

    currency = till.currency
    for index, line in enumerate(basket.lines):
        if line.category == GIFT_CARD:
            code = parse_code(line.reference)
            account = f"voucher:{code}"
            till.ledger.open_account(
                account, currency, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            )
            source = f"sys:vouchers:sold:{currency}"
            till.ledger.open_account(source, currency)
            till.ledger.transfer(
                f"r:{ref}:activate:{index}",
                [
                    Posting.debit(source, Money(line.net, currency)),
                    Posting.credit(account, Money(line.net, currency)),
                ],
                memo=json.dumps({"receipt": ref, "gift_card": code}),
            )
        elif line.category == STORED_VALUE:
            member = line.reference or member_id or ""
            till.ledger.transfer(
                f"r:{ref}:topup:{index}",
                [
                    Posting.debit(f"sys:wallet:float:{currency}", Money(line.net, currency)),
                    Posting.credit(till.wallet_account(member), Money(line.net, currency)),
                ],
                memo=json.dumps({"receipt": ref, "topup": member}),
            )


def _credit_points(
    till: Till,
    ref: str,
    member_id: str,
    points: int,
    earn: EarnResult,
    at: datetime,
    summary: dict[str, int],
) -> None:
    expires_at = None
    if earn.expires_on is not None:
        expires_at = datetime.combine(earn.expires_on, datetime.min.time(), till.zone)
    # What head office's reports need travels with the entry to the hub.
    memo = json.dumps(
        {
            "receipt": ref,
            "earned": points,
            "rules": earn.ruleset_version,
            "member": member_id,
            "store": till.store,
            "day": till.local_date(at).isoformat(),
            "total": summary.get("total", 0),
            "redeemed": summary.get("redeemed", 0),
            "vouchers": summary.get("vouchers", 0),
        }
    )
    if till.rules.pending_days:
        till.ledger.transfer(
            f"r:{ref}:earn",
            [
                Posting.debit("sys:points:issued", Points(points)),
                Posting.credit(till.pending_account(member_id), Points(points)),
            ],
            memo=memo,
        )
        till._conn.execute(
            "INSERT INTO till_pending_points (receipt, member, points, spendable_on, expires_at,"
            " status) VALUES (?, ?, ?, ?, ?, 'pending')",
            (
                ref,
                member_id,
                points,
                earn.spendable_on.isoformat(),
                expires_at.isoformat() if expires_at else None,
            ),
        )
        return
    till.ledger.transfer(
        f"r:{ref}:earn",
        [
            Posting.debit("sys:points:issued", Points(points)),
            Posting.credit(till.points_account(member_id), Points(points), expires_at=expires_at),
        ],
        memo=memo,
    )


def refund_receipt(
    till: Till, ref: str, lines: dict[int, int], refund_ref: str, card: Transport | None
) -> Refund:
    """The body of `Till.refund` (see its docstring for the policy)."""
    from ._till import GIFT_CARD, STORED_VALUE

    done = till._conn.execute(
        "SELECT lines, result FROM till_refunds WHERE ref = ?", (refund_ref,)
    ).fetchone()
    if done is not None:
        if json.loads(done[0]) != {str(k): v for k, v in lines.items()}:
            raise RefundRefused(f"refund {refund_ref} was made for other lines")
        return Refund(**json.loads(done[1]))
    plan, receipt, status, _ = till._receipt_row(ref)
    if status != "completed":
        raise RefundRefused(f"receipt {ref} is {status}")
    sold = plan["lines"]
    already: dict[int, int] = {}
    for (previous,) in till._conn.execute(
        "SELECT lines FROM till_refunds WHERE receipt = ?", (ref,)
    ):
        for index, qty in json.loads(previous).items():
            already[int(index)] = already.get(int(index), 0) + qty
    if not lines:
        raise RefundRefused("a refund needs at least one line")
    value = Fraction(0)
    clawback = Fraction(0)
    # Value the basket sold (a gift card, a top-up) comes back first: what
    # is left of it is taken back, and only that is refunded.
    taken_back: list[tuple[int, str, str, int]] = []  # (index, kind, account, amount)
    shortfall_value = 0
    for index, qty in lines.items():
        if (
            not 0 <= index < len(sold)
            or isinstance(qty, bool)
            or not isinstance(qty, int)
            or qty <= 0
        ):
            raise RefundRefused(f"line {index} x {qty} is not a line of receipt {ref}")
        sku, quantity, unit, category, _, discount, *rest = sold[index]
        reference = rest[0] if rest else ""
        if qty + already.get(index, 0) > quantity:
            raise RefundRefused(
                f"line {index} ({sku}): {quantity - already.get(index, 0)} left to refund,"
                f" not {qty}"
            )
        line_value = Fraction(quantity * unit - discount) * qty / quantity
        clawback += Fraction(receipt.line_points[index]) * qty / quantity
        account = None
        if category == GIFT_CARD:
            account = f"voucher:{reference}"
        elif category == STORED_VALUE:
            account = till.wallet_account(reference or receipt.member or "")
        if account is None:
            value += line_value
            continue
        available = till._minor(till.ledger.balance(account).available)
        take = min(available, math.floor(line_value))
        taken_back.append((index, category, account, take))
        shortfall_value += math.floor(line_value) - take
        value += take
    amount = round(value)
    share = value / receipt.total if receipt.total else Fraction(0)
    points_back = math.floor(receipt.points_redeemed * share)
    currency = till.currency
    member_id = receipt.member
    vouchers_back = forfeited = 0
    wallet_back = card_back = 0
    points_taken = shortfall = 0
    with till.ledger.atomic():
        n = 0

        def key(name: str) -> str:
            nonlocal n
            n += 1
            return f"refund:{refund_ref}:{name}:{n}"

        for index, category, account, take in taken_back:
            source = (
                f"sys:vouchers:sold:{currency}"
                if category == GIFT_CARD
                else f"sys:wallet:float:{currency}"
            )
            if take:
                till.ledger.transfer(
                    key(f"take-back-{index}"),
                    [
                        Posting.debit(account, Money(take, currency)),
                        Posting.credit(source, Money(take, currency)),
                    ],
                    memo=json.dumps({"refund": refund_ref, "receipt": ref}),
                )
            if category == GIFT_CARD:
                code = account.removeprefix("voucher:")
                till._conn.execute(
                    "INSERT INTO till_revoked (code) VALUES (?) ON CONFLICT DO NOTHING", (code,)
                )
                till.vouchers.add_revocations([code])
        if member_id:
            wanted = round(clawback)
            pending_row = till._conn.execute(
                "SELECT status FROM till_pending_points WHERE receipt = ?", (ref,)
            ).fetchone()
            source = (
                till.pending_account(member_id)
                if pending_row is not None and pending_row[0] == "pending"
                else till.points_account(member_id)
            )
            available = till._minor(till.ledger.balance(source).available)
            points_taken = min(wanted, available)
            shortfall = wanted - points_taken
            if points_taken:
                till.ledger.transfer(
                    key("points-earned"),
                    [
                        Posting.debit(source, Points(points_taken)),
                        Posting.credit("sys:points:issued", Points(points_taken)),
                    ],
                    memo=json.dumps({"refund": refund_ref, "receipt": ref}),
                )
            if points_back:
                expires_at = None
                if till.rules.expiry_days:
                    expires_at = till.now() + timedelta(days=till.rules.expiry_days)
                till.ledger.transfer(
                    key("points-redeemed"),
                    [
                        Posting.debit("sys:points:redeemed", Points(points_back)),
                        Posting.credit(
                            till.points_account(member_id),
                            Points(points_back),
                            expires_at=expires_at,
                        ),
                    ],
                    memo=json.dumps({"refund": refund_ref, "receipt": ref}),
                )
        for use in receipt.vouchers:
            part = math.floor(use.amount * share)
            if not part:
                continue
            if use.partial:
                till.ledger.transfer(
                    key("voucher"),
                    [
                        Posting.debit(f"sys:vouchers:tender:{currency}", Money(part, currency)),
                        Posting.credit(f"voucher:{use.code}", Money(part, currency)),
                    ],
                    memo=json.dumps({"refund": refund_ref, "voucher": use.code}),
                )
                vouchers_back += part
            else:
                forfeited += part
        wallet_part = math.floor(receipt.wallet_paid * share)
        card_part = math.floor(receipt.card_paid * share)
        if card_part and receipt.card_uid and card is not None and till.purse is not None:
            intent = CardIntent.new(
                Kind.LIMITED_CREDIT,
                card_part,
                receipt=refund_ref,
                till=till._short_till(),
                now=till._epoch(),
            )
            till.purse.credit(card, bytes.fromhex(receipt.card_uid), intent)
            till.ledger.transfer(
                key("card"),
                [
                    Posting.debit(f"sys:card:tender:{currency}", Money(card_part, currency)),
                    Posting.credit(till.card_account(receipt.card_uid), Money(card_part, currency)),
                ],
                memo=json.dumps({"refund": refund_ref, "card": receipt.card_uid}),
            )
            card_back = card_part
        elif card_part and member_id:
            # The card is not here: its share goes to the member's wallet.
            _wallet_refund(
                till,
                key("card-to-wallet"),
                f"sys:card:tender:{currency}",
                member_id,
                card_part,
                refund_ref,
            )
            wallet_back += card_part
        if wallet_part and member_id:
            _wallet_refund(
                till,
                key("wallet"),
                f"sys:wallet:tender:{currency}",
                member_id,
                wallet_part,
                refund_ref,
            )
            wallet_back += wallet_part
        points_money = math.floor(points_back * till.policy.minor_per_point)
        cash = amount - points_money - vouchers_back - forfeited - wallet_back - card_back
        result = Refund(
            ref=refund_ref,
            receipt=ref,
            amount=amount,
            points_clawed_back=points_taken,
            points_shortfall=shortfall,
            points_reinstated=points_back,
            vouchers_reinstated=vouchers_back,
            voucher_forfeited=forfeited,
            wallet_credited=wallet_back,
            card_credited=card_back,
            cash_due=max(cash, 0),
            value_taken_back=sum(t[3] for t in taken_back),
            value_not_refunded=shortfall_value,
        )
        till._conn.execute(
            "INSERT INTO till_refunds (ref, receipt, lines, result) VALUES (?, ?, ?, ?)",
            (
                refund_ref,
                ref,
                json.dumps({str(k): v for k, v in lines.items()}),
                json.dumps(attrs.asdict(result)),
            ),
        )
    return result


def _wallet_refund(
    till: Till, key: str, source: str, member_id: str, amount: int, refund_ref: str
) -> None:
    if amount <= 0:
        return
    currency = till.currency
    till.ledger.transfer(
        key,
        [
            Posting.debit(source, Money(amount, currency)),
            Posting.credit(till.wallet_account(member_id), Money(amount, currency)),
        ],
        memo=json.dumps({"refund": refund_ref}),
    )
