# SPDX-License-Identifier: Apache-2.0
"""Refunds and voids: what comes back, from which tender, in one commit.

Policy (docs/checkout.md says it to the POS):

- Lines come back by quantity; the refunded value of a line after refunds
  of ``q`` of its ``Q`` units is ``floor(net·q/Q)``, so the last unit
  returns the rounding and a line refunded in full returns its net exactly.
- Value the basket sold (a gift card, a stored-value top-up) is taken back
  first: only what is left of it is refunded (`value_not_refunded` is what
  was already spent).
- The money refunded is shared over the tenders that paid the receipt
  cumulatively (`_allocate`): after any sequence of refunds each tender has
  given back its share of all that was refunded so far, to the unit, and a
  full refund gives back exactly what each paid.
- Earned points come back the same way: each line's points by quantity,
  receipt and basket bonuses in proportion to the refunded value, all of
  them when every line is refunded (or the receipt voided). Points the
  member already spent are not taken below zero (`points_shortfall`).
- Redeemed points are reinstated as a new lot; partial vouchers get their
  share back, single-use vouchers do not (`voucher_forfeited`); wallet value
  goes back to the wallet; card value back to the card when it is presented
  (through the card intent journal), otherwise to the member's wallet; the
  rest is `cash_due`.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from .._money import Money, Points
from ..cards.purse import Kind
from ..cards.transport import Transport
from ..ledger import HoldExpired, HoldResolved, InsufficientFunds, Posting
from ._allocate import allocate
from ._capture import refund_record
from ._errors import PaymentInterrupted, RefundRefused, VoidRefused, reference
from ._receipt import Receipt, Refund

if TYPE_CHECKING:
    from ._cards import Pending
    from ._till import Till

GIFT_CARD = "gift-card"
STORED_VALUE = "stored-value"


def tenders(receipt: Receipt) -> dict[str, int]:
    """What paid the receipt, by tender name, in minor units; the values sum to its total."""
    paid = {"points": receipt.points_value.minor}
    for use in receipt.vouchers:
        paid[f"voucher:{use.code}"] = paid.get(f"voucher:{use.code}", 0) + use.amount.minor
    paid["wallet"] = receipt.wallet_paid.minor
    paid["card"] = receipt.card_paid.minor
    paid["cash"] = receipt.total.minor - sum(paid.values())
    return paid


def _line_value(net: int, quantity: int, refunded: int) -> int:
    return net * refunded // quantity


class Refunds:
    """Refunds and voids of one till's receipts."""

    def __init__(self, till: Till) -> None:
        self._till = till
        self._conn = till.ledger.store.connection  # type: ignore[attr-defined]

    # -- the calls ---------------------------------------------------------------------

    def refund(
        self,
        ref: str,
        lines: dict[int, int],
        refund_ref: str,
        card: Transport | None,
        *,
        void: bool = False,
    ) -> Refund:
        till = self._till
        journal = till._journal
        refund_ref = reference(refund_ref, "refund reference")
        if not isinstance(lines, dict) or not lines:
            raise RefundRefused(f"a refund names lines and quantities, not {lines!r}")
        with till.ledger.atomic():
            done = self._done(refund_ref, lines)
            if done is not None:
                return done
            interrupted = journal.pending_for("refund", refund_ref)
            if interrupted is None:
                plan = self._plan(ref, lines, refund_ref, card is not None, void=void)
                if not plan["card"]:
                    return self.finish(plan, None)
        if interrupted is not None:
            # The card may hold this refund already: only the card can tell.
            if interrupted.plan["lines"] != {str(k): v for k, v in lines.items()}:
                raise RefundRefused(f"refund {refund_ref} was begun for other lines")
            if card is None:
                raise PaymentInterrupted(
                    f"refund {refund_ref} is waiting for card {interrupted.uid}: tap it"
                )
            return self.resume(interrupted, card)
        assert card is not None
        pending = journal.begin(
            "refund",
            refund_ref,
            plan["card_uid"],
            Kind.CREDIT,
            plan["card"],
            plan,
            reserve=self._reserve,
        )
        record = journal.touch(card, pending)
        return self.finish(pending.plan, pending.id, chip=record.balance_after)

    def _done(self, refund_ref: str, lines: dict[int, int]) -> Refund | None:
        row = self._conn.execute(
            "SELECT lines, result FROM till_refunds WHERE ref = ?", (refund_ref,)
        ).fetchone()
        if row is None:
            return None
        if json.loads(row[0]) != {str(k): v for k, v in lines.items()}:
            raise RefundRefused(f"refund {refund_ref} was made for other lines")
        return Refund.from_json(json.loads(row[1]), self._till.currency)

    def resume(self, pending: Pending, card: Transport) -> Refund:
        """A refund whose card credit was interrupted: settle it with the card here."""
        record = self._till._journal.settle(card, pending)
        return self.finish(pending.plan, pending.id, chip=record.balance_after)

    # -- planning ------------------------------------------------------------------------

    def _plan(
        self, ref: str, lines: dict[int, int], refund_ref: str, card_here: bool, *, void: bool
    ) -> dict[str, Any]:
        till = self._till
        stored_plan, receipt, status, local_day = till._receipt_row(ref)
        if status != "completed":
            raise (VoidRefused if void else RefundRefused)(f"receipt {ref} is {status}")
        if not isinstance(lines, dict) or not lines:
            raise RefundRefused("a refund needs at least one line")
        sold = stored_plan["lines"]
        already, previous_shares, refunded_before = self._history(ref, receipt)
        if void and refunded_before:
            raise VoidRefused(f"receipt {ref} was partly refunded; refund the rest instead")
        after = dict(already)
        nominal = spend_back = 0
        takebacks: list[list[Any]] = []
        not_refunded = 0
        for index, qty in lines.items():
            if (
                isinstance(index, bool)
                or not isinstance(index, int)
                or not 0 <= index < len(sold)
                or isinstance(qty, bool)
                or not isinstance(qty, int)
                or qty <= 0
            ):
                raise RefundRefused(f"line {index!r} x {qty!r} is not a line of receipt {ref}")
            sku, quantity, unit, category, _, discount, *rest = sold[index]
            left = quantity - already.get(index, 0)
            if qty > left:
                raise RefundRefused(f"line {index} ({sku}): {left} left to refund, not {qty}")
            after[index] = already.get(index, 0) + qty
            net = quantity * unit - discount
            value = _line_value(net, quantity, after[index]) - _line_value(
                net, quantity, already.get(index, 0)
            )
            nominal += value
            sells = rest[0] if rest else ""  # the voucher code or member the line sold value to
            if category == GIFT_CARD:
                account, source = f"voucher:{sells}", f"sys:vouchers:sold:{till.currency}"
            elif category == STORED_VALUE:
                member = sells or receipt.member or ""
                account, source = till.wallet_account(member), f"sys:wallet:float:{till.currency}"
            else:
                spend_back += value
                continue
            take = min(till._minor(till.ledger.balance(account).available), value)
            takebacks.append([index, category, account, source, take])
            not_refunded += value - take
        amount = nominal - not_refunded
        paid = tenders(receipt)
        names = list(paid)
        total = receipt.total.minor
        before = [previous_shares.get(name, 0) for name in names]
        shares = allocate([paid[n] for n in names], total, refunded_before + amount, before)
        step = {n: shares[i] - before[i] for i, n in enumerate(names)}

        plan: dict[str, Any] = {
            "op": "refund",
            "ref": refund_ref,
            "receipt": ref,
            "void": void,
            "sale_day": local_day,
            "lines": {str(k): v for k, v in lines.items()},
            "amount": amount,
            "spend_back": spend_back,
            "shares": step,
            "takebacks": takebacks,
            "value_not_refunded": not_refunded,
            "holds": {},
        }
        plan["whole"] = all(after.get(i, 0) == line[1] for i, line in enumerate(sold))
        points = names.index("points")
        plan["points_back"] = _points_for(receipt, shares[points], plan["whole"]) - _points_for(
            receipt, before[points], False
        )
        plan["clawback"] = self._clawback(ref, receipt, sold, already, after, plan["whole"])
        partial = {use.code: use.partial for use in receipt.vouchers}
        plan["vouchers"] = [
            [code, step[f"voucher:{code}"], is_partial]
            for code, is_partial in partial.items()
            if step[f"voucher:{code}"]
        ]
        card_part, wallet_part, cash = step["card"], step["wallet"], step["cash"]
        plan["card"] = plan["card_to_wallet"] = 0
        plan["card_uid"] = receipt.card_uid
        if card_part:
            if card_here and receipt.card_uid and till.purse is not None and self._live(receipt):
                plan["card"] = card_part
            elif receipt.member:
                plan["card_to_wallet"] = card_part
            else:
                cash += card_part
        plan["wallet"] = wallet_part if receipt.member else 0
        if wallet_part and not receipt.member:
            cash += wallet_part
        plan["cash"] = cash
        return plan

    def _live(self, receipt: Receipt) -> bool:
        """The card that paid is still in use (a hotlisted card's value lives elsewhere)."""
        row = self._conn.execute(
            "SELECT status FROM till_cards WHERE uid = ?", (receipt.card_uid,)
        ).fetchone()
        return row is not None and row[0] == "active"

    def _history(self, ref: str, receipt: Receipt) -> tuple[dict[int, int], dict[str, int], int]:
        """Quantities refunded per line, each tender's share so far, and the money refunded."""
        quantities: dict[int, int] = {}
        shares: dict[str, int] = {}
        refunded = 0
        legacy = False
        for lines, result, stored in self._conn.execute(
            "SELECT lines, result, shares FROM till_refunds WHERE receipt = ?", (ref,)
        ):
            for index, qty in json.loads(lines).items():
                quantities[int(index)] = quantities.get(int(index), 0) + qty
            refunded += json.loads(result)["amount"]
            if stored is None:
                legacy = True  # refunded before shares were kept
                continue
            for name, part in json.loads(stored).items():
                shares[name] = shares.get(name, 0) + part
        if legacy:
            paid = tenders(receipt)
            names = list(paid)
            rebuilt = allocate(
                [paid[n] for n in names], receipt.total.minor, refunded, [0] * len(names)
            )
            shares = dict(zip(names, rebuilt, strict=True))
        return quantities, shares, refunded

    def _clawback(
        self,
        ref: str,
        receipt: Receipt,
        sold: list[list[Any]],
        before: dict[int, int],
        after: dict[int, int],
        whole: bool,
    ) -> dict[str, Any]:
        """Earned points to take back: this refund's part of the cumulative target."""
        till = self._till
        member = receipt.member
        if not member or not receipt.points_earned:
            return {"wanted": 0, "taken": 0, "source": None}

        def target(quantities: dict[int, int], complete: bool) -> int:
            if complete:
                return receipt.points_earned
            by_line = sum(receipt.line_points[i] * q // sold[i][1] for i, q in quantities.items())
            value = sum(
                _line_value(line[1] * line[2] - line[5], line[1], quantities.get(i, 0))
                for i, line in enumerate(sold)
            )
            bonus = receipt.points_earned - sum(receipt.line_points)
            total = receipt.total.minor
            return int(by_line + (bonus * value // total if total else 0))

        wanted = target(after, whole) - target(before, False)
        pending = self._conn.execute(
            "SELECT status FROM till_pending_points WHERE receipt = ?", (ref,)
        ).fetchone()
        held = pending is not None and pending[0] == "pending"
        source = till.pending_account(member) if held else till.points_account(member)
        available = till._minor(till.ledger.balance(source).available)
        return {"wanted": wanted, "taken": max(0, min(wanted, available)), "source": source}

    # -- reserving (before the card is touched) ------------------------------------------

    def _reserve(self, plan: dict[str, Any], prefix: str) -> None:
        """Hold what the refund takes from limited accounts until the card has its credit."""
        till = self._till
        timeout = till.policy.card_intent_timeout
        for index, _, account, source, take in plan["takebacks"]:
            if take:
                key = f"{prefix}take-back-{index}"
                till.ledger.hold(key, self._take_back(account, source, take), timeout=timeout)
                plan["holds"][f"take-back-{index}"] = key
        claw = plan["clawback"]
        if claw["taken"]:
            key = f"{prefix}points-earned"
            till.ledger.hold(key, self._claw(claw["source"], claw["taken"]), timeout=timeout)
            plan["holds"]["points-earned"] = key

    def _take_back(self, account: str, source: str, take: int) -> list[Posting]:
        money = Money(take, self._till.currency)
        return [Posting.debit(account, money), Posting.credit(source, money)]

    def _claw(self, source: str, points: int) -> list[Posting]:
        return [
            Posting.debit(source, Points(points)),
            Posting.credit("sys:points:issued", Points(points)),
        ]

    # -- posting ----------------------------------------------------------------------------

    def finish(
        self, plan: dict[str, Any], intent_id: str | None, *, chip: int | None = None
    ) -> Refund:
        """Post a refund plan and its row in one commit (idempotent by the refund reference).

        `chip` is the card's balance after its credit, when the card took part.
        """
        till = self._till
        ledger = till.ledger
        ref, refund_ref = plan["receipt"], plan["ref"]
        currency = till.currency
        memo = json.dumps({"refund": refund_ref, "receipt": ref})
        with ledger.atomic():
            lines = {int(k): v for k, v in plan["lines"].items()}
            done = self._done(refund_ref, lines)
            if done is not None:
                return done
            sale_plan, receipt, _, _ = till._receipt_row(ref)
            member = receipt.member
            holds = plan["holds"]
            taken_back = 0
            for index, category, account, source, take in plan["takebacks"]:
                name = f"take-back-{index}"
                taken_back += self._move(
                    f"refund:{refund_ref}:{name}", holds.get(name), account, source, take, memo
                )
                if category == GIFT_CARD:
                    till._revoke(account.removeprefix("voucher:"))
            claw = plan["clawback"]
            taken = 0
            if claw["taken"]:
                taken = self._move(
                    f"refund:{refund_ref}:points-earned",
                    holds.get("points-earned"),
                    claw["source"],
                    "sys:points:issued",
                    claw["taken"],
                    memo,
                    points=True,
                )
                if claw["source"] == till.pending_account(member or ""):
                    self._conn.execute(
                        "UPDATE till_pending_points SET points = max(points - ?, 0)"
                        " WHERE receipt = ?",
                        (taken, ref),
                    )
            if plan["points_back"] and member:
                expires_at = None
                if till.rules.expiry_days:
                    expires_at = till.now() + timedelta(days=till.rules.expiry_days)
                ledger.transfer(
                    f"refund:{refund_ref}:points-redeemed",
                    [
                        Posting.debit("sys:points:redeemed", Points(plan["points_back"])),
                        Posting.credit(
                            till.points_account(member),
                            Points(plan["points_back"]),
                            expires_at=expires_at,
                        ),
                    ],
                    memo=memo,
                )
            vouchers_back = forfeited = 0
            for code, part, partial in plan["vouchers"]:
                if partial:
                    ledger.transfer(
                        f"refund:{refund_ref}:voucher:{code}",
                        [
                            Posting.debit(f"sys:vouchers:tender:{currency}", Money(part, currency)),
                            Posting.credit(f"voucher:{code}", Money(part, currency)),
                        ],
                        memo=json.dumps({"refund": refund_ref, "voucher": code}),
                    )
                    vouchers_back += part
                else:
                    forfeited += part
            wallet = 0
            for name, source, part in (
                ("card-to-wallet", f"sys:card:tender:{currency}", plan["card_to_wallet"]),
                ("wallet", f"sys:wallet:tender:{currency}", plan["wallet"]),
            ):
                if part and member:
                    ledger.transfer(
                        f"refund:{refund_ref}:{name}",
                        [
                            Posting.debit(source, Money(part, currency)),
                            Posting.credit(till.wallet_account(member), Money(part, currency)),
                        ],
                        memo=memo,
                    )
                    wallet += part
            if plan["card"]:
                uid = plan["card_uid"]
                if chip is not None:
                    till._mirror_card(uid, chip - plan["card"], f"refund:{refund_ref}")
                ledger.transfer(
                    f"refund:{refund_ref}:card",
                    [
                        Posting.debit(f"sys:card:tender:{currency}", Money(plan["card"], currency)),
                        Posting.credit(till.card_account(uid), Money(plan["card"], currency)),
                    ],
                    memo=json.dumps({"refund": refund_ref, "card": uid}),
                )
            # A take-back whose hold lapsed while the card was away may take
            # less: what it did not take is not paid out in cash either.
            missing = sum(t[4] for t in plan["takebacks"]) - taken_back
            money = till.money
            result = Refund(
                ref=refund_ref,
                receipt=ref,
                amount=money(plan["amount"] - missing),
                points_clawed_back=taken,
                points_shortfall=claw["wanted"] - taken,
                points_reinstated=plan["points_back"],
                vouchers_reinstated=money(vouchers_back),
                voucher_forfeited=money(forfeited),
                wallet_credited=money(wallet),
                card_credited=money(plan["card"]),
                cash_due=money(max(0, plan["cash"] - missing)),
                value_taken_back=money(taken_back),
                value_not_refunded=money(plan["value_not_refunded"] + missing),
            )
            if member:
                till._directory.record_refund(
                    refund_ref,
                    ref,
                    member,
                    date.fromisoformat(plan["sale_day"]),
                    plan["spend_back"],
                    taken,
                    plan["whole"],
                )
            self._conn.execute(
                "INSERT INTO till_refunds (ref, receipt, lines, result, shares)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    refund_ref,
                    ref,
                    json.dumps(plan["lines"]),
                    json.dumps(result.to_json()),
                    json.dumps(plan["shares"]),
                ),
            )
            if plan["void"]:
                self._conn.execute(
                    "UPDATE till_receipts SET status = 'voided' WHERE ref = ?", (ref,)
                )
            till._event("receipt", refund_record(till, plan, sale_plan, result, receipt))
            if intent_id is not None:
                till._journal.mark(intent_id, "done")
        return result

    def _move(
        self,
        key: str,
        hold: str | None,
        account: str,
        source: str,
        amount: int,
        memo: str,
        *,
        points: bool = False,
    ) -> int:
        """Post a reserved take-back (or take it now); returns what was taken.

        A hold that timed out while the card was away is taken again from
        what the account holds now, never more than that.
        """
        ledger = self._till.ledger
        if hold is not None:
            try:
                ledger.post(key, hold)
                return amount
            except (HoldExpired, HoldResolved):
                pass
        available = self._till._minor(ledger.balance(account).available)
        take = min(amount, available)
        if take > 0:
            postings = (
                self._claw(account, take) if points else self._take_back(account, source, take)
            )
            try:
                ledger.transfer(key if hold is None else f"{key}:again", postings, memo=memo)
            except InsufficientFunds:
                return 0
        return max(take, 0)

    # -- voids ------------------------------------------------------------------------------

    def void(self, ref: str, card: Transport | None) -> Refund:
        """Undo a whole receipt on its day: a refund of every line and the status, one commit."""
        till = self._till
        refund_ref = f"void:{reference(ref, 'receipt number')}"
        with till.ledger.atomic():
            plan, _, status, local_day = till._receipt_row(ref)
            lines = {index: line[1] for index, line in enumerate(plan["lines"])}
            done = self._done(refund_ref, lines)
            if done is not None:
                return done
            if status != "completed":
                raise VoidRefused(f"receipt {ref} is {status}")
            if till.policy.void_same_day and local_day != till.local_date().isoformat():
                raise VoidRefused(f"receipt {ref} was sold on {local_day}; refund it instead")
        try:
            return self.refund(ref, lines, refund_ref, card, void=True)
        except RefundRefused as error:
            raise VoidRefused(str(error)) from error


def _points_for(receipt: Receipt, share: int, whole: bool) -> int:
    """Redeemed points that come back when the points' tender has returned `share` of its value."""
    value = receipt.points_value.minor
    if value == 0:
        return receipt.points_redeemed if whole else 0
    if share >= value:
        return receipt.points_redeemed
    return receipt.points_redeemed * share // value


__all__ = ["GIFT_CARD", "STORED_VALUE", "Refunds", "tenders"]
