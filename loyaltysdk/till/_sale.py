# SPDX-License-Identifier: Apache-2.0
"""Posting a sale: the plan a checkout made, in one commit with its receipt row.

`finish_sale` runs from a live checkout, or from the plan stored with a card
intent when the card's next tap shows the debit happened after the till
lost the session (a crash, a card pulled away). Rules are a pure function
of the stored basket, the member and the moment, so the recovered sale
earns what the live one would have; the member's state (tier, points this
cap period, once-per rules) is read inside the commit, and the session's
evaluation is reused only when that state is what it saw.
"""

from __future__ import annotations

from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from .._json import compact
from .._money import Money, Points
from ..ledger import AccountFlags, HoldExpired, HoldResolved, InsufficientFunds, Posting
from ..rules import Basket, Context, EarnResult, Line, Member, evaluate
from ..vouchers import parse_code
from ._capture import sale_head
from ._errors import NoMember, NotEnoughPoints, WalletShort
from ._online import record_offline
from ._receipt import Receipt, VoucherUse
from ._refunds import GIFT_CARD, STORED_VALUE

if TYPE_CHECKING:
    from ._fingerprint import Fingerprint
    from ._till import Identity, Till


#: A LineResult's points (results are tuples, see rules/_model).
_LINE_POINTS: Final = itemgetter(3)


def lines_of(basket: Basket) -> list[list[Any]]:
    """The stored form of the lines: sku, quantity, unit price, category, brand, discount,
    reference. A `Line` is a tuple in that order (its currency last, not stored): sliced,
    not read field by field (seven property calls a line, every checkout)."""
    return [list(line[:7]) for line in basket.lines]


def basket_of(currency: str, lines: list[list[Any]]) -> Basket:
    # Plans stored before lines had a reference have six fields.
    return Basket(
        currency,
        [
            Line(s, q, u, category=c, brand=b, discount=d, reference=(rest[0] if rest else ""))
            for s, q, u, c, b, d, *rest in lines
        ],
    )


def sells_value(basket: Basket) -> bool:
    """Whether a line sells value itself: a gift card or a stored-value top-up."""
    categories = {line[3] for line in basket.lines}  # by index, see `lines_of`
    return GIFT_CARD in categories or STORED_VALUE in categories


def goods_spend(basket: Basket, value_lines: bool = True) -> int:
    """What counts towards tiers: the goods, not value sold (gift cards, top-ups).

    `value_lines` False says the basket has none (`sells_value`): the total.
    """
    if not value_lines:
        return basket.total
    value = (GIFT_CARD, STORED_VALUE)
    # By index (see `lines_of`): quantity 1, unit price 2, category 3, discount 5.
    return sum(ln[1] * ln[2] - ln[5] for ln in basket.lines if ln[3] not in value)


def check_value_lines(till: Till, basket: Basket, identity: Identity | None) -> bool:
    """Gift-card lines name a voucher code; stored-value lines a known member. Returns
    whether there are any (`sells_value`)."""
    if not sells_value(basket):
        return False  # the usual basket
    for line in basket.lines:
        if line.category == GIFT_CARD:
            parse_code(line.reference)
        elif line.category == STORED_VALUE:
            member = line.reference or (identity.member.id if identity else "")
            if not member:
                raise NoMember("a stored-value top-up line needs the member it credits")
            till.member(member)
    return True


def finish_sale(
    till: Till,
    plan: dict[str, Any],
    intent_id: str | None,
    earn: EarnResult | None = None,
    seen: Member | None = None,
    *,
    chip: int | None = None,
) -> Receipt:
    """Post a sale's plan (see `post_sale`); the stored receipt if it was posted before."""
    return post_sale(till, plan, intent_id, earn, seen, chip=chip)[0]


