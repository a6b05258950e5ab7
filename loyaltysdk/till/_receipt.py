# SPDX-License-Identifier: Apache-2.0
"""What the till hands back to the POS: quotes, receipts, refunds, balances."""

from __future__ import annotations

from datetime import date
from typing import Any

import attrs

from .._money import Money


@attrs.frozen
class VoucherUse:
    """A voucher applied to a receipt: what it paid and what is left on it."""

    code: str
    amount: int
    remaining: int
    offline: bool = False
    partial: bool = False


@attrs.frozen
class Quote:
    """The state of a checkout session, for the POS screen.

    Attributes:
        total: the basket's total (minor units).
        points_to_earn: what completing would earn, and `earn_lines` why.
        points_available: the member's spendable points (before this session).
        points_redeemed, points_value: points taken in this session and what they pay.
        max_redeemable: the most points that could pay for the rest.
        vouchers: vouchers applied.
        wallet_paid, card_paid: stored value taken.
        due: what is left for the POS to collect.
    """

    currency: str
    total: int
    points_to_earn: int
    earn_lines: tuple[str, ...]
    points_available: int
    points_redeemed: int
    points_value: int
    max_redeemable: int
    vouchers: tuple[VoucherUse, ...]
    wallet_available: int
    wallet_paid: int
    card_paid: int
    due: int
    mode: str = "standalone"


@attrs.frozen
class Receipt:
    """A completed sale as the loyalty side saw it; `lines()` is for the printer."""

    ref: str
    member: str | None
    currency: str
    total: int
    points_earned: int
    line_points: tuple[int, ...]
    earn_lines: tuple[str, ...]
    spendable_on: date | None
    points_redeemed: int
    points_value: int
    vouchers: tuple[VoucherUse, ...]
    wallet_paid: int
    card_paid: int
    card_uid: str | None
    mode: str
    to_pay: int
    points_balance: int | None
    wallet_balance: int | None
    card_balance: int | None

    def lines(self) -> list[str]:
        """Receipt lines: points earned and why, balances after, vouchers and what is left."""
        money = self._money
        out = [f"Loyalty receipt {self.ref}"]
        if self.member:
            out.append(f"Member {self.member}")
        out.extend(f"  {line}" for line in self.earn_lines)
        out.append(f"Points earned: {self.points_earned}")
        if self.spendable_on:
            out.append(f"  spendable from {self.spendable_on.isoformat()}")
        if self.points_redeemed:
            out.append(f"Points redeemed: {self.points_redeemed} ({money(self.points_value)})")
        for use in self.vouchers:
            rest = f", {money(use.remaining)} left" if use.remaining else ""
            out.append(f"Voucher {use.code}: {money(use.amount)}{rest}")
        if self.wallet_paid:
            out.append(f"Paid from wallet: {money(self.wallet_paid)}")
        if self.card_paid:
            out.append(f"Paid from card: {money(self.card_paid)}")
        out.append(f"To pay: {money(self.to_pay)}")
        if self.mode == "offline":
            out.append("(approved offline)")
        if self.points_balance is not None:
            out.append(f"Points balance: {self.points_balance}")
        if self.wallet_balance is not None:
            out.append(f"Wallet balance: {money(self.wallet_balance)}")
        if self.card_balance is not None:
            out.append(f"Card balance: {money(self.card_balance)}")
        return out

    def _money(self, minor: int) -> str:
        return Money(minor, self.currency).format()

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=True)
        data["spendable_on"] = self.spendable_on.isoformat() if self.spendable_on else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        data = dict(data)
        data["vouchers"] = tuple(VoucherUse(**v) for v in data["vouchers"])
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
    amount: int
    points_clawed_back: int
    points_shortfall: int
    points_reinstated: int
    vouchers_reinstated: int
    voucher_forfeited: int
    wallet_credited: int
    card_credited: int
    cash_due: int
    value_taken_back: int = 0
    value_not_refunded: int = 0


@attrs.frozen
class MemberBalance:
    """A balance enquiry."""

    member: str
    points_posted: int
    points_pending: int
    points_available: int
    points_not_yet_spendable: int
    next_expiry: tuple[int, date] | None
    wallet_posted: int
    wallet_available: int
    cards: tuple[tuple[str, int], ...]
