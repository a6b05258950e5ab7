# SPDX-License-Identifier: Apache-2.0
"""What head office sees of a sale, a refund or a void: one receipt record, lines and tenders.

Every completed sale (a member's or anonymous), every refund and every void
becomes a ``receipt`` event in the commit that posts it, and goes to the hub
exactly once with the till's other events. A refund or void carries signed
figures (negative quantities and totals) and names the sale it undoes, so
revenue net of refunds is a plain sum and a voided sale nets to zero.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._sale_record import head, is_head, record_from_head
from ..ledger import LedgerCorrupted
from ._receipt import Receipt, Refund

if TYPE_CHECKING:
    from ._till import Till

#: What a receipt record holds (schema version), checked by the hub.
RECEIPT_VERSION = 1


def _when(till: Till, at: datetime) -> dict[str, Any]:
    local = at.astimezone(till.zone)
    return {"at": local.isoformat(), "day": local.date().isoformat(), "hour": local.hour}


def _line(
    line: list[Any], points: int, *, quantity: int | None = None, sign: int = 1
) -> dict[str, Any]:
    sku, qty, unit_price, category, brand, discount, *_ = line
    taken = qty if quantity is None else quantity
    return {
        "sku": sku,
        "category": category,
        "brand": brand,
        "quantity": sign * taken,
        "unit_price": unit_price,
        # A part of a line carries its part of the discount and points, rounded down.
        "discount": sign * (discount * taken // qty),
        "points": sign * (points * taken // qty),
    }


def sale_head(
    till: Till, plan: dict[str, Any], ref: str, campaigns: dict[str, str]
) -> dict[str, Any]:
    """What a completed sale's commit stores of its receipt record: the head (see
    `_sale_record`); the record is joined with the receipt row when it is read."""
    return head(
        {
            "v": RECEIPT_VERSION,
            "type": "sale",
            "ref": ref,
            "receipt": ref,
            "store": till.store,
            "till": till.till_id,
            **_when(till, datetime.fromisoformat(plan["at"])),
        },
        campaigns,
    )


def sale_record(
    till: Till, plan: dict[str, Any], receipt: Receipt, campaigns: dict[str, str]
) -> dict[str, Any]:
    """The receipt record of a completed sale, whole."""
    return record_from_head(sale_head(till, plan, receipt.ref, campaigns), plan, receipt.to_json())


def whole_records(
    conn: sqlite3.Connection, events: list[tuple[int, str, Any]]
) -> list[tuple[int, str, Any]]:
    """Events as a till sends them: each sale's head joined with its receipt row."""
    refs = [payload["ref"] for _, kind, payload in events if kind == "receipt" and is_head(payload)]
    if not refs:
        return events
    marks = ",".join("?" * len(refs))
    rows = {
        ref: (json.loads(plan), json.loads(receipt))
        for ref, plan, receipt in conn.execute(
            f"SELECT ref, plan, receipt FROM till_receipts WHERE ref IN ({marks})",  # noqa: S608
            refs,
        )
    }
    missing = [ref for ref in refs if ref not in rows]
    if missing:  # written in one commit with its head: the file was altered
        raise LedgerCorrupted(f"receipt {missing[0]}: its event has no receipt row")
    return [
        (seq, kind, record_from_head(payload, *rows[payload["ref"]]))
        if kind == "receipt" and is_head(payload)
        else (seq, kind, payload)
        for seq, kind, payload in events
    ]


def refund_record(
    till: Till,
    plan: dict[str, Any],
    sale: dict[str, Any],
    refund: Refund,
    receipt: Receipt,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The receipt record of a refund or void: signed figures, naming the sale it undoes."""
    sale_lines = sale["lines"]
    lines = [
        _line(sale_lines[int(index)], receipt.line_points[int(index)], quantity=qty, sign=-1)
        for index, qty in sorted(plan["lines"].items(), key=lambda item: int(item[0]))
    ]
    vouchers = [
        {"code": code, "campaign": "", "amount": -part} for code, part, _ in plan["vouchers"]
    ]
    return {
        "v": RECEIPT_VERSION,
        "type": "void" if plan["void"] else "refund",
        "ref": refund.ref,
        "receipt": refund.receipt,
        "store": till.store,
        "till": till.till_id,
        **_when(till, at or till.now()),
        "member": receipt.member,
        "currency": receipt.currency,
        "total": -refund.amount.minor,
        "lines": lines,
        "points_earned": -refund.points_clawed_back,
        "points_redeemed": -refund.points_reinstated,
        "tenders": {
            "points": 0,
            "vouchers": vouchers,
            "wallet": -refund.wallet_credited.minor,
            "card": -refund.card_credited.minor,
            "cash": -refund.cash_due.minor,
        },
    }


def backfill(till: Till) -> int:
    """Receipt records for what a till sold before it made them (an older file), once.

    Runs inside the caller's commit. A refund made then is dated at its
    sale (the file kept no time for it) and names no voucher campaign.
    """
    conn = till._conn
    if conn.execute("SELECT 1 FROM till_settings WHERE name = 'receipts_captured'").fetchone():
        return 0
    made = 0
    sales: dict[str, tuple[dict[str, Any], Receipt]] = {}
    for ref, plan_text, receipt_text in conn.execute(
        "SELECT ref, plan, receipt FROM till_receipts ORDER BY created_at, ref"
    ).fetchall():
        plan, receipt = json.loads(plan_text), Receipt.from_json(json.loads(receipt_text))
        sales[ref] = (plan, receipt)
        till._event("receipt", sale_record(till, plan, receipt, {}))
        made += 1
    for refund_ref, sale_ref, lines, result in conn.execute(
        "SELECT ref, receipt, lines, result FROM till_refunds ORDER BY ref"
    ).fetchall():
        if sale_ref not in sales:
            continue
        plan, receipt = sales[sale_ref]
        pseudo = {
            "lines": json.loads(lines),
            "vouchers": [],
            "void": refund_ref.startswith("void:"),
        }
        refund = Refund.from_json(json.loads(result), till.currency)
        at = datetime.fromisoformat(plan["at"])
        till._event("receipt", refund_record(till, pseudo, plan, refund, receipt, at=at))
        made += 1
    conn.execute("INSERT INTO till_settings (name, value) VALUES ('receipts_captured', '1')")
    return made


__all__ = [
    "RECEIPT_VERSION",
    "backfill",
    "refund_record",
    "sale_head",
    "sale_record",
    "whole_records",
]
