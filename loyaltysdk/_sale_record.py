# SPDX-License-Identifier: Apache-2.0
"""A sale's receipt record, built from the till's receipt row when it is read.

The record head office gets for a sale (``sync.check_receipt`` gives its
schema) repeats the sale's lines and tenders, which the till's receipt row
(`till_receipts`: the plan and the receipt) already holds. So the sale's
commit stores only a head: the record's own fields that the row does not
hold (where and when, in the till's zone at the time; the voucher
campaigns) and where the rest is. Whoever reads the till's events (its
sync, its own reports) joins the head with the row's plan and receipt
(`record_from_head`), into the record the commit would otherwise have
written: the commit writes the lines once, not twice.

The row's plan and receipt never change after the commit (a void changes
its status only), so the record built later is the one built then. Files
written before this store whole records; `is_head` tells the two apart.

Here, not in the till, because the till's reports read its file by SQL
and import no till.
"""

from __future__ import annotations

from typing import Any, Final

#: What a head says about where the rest of its record is.
_STORED_IN: Final = "till_receipts"
#: The record's fields a head carries (the rest come from the row).
HEAD_FIELDS: Final = ("v", "type", "ref", "receipt", "store", "till", "at", "day", "hour")


def is_head(payload: Any) -> bool:
    """Whether an event's payload is a sale's head rather than a whole record."""
    return type(payload) is dict and payload.get("stored_in") == _STORED_IN


def head(fields: dict[str, Any], campaigns: dict[str, str]) -> dict[str, Any]:
    """A sale's head: `fields` (`HEAD_FIELDS`) and its vouchers' campaigns by code."""
    return {
        **{name: fields[name] for name in HEAD_FIELDS},
        "campaigns": campaigns,
        "stored_in": _STORED_IN,
    }


def record_from_head(
    head: dict[str, Any], plan: dict[str, Any], receipt: dict[str, Any]
) -> dict[str, Any]:
    """The whole receipt record of a sale: its head joined with its row's plan and
    receipt (their stored JSON, amounts in minor units)."""
    lines = [
        {
            "sku": sku,
            "category": category,
            "brand": brand,
            "quantity": qty,
            "unit_price": unit_price,
            "discount": discount,
            "points": points,
        }
        for (sku, qty, unit_price, category, brand, discount, *_), points in zip(
            plan["lines"], receipt["line_points"], strict=True
        )
    ]
    campaigns = head["campaigns"]
    vouchers = [
        {"code": use["code"], "campaign": campaigns.get(use["code"], ""), "amount": use["amount"]}
        for use in receipt["vouchers"]
    ]
    return {
        **{name: head[name] for name in HEAD_FIELDS},
        "member": receipt["member"],
        "currency": receipt["currency"],
        "total": receipt["total"],
        "lines": lines,
        "points_earned": receipt["points_earned"],
        "points_redeemed": receipt["points_redeemed"],
        "tenders": {
            "points": receipt["points_value"],
            "vouchers": vouchers,
            "wallet": receipt["wallet_paid"],
            "card": receipt["card_paid"],
            "cash": receipt["to_pay"],
        },
    }


__all__ = ["HEAD_FIELDS", "head", "is_head", "record_from_head"]