def post_sale(
    till: Till,
    plan: dict[str, Any],
    intent_id: str | None,
    earn: EarnResult | None = None,
    seen: Member | None = None,
    *,
    chip: int | None = None,
    session: tuple[Basket, tuple[str, ...], bool] | None = None,
    fingerprint: Fingerprint | None = None,
) -> tuple[Receipt, bool]:
    """Post a sale's plan: holds, vouchers, card value, points earned, receipt row. One commit.

    Returns the receipt, and False when the receipt number was completed
    before (its stored receipt; nothing posted).

    Args:
        earn: the session's evaluation, valid while the member is as `seen`.
        chip: the card's balance after its debit, from the card's log: the
            card holds its value, so its ledger shadow is brought to the chip
            before the debit is booked, and a card loaded elsewhere pays here.
        session: the live session's basket, `earn`'s explanation and whether
            the basket sells value (`sells_value`), so a completion does not
            rebuild what a replay from the plan must.
        fingerprint: the session's basket and member: a receipt number
            completed with another is refused (`ReceiptConflict`).
    """
    ref = plan["ref"]
    currency = till.currency
    member_id = plan["member"]
    at = datetime.fromisoformat(plan["at"])
    basket = session[0] if session else basket_of(currency, plan["lines"])
    explained = session[1] if session else None
    value_lines = session[2] if session else sells_value(basket)
    with till.ledger.atomic():
        existing = till._stored_receipt(ref, fingerprint=fingerprint)
        if existing is not None:
            return existing, False
        member, review = Member(""), None
        if member_id:
            record, review = till._directory.for_sale(member_id)
            member = till.member_view(record, at)
        if earn is None or member != seen:
            explained = None
            earn = evaluate(
                till.rules, basket, member, Context(till.store, at, till.timezone, till.region)
            )
        hub_holds: dict[str, str] = plan.get("hub_holds", {})
        taken: dict[str, bool] = {}
        entries = _Entries(till)
        for kind in ("points", "wallet"):
            hub_hold = hub_holds.get(kind)
            if plan[f"{kind}_hold"]:  # a card intent's hold (or a file from before)
                entries.flush()
                taken[kind] = _post_hold(till, f"r:{ref}:{kind}", plan[f"{kind}_hold"], hub_hold)
            elif plan[kind]:
                entries.spend(f"r:{ref}:{kind}", kind, member_id, plan[kind], hub_hold)
        points = plan["points"] if taken.get("points", True) else 0
        points_value = plan["points_value"] if points else 0
        wallet_paid = plan["wallet"] if taken.get("wallet", True) else 0
        uses: list[VoucherUse] = []
        campaigns: dict[str, str] = {}
        if plan["vouchers"]:
            entries.flush()  # a redemption reads and writes the ledger itself
        for scanned, amount in plan["vouchers"]:
            terms, _ = till.vouchers.terms_of(scanned)
            campaigns[terms.code] = terms.campaign
            held = hub_holds.get(f"voucher:{terms.code}")
            redemption = till.vouchers.redeem(
                scanned,
                basket,
                receipt=ref,
                store=till.store,
                amount=amount,
                hub_holds=(held,) if held else (),
            )
            uses.append(
                VoucherUse(
                    redemption.code,
                    Money(redemption.amount, currency),
                    Money(redemption.remaining, currency),
                    redemption.offline,
                    redemption.partial,
                )
            )
        card_paid, card_uid = 0, None
        if plan["card"]:
            card_uid, card_paid = plan["card"]
            if chip is not None:
                entries.flush()
                till._mirror_card(card_uid, chip + card_paid, f"r:{ref}")
            entries.add(
                f"r:{ref}:card",
                [
                    Posting.debit(till.card_account(card_uid), Money(card_paid, currency)),
                    Posting.credit(f"sys:card:tender:{currency}", Money(card_paid, currency)),
                ],
                compact({"receipt": ref, "card": card_uid}),
            )
        total = basket.total
        if value_lines:
            _sell_value(till, ref, basket, member_id, entries)
        points_earned = earn.points if member_id else 0
        voucher_total = sum(use.amount.minor for use in uses)
        day = till.local_date(at)
        day_text = day.isoformat()  # an ISO text costs thousands of instructions: made once
        if points_earned:
            summary = {"total": total, "redeemed": points, "vouchers": voucher_total}
            _credit_points(till, ref, member_id, points_earned, earn, day_text, summary, entries)
        entries.flush()
        events: list[tuple[str, dict[str, Any]]] = []
        if member_id:
            till._directory.record_sale(
                ref, member_id, day, goods_spend(basket, value_lines), points_earned, earn, events
            )
        if intent_id is not None:
            till._journal.mark(intent_id, "done")
        if plan.get("mode") == "offline":
            record_offline(till, ref, member_id, plan.get("offline_worth", 0), at)
        to_pay = total - points_value - voucher_total - wallet_paid - card_paid
        money = till.money
        points_balance, wallet_balance, card_balance = _balances_after(till, member_id, card_uid)
        receipt = Receipt(
            ref=ref,
            member=member_id,
            currency=currency,
            total=money(total),
            points_earned=points_earned,
            line_points=tuple(map(_LINE_POINTS, earn.lines))
            if member_id
            else tuple(0 for _ in basket.lines),
            earn_lines=(explained or tuple(earn.explain())) if member_id else (),  # the printer's
            spendable_on=earn.spendable_on if member_id and till.rules.pending_days else None,
            points_redeemed=points,
            points_value=money(points_value),
            vouchers=tuple(uses),
            wallet_paid=money(wallet_paid),
            card_paid=money(card_paid),
            card_uid=card_uid,
            mode=plan.get("mode", "standalone"),
            to_pay=money(max(to_pay, 0)),
            points_balance=points_balance,
            wallet_balance=None if wallet_balance is None else money(wallet_balance),
            card_balance=None if card_balance is None else money(card_balance),
        )
        now_text = till.now().isoformat()  # the receipt row's and the events' time
        till._conn.execute(
            "INSERT INTO till_receipts (ref, fingerprint, plan, receipt, status, local_date,"
            " created_at) VALUES (?, ?, ?, ?, 'completed', ?, ?)",
            (
                ref,
                plan["fingerprint"],
                compact(plan),
                compact(receipt.to_json()),
                day_text,
                now_text,
            ),
        )
        # The record's head: the rest is this commit's receipt row (see _sale_record).
        events.append(("receipt", sale_head(till, plan, ref, campaigns)))
        till._events(events, at=now_text)
        if member_id:
            till._directory.upgrade(member_id, day, (member.tier, review))
    return receipt, True


