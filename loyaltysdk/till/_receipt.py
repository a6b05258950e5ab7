# SPDX-License-Identifier: Apache-2.0
"""What the till hands back to the POS: quotes, receipts, refunds, balances.

One rule for amounts: every amount of money here is a `Money` (its minor
units and its currency); points are plain ints. The till's files keep
receipts and refunds in minor units (`to_json`), as they always have, so
files written before this rule read back unchanged.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import attrs

from .._money import Money

# Fields that hold money, per result type: stored as minor units, handed out as Money.
_RECEIPT_MONEY = ("total", "points_value", "wallet_paid", "card_paid", "to_pay")
_RECEIPT_OPTIONAL_MONEY = ("wallet_balance", "card_balance")
_REFUND_MONEY = (
    "amount",
    "vouchers_reinstated",
    "voucher_forfeited",
    "wallet_credited",
    "card_credited",
    "cash_due",
    "value_taken_back",
    "value_not_refunded",
)


@attrs.frozen
class VoucherUse:
    """A voucher applied to a receipt: what it paid and what is left on it."""

    code: str
    amount: Money
    remaining: Money
    offline: bool = False
    partial: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "amount": self.amount.minor,
            "remaining": self.remaining.minor,
            "offline": self.offline,
            "partial": self.partial,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], currency: str) -> VoucherUse:
        return cls(
            data["code"],
            Money(data["amount"], currency),
            Money(data["remaining"], currency),
            data.get("offline", False),
            data.get("partial", False),
        )


@attrs.frozen
class Quote:
    """The state of a checkout session, for the POS screen.

    Attributes:
        total: the basket's total.
        points_to_earn: what completing would earn, and `earn_lines` why.
        points_available: the member's spendable points (before this session).
        points_redeemed, points_value: points taken in this session and what they pay.
        max_redeemable: the most points that could pay for the rest.
        vouchers: vouchers applied.
        wallet_available: what the member's wallet can pay.
        wallet_paid, card_paid: stored value taken.
        due: what is left for the POS to collect.
        mode: ``standalone``, ``online`` (the hub answered) or ``offline``.
    """

    currency: str
    total: Money
    points_to_earn: int
    earn_lines: tuple[str, ...]
    points_available: int
    points_redeemed: int
    points_value: Money
    max_redeemable: int
    vouchers: tuple[VoucherUse, ...]
    wallet_available: Money
    wallet_paid: Money
    card_paid: Money
    due: Money
    mode: str = "standalone"


@attrs.frozen
class Receipt:
    """A completed sale as the loyalty side saw it; `lines()` is for the printer.

    Money fields (`total`, `points_value`, `wallet_paid`, `card_paid`,
    `to_pay`, `wallet_balance`, `card_balance`) are `Money`; points are ints.
    """

    ref: str
    member: str | None
    currency: str
    total: Money
    points_earned: int
    line_points: tuple[int, ...]
    earn_lines: tuple[str, ...]
    spendable_on: date | None
    points_redeemed: int
    points_value: Money
    vouchers: tuple[VoucherUse, ...]
    wallet_paid: Money
    card_paid: Money
    card_uid: str | None
    mode: str
    to_pay: Money
    points_balance: int | None
    wallet_balance: Money | None
    card_balance: Money | None

    def lines(self) -> list[str]:
        """Receipt lines: points earned and why, balances after, vouchers and what is left."""
        out = [f"Loyalty receipt {self.ref}"]
        if self.member:
            out.append(f"Member {self.member}")
        out.extend(f"  {line}" for line in self.earn_lines)
        out.append(f"Points earned: {self.points_earned}")
        if self.spendable_on:
            out.append(f"  spendable from {self.spendable_on.isoformat()}")
        if self.points_redeemed:
            out.append(f"Points redeemed: {self.points_redeemed} ({self.points_value.format()})")
        for use in self.vouchers:
            rest = f", {use.remaining.format()} left" if use.remaining else ""
            out.append(f"Voucher {use.code}: {use.amount.format()}{rest}")
        if self.wallet_paid:
            out.append(f"Paid from wallet: {self.wallet_paid.format()}")
        if self.card_paid:
            out.append(f"Paid from card: {self.card_paid.format()}")
        out.append(f"To pay: {self.to_pay.format()}")
        if self.mode == "offline":
            out.append("(approved offline)")
        if self.points_balance is not None:
            out.append(f"Points balance: {self.points_balance}")
        if self.wallet_balance is not None:
            out.append(f"Wallet balance: {self.wallet_balance.format()}")
        if self.card_balance is not None:
            out.append(f"Card balance: {self.card_balance.format()}")
        return out

    def to_json(self) -> dict[str, Any]:
        """The stored form: amounts in minor units of `currency`.

        Written out field by field (every sale stores one): `attrs.asdict`
        took several times the instructions. A test holds it to asdict's keys.
        """
        wallet, card = self.wallet_balance, self.card_balance
        return {
            "ref": self.ref,
            "member": self.member,
            "currency": self.currency,
            "total": self.total.minor,
            "points_earned": self.points_earned,
            "line_points": list(self.line_points),
            "earn_lines": list(self.earn_lines),
            "spendable_on": self.spendable_on.isoformat() if self.spendable_on else None,
            "points_redeemed": self.points_redeemed,
            "points_value": self.points_value.minor,
            "vouchers": [use.to_json() for use in self.vouchers],
            "wallet_paid": self.wallet_paid.minor,
            "card_paid": self.card_paid.minor,
            "card_uid": self.card_uid,
            "mode": self.mode,
            "to_pay": self.to_pay.minor,
            "points_balance": self.points_balance,
            "wallet_balance": None if wallet is None else wallet.minor,
            "card_balance": None if card is None else card.minor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        data = dict(data)
        currency = data["currency"]
        for name in (*_RECEIPT_MONEY, *_RECEIPT_OPTIONAL_MONEY):
            value = data[name]
            data[name] = None if value is None else Money(value, currency)
        data["vouchers"] = tuple(VoucherUse.from_json(v, currency) for v in data["vouchers"])
        data["line_points"] = tuple(data["line_points"])
        data["earn_lines"] = tuple(data["earn_lines"])
        spendable = data["spendable_on"]
        data["spendable_on"] = date.fromisoformat(spendable) if spendable else None
        return cls(**data)


@attrs.frozen
class Refund:
    """What a refund gave back.

    Attributes:
        ref: the refund's own reference.
        receipt: the original receipt.
        amount: the refunded lines' value.
        points_clawed_back: earned points taken back (`points_shortfall`
            could not be, because the member had spent them).
        points_reinstated: redeemed points given back.
        vouchers_reinstated: value put back on partial vouchers; what
            single-use vouchers paid is not returned (`voucher_forfeited`).
        wallet_credited, card_credited: stored value given back.
        cash_due: what the POS pays back in cash or to the original card.
        value_taken_back: what a refunded gift card or top-up still held,
            taken back from it (the gift card is then refused everywhere here).
        value_not_refunded: what such lines sold that was already spent,
            so not refunded.
    """

    ref: str
    receipt: str
    amount: Money
    points_clawed_back: int
    points_shortfall: int
    points_reinstated: int
    vouchers_reinstated: Money
    voucher_forfeited: Money
    wallet_credited: Money
    card_credited: Money
    cash_due: Money
    value_taken_back: Money
    value_not_refunded: Money

    @property
    def currency(self) -> str:
        return self.amount.currency

    def to_json(self) -> dict[str, Any]:
        """The stored form: amounts in minor units (the till's currency)."""
        data = attrs.asdict(self, recurse=False)
        for name in _REFUND_MONEY:
            data[name] = data[name].minor
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], currency: str) -> Refund:
        data = {"value_taken_back": 0, "value_not_refunded": 0, **data}
        for name in _REFUND_MONEY:
            data[name] = Money(data[name], currency)
        return cls(**data)


@attrs.frozen
class MemberBalance:
    """A balance enquiry: points as ints, the wallet and each card's value as `Money`.

    Attributes:
        next_expiry: the points that expire first and their (local) day.
        cards: (UID in hex, value the till's shadow of that card holds).
    """

    member: str
    points_posted: int
    points_pending: int
    points_available: int
    points_not_yet_spendable: int
    next_expiry: tuple[int, date] | None
    wallet_posted: Money
    wallet_available: Money
    cards: tuple[tuple[str, Money], ...]
