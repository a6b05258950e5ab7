# SPDX-License-Identifier: Apache-2.0
"""The receipt record a till sends for every sale, refund and void: its schema.

A till writes one in the commit that completes the sale (or the refund, or
the void) and sends it with its other events; the hub checks it here and
files it in the tables reports read. Money is signed integer minor units
(a refund's figures are negative), points are signed integers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from .._ids import MAX_LINE_TEXT, is_id, is_name
from .._money import MAX_AMOUNT, check_unit
from ._wire import BadRecord

RECEIPT_TYPES: Final = ("sale", "refund", "void")
_FIELDS: Final = frozenset(
    {
        "v",
        "type",
        "ref",
        "receipt",
        "store",
        "till",
        "at",
        "day",
        "hour",
        "member",
        "currency",
        "total",
        "lines",
        "points_earned",
        "points_redeemed",
        "tenders",
    }
)
_LINE: Final = frozenset(
    {"sku", "category", "brand", "quantity", "unit_price", "discount", "points"}
)
_TENDERS: Final = frozenset({"points", "vouchers", "wallet", "card", "cash"})
_MAX_LINES: Final = 1_000


def _amount(value: Any, what: str) -> int:
    if type(value) is not int or not -MAX_AMOUNT <= value <= MAX_AMOUNT:
        raise BadRecord(f"a receipt's {what} is a whole number within ±{MAX_AMOUNT}")
    return value


def _text(value: Any, what: str, *, empty: bool = True) -> str:
    if not (isinstance(value, str) and ((empty and value == "") or is_id(value, 100))):
        raise BadRecord(f"a receipt's {what} is up to 100 printable characters")
    return value


def check_receipt(record: Any) -> dict[str, Any]:
    """A receipt record, checked whole; returns it.

    Raises:
        BadRecord: what is wrong.
    """
    if not isinstance(record, dict) or set(record) != _FIELDS or record["v"] != 1:
        raise BadRecord(f"a receipt record (version 1) has exactly the fields {sorted(_FIELDS)}")
    if record["type"] not in RECEIPT_TYPES:
        raise BadRecord(f"a receipt is one of {RECEIPT_TYPES}")
    for name in ("ref", "receipt"):
        _text(record[name], name, empty=False)
    if not is_name(record["store"]) or not is_name(record["till"]):
        raise BadRecord("a receipt's store and till are names")
    member = record["member"]
    if member is not None and not is_name(member):
        raise BadRecord("a receipt's member is a member id or null")
    try:
        at = datetime.fromisoformat(record["at"]) if isinstance(record["at"], str) else None
        day = date.fromisoformat(record["day"]) if isinstance(record["day"], str) else None
        check_unit(record["currency"] if isinstance(record["currency"], str) else "")
    except (ValueError, LookupError):
        at = day = None
    if at is None or day is None or at.tzinfo is None or len(record["day"]) != 10:
        raise BadRecord("a receipt has an aware local time, its day and its currency")
    if record["currency"] == "PTS":
        raise BadRecord("a receipt's currency is money")
    if type(record["hour"]) is not int or not 0 <= record["hour"] <= 23:
        raise BadRecord("a receipt's hour is 0 to 23")
    for name in ("total", "points_earned", "points_redeemed"):
        _amount(record[name], name)
    lines = record["lines"]
    if not isinstance(lines, list) or len(lines) > _MAX_LINES:
        raise BadRecord(f"a receipt has at most {_MAX_LINES} lines")
    for line in lines:  # the hot loop of receipt ingest: the checks inlined
        if type(line) is not dict or line.keys() != _LINE:
            raise BadRecord(f"a receipt line has exactly {sorted(_LINE)}")
        sku, category, brand = line["sku"], line["category"], line["brand"]
        if not (
            type(sku) is str
            and 0 < len(sku) <= MAX_LINE_TEXT
            and type(category) is str
            and len(category) <= MAX_LINE_TEXT
            and type(brand) is str
            and len(brand) <= MAX_LINE_TEXT
            and (sku + category + brand).isprintable()
        ):
            raise BadRecord("a receipt line's SKU, category and brand are printable text")
        for name in ("quantity", "unit_price", "discount", "points"):
            value = line[name]
            if type(value) is not int or not -MAX_AMOUNT <= value <= MAX_AMOUNT:
                _amount(value, f"line {name}")
    tenders = record["tenders"]
    if not isinstance(tenders, dict) or set(tenders) != _TENDERS:
        raise BadRecord(f"a receipt's tenders are exactly {sorted(_TENDERS)}")
    for name in ("points", "wallet", "card", "cash"):
        _amount(tenders[name], f"{name} tender")
    vouchers = tenders["vouchers"]
    if not isinstance(vouchers, list) or len(vouchers) > 100:
        raise BadRecord("a receipt lists at most 100 vouchers")
    for voucher in vouchers:
        if not isinstance(voucher, dict) or set(voucher) != {"code", "campaign", "amount"}:
            raise BadRecord("a voucher tender is {code, campaign, amount}")
        _text(voucher["code"], "voucher code", empty=False)
        _text(voucher["campaign"], "campaign")
        _amount(voucher["amount"], "voucher amount")
    return record


__all__ = ["RECEIPT_TYPES", "check_receipt"]