class _Entries:
    """The sale's ledger transfers, written together (one statement per table) where
    nothing between them reads or writes the ledger otherwise; `flush` before that."""

    def __init__(self, till: Till) -> None:
        self.till = till
        self.waiting: list[tuple[str, list[Posting], str | None]] = []
        #: key -> (tender, member, amount): what a refused spend means to the POS.
        self.spends: dict[str, tuple[str, str, int]] = {}

    def add(self, key: str, postings: list[Posting], memo: str | None = None) -> None:
        self.waiting.append((key, postings, memo))

    def spend(self, key: str, kind: str, member: str, amount: int, hub_hold: str | None) -> None:
        """What the session took from points or the wallet (see `_spend_refused`)."""
        memo = compact({"hub_holds": [hub_hold]}) if hub_hold else None
        self.add(key, tender_postings(self.till, kind, member, amount), memo)
        self.spends[key] = (kind, member, amount)

    def flush(self) -> None:
        if not self.waiting:
            return
        waiting, self.waiting = self.waiting, []
        try:
            self.till.ledger.transfer_many(waiting)
        except InsufficientFunds as error:
            spent = self.spends.get(error.key or "")
            if spent is None:
                raise
            _spend_refused(self.till, *spent, error)


def _balances_after(
    till: Till, member_id: str | None, card_uid: str | None
) -> tuple[int | None, int | None, int | None]:
    """What the receipt shows: the member's points and wallet available, the card's
    balance (posted), in one read."""
    if card_uid is None:  # the usual sale: two integers, no Balance objects
        if not member_id:
            return None, None, None
        points_account, wallet_account = (
            till.points_account(member_id),
            till.wallet_account(member_id),
        )
        available = till.ledger.available_of((points_account, wallet_account))
        return (
            available[points_account] - till._reserved(points_account),
            available[wallet_account] - till._reserved(wallet_account),
            None,
        )
    accounts: list[str] = []
    if member_id:
        accounts += (till.points_account(member_id), till.wallet_account(member_id))
    accounts.append(till.card_account(card_uid))
    found = {b.account: b for b in till.ledger.balances_of(accounts)}
    points = wallet = None
    if member_id:
        points, wallet = till._spendable(found[accounts[0]]), till._spendable(found[accounts[1]])
    return points, wallet, till._minor(found[accounts[-1]].posted)


