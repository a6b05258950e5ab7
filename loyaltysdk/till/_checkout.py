# SPDX-License-Identifier: Apache-2.0
"""A checkout session: quote, redeem, apply vouchers, pay with stored value, complete.

Points and wallet value taken during the session are kept by the till in
memory (`Till._reserve`: every other session and balance counts them as
taken); vouchers and card value are checked promises. `complete` posts all
of it and the receipt in one durable commit (`_sale.finish_sale`). A card
payment goes through the card intent journal (`_cards`): the sale's plan is
stored with the intent, and what the session took becomes the intent's
durable holds, before the card is touched; so a sale whose card committed
but whose ledger post did not (a crash, a card pulled away) is finished
from the plan at the card's next tap or at the retry of `complete`: never
lost, never paid twice.

A receipt number the till has completed answers with its receipt before
any balance check: a POS that re-runs a whole session after a crash (pass
the number to `Till.checkout` up front) gets the stored receipt back, and
the re-run takes no holds.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from .._errors import CardError, HubError, InvalidAmount, SyncError, WrongType
from .._money import Money
from ..cards.purse import Kind
from ..cards.transport import Transport
from ..ledger import InsufficientFunds
from ..ledger._boundary import storage_boundary
from ..rules import Basket, Context, EarnResult, Member, evaluate
from ..vouchers import VoucherExhausted
from ._errors import (
    CheckoutError,
    EmptyBasket,
    InvalidReference,
    NoMember,
    NotEnoughPoints,
    OverPayment,
    PresenceRequired,
    SessionClosed,
    WalletShort,
    WrongCurrency,
    reference,
)
from ._fingerprint import Fingerprint
from ._online import OnlineRefused, authorise
from ._receipt import Quote, Receipt, VoucherUse
from ._sale import check_value_lines, finish_sale, lines_of, post_sale, tender_postings

if TYPE_CHECKING:
    from ._till import Identity, Till

#: Keys of a checkout session's holds start so; a card intent's start "i:".
SESSION_HOLD = "s:"


@storage_boundary
class Checkout:
    """One basket at one till. Create it with `Till.checkout(basket, identity)`."""

    def __init__(
        self,
        till: Till,
        basket: Basket,
        identity: Identity | None,
        receipt_ref: str | None = None,
    ) -> None:
        if not isinstance(basket, Basket):
            raise WrongType(
                f"a checkout takes a Basket(currency, [Line(...), ...]), not {basket!r:.60}"
            )
        if not basket.lines:
            raise EmptyBasket("a checkout needs at least one line")
        if basket.currency != till.currency:
            raise WrongCurrency(
                f"the till works in {till.currency}, the basket is in {basket.currency}"
            )
        self.till = till
        self.basket = basket
        self.identity = identity
        self.receipt_ref = None if receipt_ref is None else reference(receipt_ref, "receipt number")
        self._lines = lines_of(basket)
        self._fingerprint = Fingerprint(self._lines, self._member_id_or_none())
        #: The stored receipt when this session re-runs one the till completed.
        self._replayed = self._stored(receipt_ref) if receipt_ref is not None else None
        self._value_lines = check_value_lines(till, basket, identity)
        self.session = os.urandom(8).hex()
        self.at = till.now()
        self._points = 0
        self._points_hold: str | None = None
        self._wallet = 0
        self._wallet_hold: str | None = None
        self._vouchers: list[tuple[str, VoucherUse]] = []
        self._card: tuple[str, int] | None = None
        self._closed = False
        # Online only when the hub answered for this sale; see `mode`.
        self._mode: str = "standalone"
        if till.hub is not None:
            self._mode = "offline" if identity is not None and not identity.online else "online"
        self._hub: dict[str, str] = {}  # tender -> the online hold at the hub
        self._total = basket.total
        # What one point pays, as a ratio of ints: points and money stay exact.
        per_point = till.policy.minor_per_point
        self._per_point = (per_point.numerator, per_point.denominator)
        #: account -> (the connection's change count when read, available): a
        #: session reads a balance again only after this till wrote something.
        self._available: dict[str, tuple[int, int]] = {}
        # The member as identify() read them a moment ago; the sale's commit
        # reads them again and re-evaluates if anything changed since.
        self._seen = (
            till.member_view(identity.member, self.at) if identity is not None else Member("")
        )
        self._earn = evaluate(
            till.rules, basket, self._seen, Context(till.store, self.at, till.timezone, till.region)
        )
        self._earn_lines = tuple(self._earn.explain())
        self._holds_made = 0
        self._handed = False  # the holds went to a card intent

    def _member_id_or_none(self) -> str | None:
        return self.identity.member.id if self.identity is not None else None

    def _stored(self, receipt_ref: str) -> Receipt | None:
        """The completed receipt under this number, if this basket's; another basket's refused."""
        return self.till._stored_receipt(receipt_ref, fingerprint=self._fingerprint)

    # -- views ---------------------------------------------------------------------------

    @property
    def total(self) -> Money:
        """The basket's total."""
        return self.till.money(self._total)

    @property
    def points_value(self) -> Money:
        """What the redeemed points pay: their value, capped at what is left to pay."""
        return self.till.money(self._points_value())

    @property
    def due(self) -> Money:
        """What is left for the POS to collect."""
        return self.till.money(self._due())

    def _others(self) -> int:
        vouchers = sum(use.amount.minor for _, use in self._vouchers)
        card = self._card[1] if self._card else 0
        return vouchers + self._wallet + card

    def _points_value(self, others: int | None = None) -> int:
        """What the points pay: their value, capped at what the other tenders leave
        (`others`, when the caller has it already)."""
        num, den = self._per_point
        value = self._points * num // den
        return max(0, min(value, self._total - (self._others() if others is None else others)))

    def _points_for(self, minor: int) -> int:
        """The fewest points that pay `minor` (the last point may be worth more than is left)."""
        num, den = self._per_point
        return -(-minor * den // num) if minor > 0 else 0

    def _ledger_available(self, account: str) -> int:
        """The ledger's available balance of `account`, read once until the till writes."""
        changes = self.till._conn.total_changes
        cached = self._available.get(account)
        if cached is not None and cached[0] == changes:
            return cached[1]
        # A quote shows the member's points and wallet: both come in one read.
        accounts = [account]
        if self.identity is not None:
            member_id = self.identity.member.id
            accounts += (self.till.points_account(member_id), self.till.wallet_account(member_id))
        for account_id, available in self.till.ledger.available_of(accounts).items():
            self._available[account_id] = (changes, available)
        return self._available[account][1]

    def _points_left(self, member_id: str) -> int:
        """Points the member can spend now, other sessions' and this one's taken off."""
        account = self.till.points_account(member_id)
        return self._ledger_available(account) - self.till._reserved(account)

    def _wallet_left(self, member_id: str) -> int:
        account = self.till.wallet_account(member_id)
        return self._ledger_available(account) - self.till._reserved(account)

    def _due(self) -> int:
        return self._total - self._points_value() - self._others()

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
            available = self._points_left(member_id) + self._points
            wallet = self._wallet_left(member_id) + self._wallet
        # Each figure once: what the other tenders pay, what the points pay, what is due.
        others = self._others()
        points_value = self._points_value(others)
        due = self._total - points_value - others
        max_redeemable = min(available, self._points_for(due + points_value))
        money = self.till.money
        return Quote(
            self.till.currency,
            money(self._total),
            self._earn.points,
            self._earn_lines,
            available,
            self._points,
            money(points_value),
            max_redeemable,
            tuple(use for _, use in self._vouchers),
            money(wallet),
            money(self._wallet),
            money(self._card[1] if self._card else 0),
            money(due),
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
        if isinstance(points, bool) or not isinstance(points, int):
            raise WrongType(f"points to redeem are a whole number (int), not {points!r:.40}")
        if points < 0:
            raise InvalidAmount(f"points to redeem cannot be negative: {points}")
        if self._replayed is not None:
            return self.quote()  # a re-run of a completed receipt takes nothing
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
        payable = self._total - self._others()
        most = self._points_for(payable)
        if points > most:
            raise OverPayment(
                f"{points} points pay more than the {self.till.money(max(payable, 0))} due"
                f" ({most} at most)"
            )
        # Check before letting go of the points this session already holds,
        # so a refused change leaves the earlier redemption in place.
        available = self._points_left(member_id) + self._points
        if points > available:
            raise NotEnoughPoints(f"member {member_id} has {available} points, not {points}")
        self.remove_points()
        if points == 0:
            return self.quote()
        self._holds_made += 1
        key = f"{SESSION_HOLD}{self.session}:points:{self._holds_made}"
        num, den = self._per_point
        value_now = points * num // den
        account = self.till.points_account(member_id)
        self._authorise("points", account, "PTS", points, key, value_now)
        # Taken in memory, not written: the sale posts it in its one commit.
        self.till._reserve(self.session, "points", account, points)
        self._points = points
        return self.quote()

    def _authorise(
        self, tender: str, account: str, unit: str, amount: int, key: str, worth: int
    ) -> None:
        """Hold the whole amount at the hub, or count it against the offline allowance.

        The hold's id travels with the record that posts it, which settles it
        at the hub, exactly once; nothing is released after `complete`.
        """
        till = self.till
        self._let_go(tender)
        member = self._member_id_or_none()
        hold_id = f"{till.till_id}:{key}"
        mode = authorise(till, self.session, member, account, unit, amount, hold_id, worth)
        if mode == "online":
            self._hub[tender] = hold_id
        elif mode == "offline":
            self._mode = "offline"

    def _let_go(self, tender: str) -> None:
        """Release a tender's online hold (best effort: it also times out at the hub)."""
        hold_id = self._hub.pop(tender, None)
        if hold_id is not None and self.till.hub is not None:
            with contextlib.suppress(SyncError, CheckoutError, HubError):
                self.till.hub.release_hold(hold_id)

    @property
    def mode(self) -> str:
        """ "standalone", "online" or "offline": how stored value was authorised."""
        return self._mode

    def remove_points(self) -> None:
        """Give back the points taken in this session."""
        if self._points_hold:  # a card intent's, after an abandoned card payment
            self.till._void_hold(self._points_hold)
        self.till._unreserve(self.session, "points")
        self._let_go("points")
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
        if self._replayed is not None:
            done = [use for use in self._replayed.vouchers if use.code == terms.code]
            if done:
                return done[0]
        eligible = book.check(terms, self.basket, store=self.till.store)
        if any(code == terms.code for code, _ in self._vouchers):
            return next(use for code, use in self._vouchers if code == terms.code)
        chain = self.till.hub is not None and terms.kind == "value"
        if chain and not book.holds(terms.code):
            # Never seen here: its liability is chain-wide, so ask what is left.
            book.open_account(terms)
            known = (
                self.till._chain.refresh(accounts=[f"voucher:{terms.code}"]) is not None or known
            )
        use = self._voucher_use(terms, eligible, known)
        if chain:
            self._holds_made += 1
            key = f"{SESSION_HOLD}{self.session}:voucher:{self._holds_made}"
            account = f"voucher:{terms.code}"
            try:
                self._authorise(
                    account, account, terms.currency, use.amount.minor, key, use.amount.minor
                )
            except OnlineRefused:
                # Spent elsewhere since this till last heard: take what the hub says is left.
                if self.till._chain.refresh(accounts=[account]) is None:
                    raise
                use = self._voucher_use(terms, eligible, True)
                self._authorise(
                    account, account, terms.currency, use.amount.minor, key, use.amount.minor
                )
        self._vouchers.append((scanned, use))
        return use

    def _voucher_use(self, terms: Any, eligible: int, known: bool) -> VoucherUse:
        """What the voucher pays on this basket, from what this till knows is left on it."""
        book = self.till.vouchers
        if terms.kind == "percent":
            amount = eligible * terms.amount // 10_000
            remaining = 0
        else:
            balance = book.remaining(terms.code) if book.holds(terms.code) else terms.amount
            if balance <= 0:
                raise VoucherExhausted(f"voucher {terms.code} has nothing left")
            amount = min(eligible, balance)
            remaining = balance - amount if terms.mode == "partial" else 0
        amount = min(amount, max(self._due(), 0))
        if amount <= 0:
            raise OverPayment("nothing is left to pay with a voucher")
        if not known:
            book.allow_offline(terms, terms.amount if terms.kind == "value" else amount)
        money = self.till.money
        return VoucherUse(
            terms.code, money(amount), money(remaining), not known, terms.mode == "partial"
        )

    def remove_voucher(self, code: str) -> None:
        self._vouchers = [(s, use) for s, use in self._vouchers if use.code != code]
        self._let_go(f"voucher:{code}")

    # -- stored value ------------------------------------------------------------------------

    def pay_wallet(self, amount: Money) -> Quote:
        """Pay from the member's ledger wallet (held until complete)."""
        self._open()
        member_id = self._member_id()
        minor = self.till._amount(amount)
        if self._replayed is not None:
            return self.quote()
        if minor > self._due() + self._wallet:
            due = self.till.money(self._due() + self._wallet)
            raise OverPayment(f"{amount} is more than the {due} due")
        self.remove_wallet()
        self._holds_made += 1
        key = f"{SESSION_HOLD}{self.session}:wallet:{self._holds_made}"
        account = self.till.wallet_account(member_id)
        available = self._wallet_left(member_id)
        if minor > available:
            money = self.till.money(max(0, available))
            raise WalletShort(f"the wallet holds {money}, less than {amount}", available=money)
        self._authorise("wallet", account, self.till.currency, minor, key, minor)
        self.till._reserve(self.session, "wallet", account, minor)
        self._wallet = minor
        return self.quote()

    def remove_wallet(self) -> None:
        if self._wallet_hold:
            self.till._void_hold(self._wallet_hold)
        self.till._unreserve(self.session, "wallet")
        self._let_go("wallet")
        self._wallet, self._wallet_hold = 0, None

    def pay_card(self, card_uid: bytes, amount: Money) -> Quote:
        """Pay `amount` from a stored-value card; the card is debited at `complete`."""
        self._open()
        minor = self.till._amount(amount)
        uid = card_uid.hex().upper()
        self.till._card(uid)
        if self._replayed is not None:
            return self.quote()
        if minor > self._due() + (self._card[1] if self._card else 0):
            raise OverPayment(f"{amount} is more than is due")
        self._card = (uid, minor)
        return self.quote()

    def remove_card(self) -> None:
        self._card = None

    # -- ending ---------------------------------------------------------------------------------

    def __enter__(self) -> Checkout:
        return self

    def __exit__(self, *_: object) -> None:
        """A session left without `complete()` (an exception, a return) is cancelled: its
        holds are let go at once instead of waiting for their expiry."""
        self.cancel()

    def cancel(self) -> None:
        """Leave the session: every hold is voided, here and at the hub."""
        if self._closed:
            return
        self.remove_points()
        self.remove_wallet()
        for tender in list(self._hub):
            self._let_go(tender)
        self.till._offline.close(self.session)
        self._closed = True

    def complete(self, receipt_ref: str | None = None, *, card: Transport | None = None) -> Receipt:
        """Post everything and the receipt in one durable commit, idempotently by `receipt_ref`.

        A receipt number already completed with this basket and member
        answers with its stored receipt, before any balance check, and this
        session's holds are let go. With a card payment, `card` is the
        transport of the card's reader; after `PaymentInterrupted`, tap the
        card and call `complete` again: the card's log decides.

        Args:
            receipt_ref: the POS's receipt number (default: the one given to `Till.checkout`).

        Raises:
            ReceiptConflict: the reference was used for another basket.
            PaymentInterrupted: the card left; tap it and call complete again.
        """
        till = self.till
        receipt_ref = receipt_ref if receipt_ref is not None else self.receipt_ref
        if receipt_ref is None:
            raise InvalidReference("complete needs the POS's receipt number")
        receipt_ref = reference(receipt_ref, "receipt number")
        if self._closed or self._card is not None:
            stored = self._stored(receipt_ref)
            if stored is not None:
                self.cancel()
                return stored
        self._open()
        if self._card is None:
            # The sale's commit answers a receipt number completed before.
            receipt, posted = post_sale(
                till,
                self._plan(receipt_ref),
                None,
                self._earn,
                self._seen,
                session=(self.basket, self._earn_lines, self._value_lines),
                fingerprint=self._fingerprint,
            )
            if not posted:
                self.cancel()
                return receipt
        else:
            if card is None:
                raise SessionClosed("a card payment needs the card's transport at complete")
            receipt = self._complete_with_card(receipt_ref, card)
        self.till._unreserve(self.session)
        self.till._offline.close(self.session)
        self._closed = True
        return receipt

    def _plan(self, receipt_ref: str) -> dict[str, Any]:
        return {
            "op": "sale",
            "ref": receipt_ref,
            "session": self.session,
            "member": self._member_id_or_none(),
            "at": self.at.isoformat(),
            "lines": self._lines,
            "fingerprint": self._fingerprint.value,
            "points": self._points,
            "points_value": self._points_value(),
            "points_hold": self._points_hold,
            "wallet": self._wallet,
            "wallet_hold": self._wallet_hold,
            "vouchers": [[scanned, use.amount.minor] for scanned, use in self._vouchers],
            "card": list(self._card) if self._card else None,
            "mode": self._mode,
            "offline_worth": self.till._offline.session_worth(self.session),
            "hub_holds": dict(self._hub),
        }

    def _complete_with_card(self, receipt_ref: str, card: Transport) -> Receipt:
        till = self.till
        assert self._card is not None
        uid, amount = self._card
        journal = till._journal
        pending = journal.find("sale", receipt_ref, uid)
        if pending is None and self._handed:
            # The card's tap abandoned this payment and let go of its holds.
            self._points = self._wallet = 0
            self._handed = False
            raise SessionClosed(
                "the card payment was abandoned at the card's tap; redeem and pay again"
            )
        if pending is None:
            pending = journal.begin(
                "sale",
                receipt_ref,
                uid,
                Kind.DEBIT,
                amount,
                self._plan(receipt_ref),
                reserve=self._hand_holds_to_intent,
            )
            # The intent owns the holds now: cancelling the session leaves
            # them to the card's next tap, which alone knows what happened.
            self._points_hold = self._wallet_hold = None
            self._handed = True
            try:
                record = journal.touch(card, pending)
            except CardError:
                if journal.get(pending.id).status == "abandoned":
                    # The card refused and took nothing; its holds are gone with the intent.
                    self._points = self._wallet = 0
                    self._handed = False
                raise
        else:
            record = journal.settle(card, pending)
        return finish_sale(
            till, pending.plan, pending.id, self._earn, self._seen, chip=record.balance_after
        )

    def _hand_holds_to_intent(self, plan: dict[str, Any], prefix: str) -> None:
        """Replace the session's short holds by the intent's, in the intent's commit.

        A session's holds time out in minutes; a card intent may wait days
        for the card's next tap, so what it will post is held as long.
        """
        till = self.till
        for kind in ("points", "wallet"):
            if not plan[kind] or plan[f"{kind}_hold"]:
                continue
            try:
                till.ledger.hold(
                    f"{prefix}{kind}",
                    tender_postings(till, kind, plan["member"], plan[kind]),
                    timeout=till.policy.card_intent_timeout,
                )
            except InsufficientFunds as error:
                raise (NotEnoughPoints if kind == "points" else CheckoutError)(
                    f"the {kind} taken for this sale are no longer there"
                ) from error
            plan[f"{kind}_hold"] = f"{prefix}{kind}"
        till._unreserve(self.session)  # the intent's holds keep it now