def tender_postings(till: Till, kind: str, member: str, amount: int) -> list[Posting]:
    """What paying `amount` with points or the wallet moves."""
    if kind == "points":
        points = Points(amount)
        account = till.points_account(member)
        return [Posting.debit(account, points), Posting.credit("sys:points:redeemed", points)]
    money = till.money(amount)
    return [
        Posting.debit(till.wallet_account(member), money),
        Posting.credit(f"sys:wallet:tender:{till.currency}", money),
    ]


def _spend_refused(
    till: Till, kind: str, member: str, amount: int, error: InsufficientFunds
) -> None:
    """A session's points or wallet value are no longer there, said as the POS needs it.

    The session took them in memory; the ledger's own check in the sale's
    commit is the last word (another process on this file may have spent
    them since), and the refusal rolls the whole sale back, so the POS can
    pay otherwise.
    """
    if kind == "points":
        raise NotEnoughPoints(f"the {amount} points are no longer there") from error
    available = till.money(max(0, till._wallet_minor(member)))
    raise WalletShort(
        f"the wallet holds {available}, less than {till.money(amount)}", available=available
    ) from error


def _post_hold(till: Till, key: str, hold: str, hub_hold: str | None) -> bool:
    """Post a session or intent hold; False if what it reserved can no longer be taken.

    The record carries the hub's hold it settles. A hold that lapsed (a card
    away for longer than the intent timeout) is taken again from what the
    account holds now; if that is too little, the tender is dropped and its
    amount is left to pay.
    """
    memo = compact({"hub_holds": [hub_hold]}) if hub_hold else None
    try:
        till.ledger.post(key, hold, memo=memo)
        return True
    except (HoldExpired, HoldResolved):
        pass
    found = till.ledger.transaction(hold)
    assert found is not None
    try:
        till.ledger.transfer(f"{key}:again", found.postings, memo=memo)
    except InsufficientFunds:
        return False
    return True


def _sell_value(
    till: Till, ref: str, basket: Basket, member_id: str | None, entries: _Entries
) -> None:
    """Lines that sell value: activate the gift card, credit the top-up (in the sale's commit)."""
    currency = till.currency
    for index, line in enumerate(basket.lines):
        if line.category == GIFT_CARD:
            code = parse_code(line.reference)
            account = f"voucher:{code}"
            entries.flush()  # the accounts exist before a transfer names them
            till.ledger.open_account(
                account, currency, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            )
            source = f"sys:vouchers:sold:{currency}"
            till.ledger.open_account(source, currency)
            entries.add(
                f"r:{ref}:activate:{index}",
                [
                    Posting.debit(source, Money(line.net, currency)),
                    Posting.credit(account, Money(line.net, currency)),
                ],
                compact({"receipt": ref, "gift_card": code}),
            )
        elif line.category == STORED_VALUE:
            member = line.reference or member_id or ""
            entries.add(
                f"r:{ref}:topup:{index}",
                [
                    Posting.debit(f"sys:wallet:float:{currency}", Money(line.net, currency)),
                    Posting.credit(till.wallet_account(member), Money(line.net, currency)),
                ],
                compact({"receipt": ref, "topup": member}),
            )


def _credit_points(
    till: Till,
    ref: str,
    member_id: str,
    points: int,
    earn: EarnResult,
    day: str,
    summary: dict[str, int],
    entries: _Entries,
) -> None:
    expires_at = None
    if earn.expires_on is not None:
        expires_at = datetime.combine(earn.expires_on, datetime.min.time(), till.zone)
    # What head office's reports need travels with the entry to the hub.
    memo = compact(
        {
            "receipt": ref,
            "earned": points,
            "rules": earn.ruleset_version,
            "member": member_id,
            "store": till.store,
            "day": day,
            "total": summary.get("total", 0),
            "redeemed": summary.get("redeemed", 0),
            "vouchers": summary.get("vouchers", 0),
        }
    )
    if till.rules.pending_days:
        entries.add(
            f"r:{ref}:earn",
            [
                Posting.debit("sys:points:issued", Points(points)),
                Posting.credit(till.pending_account(member_id), Points(points)),
            ],
            memo,
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
    entries.add(
        f"r:{ref}:earn",
        [
            Posting.debit("sys:points:issued", Points(points)),
            Posting.credit(till.points_account(member_id), Points(points), expires_at=expires_at),
        ],
        memo,
    )
