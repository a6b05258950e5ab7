# SPDX-License-Identifier: Apache-2.0
"""The schema of every update kind, checked by the hub at publish and by a till before it applies.

An update is published once and pulled by every till, so one a till cannot
apply would stop every till at that cursor. The hub refuses it at publish
instead (`check_update`), and a till checks again (an older hub, a newer
kind) and reports what it cannot apply rather than stopping.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Final

from .._errors import LoyaltyError
from .._ids import is_id, is_name
from ._wire import BadRecord, UnknownUpdate, UpdateKind

#: A card's UID in hex: 4, 7 or 10 bytes.
UID_PATTERN: Final = r"^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})$"
_UID = re.compile(UID_PATTERN)
#: Most entries one update may list (cards blocked, codes revoked, members, terms).
MAX_ENTRIES: Final = 100_000
ALLOWANCE_FIELDS: Final = frozenset(
    {"per_transaction", "per_member_per_day", "per_till_total", "max_transactions"}
)


def is_uid(value: object) -> bool:
    """Whether `value` is a card UID in hex."""
    return isinstance(value, str) and _UID.fullmatch(value) is not None


def _object(payload: Any, fields: set[str], required: set[str], what: str) -> dict[str, Any]:
    if not isinstance(payload, dict) or not required <= set(payload) <= fields:
        raise BadRecord(f"{what} is an object with {sorted(required)} (and only {sorted(fields)})")
    return payload


def _entries(payload: Any, name: str, what: str) -> list[Any]:
    values = _object(payload, {name}, {name}, what)[name]
    if not isinstance(values, list) or len(values) > MAX_ENTRIES:
        raise BadRecord(f"{what}: {name!r} is a list of at most {MAX_ENTRIES}")
    return values


def _check_member(member: Any) -> None:
    fields = {"id", "tier", "segments", "birthday", "cards"}
    _object(member, fields, {"id"}, "a member")
    if not is_name(member["id"]):
        raise BadRecord(f"a member id is letters, digits, - and _, not {member['id']!r:.80}")
    tier = member.get("tier", "")
    if not isinstance(tier, str) or (tier and not is_id(tier, 32)):
        raise BadRecord(f"a tier is up to 32 printable characters, not {tier!r:.80}")
    segments = member.get("segments", [])
    if not isinstance(segments, list) or len(segments) > 50:
        raise BadRecord("segments are a list of at most 50")
    if not all(is_id(s, 64) for s in segments):
        raise BadRecord("a segment is 1-64 printable characters")
    birthday = member.get("birthday")
    if birthday is not None:
        try:
            date.fromisoformat(birthday if isinstance(birthday, str) else "")
        except ValueError:
            raise BadRecord(f"a birthday is YYYY-MM-DD, not {birthday!r:.40}") from None
    cards = member.get("cards", [])
    if not isinstance(cards, list) or len(cards) > 20:
        raise BadRecord("cards are a list of at most 20")
    for card in cards:
        _object(card, {"uid", "kind"}, {"uid"}, "a card")
        if not is_uid(card["uid"]):
            raise BadRecord(f"a card UID is 8, 14 or 20 hex digits, not {card['uid']!r:.40}")
        if card.get("kind", "identity") not in ("identity", "purse"):
            raise BadRecord("a card's kind is identity or purse")


def _check_allowance(payload: Any) -> None:
    _object(payload, {*ALLOWANCE_FIELDS, "max_hours_offline"}, set(), "an allowance")
    for name, value in payload.items():
        if type(value) is not int or not 0 <= value <= 2**53 - 1:
            raise BadRecord(f"{name} is a non-negative whole number")


def check_update(kind: str, payload: Any) -> UpdateKind:
    """Check an update's payload against its kind's schema; returns the kind.

    Raises:
        UnknownUpdate: a kind this code does not know.
        BadRecord: the payload does not fit the kind.
    """
    try:
        known = UpdateKind(kind)
    except ValueError:
        raise UnknownUpdate(f"unknown update kind {kind!r:.40}") from None
    if known is UpdateKind.RULES:
        from ..rules import load_rules

        if not isinstance(payload, dict):
            raise BadRecord("rules are an object")
        try:
            load_rules(payload)
        except (LoyaltyError, ValueError, TypeError, KeyError) as error:
            raise BadRecord(f"rules: {error}") from error
    elif known is UpdateKind.HOTLIST:
        uids = _entries(payload, "block", "a hotlist")
        if not all(is_uid(uid) for uid in uids):
            raise BadRecord("a hotlist blocks card UIDs of 8, 14 or 20 hex digits")
    elif known is UpdateKind.REVOCATIONS:
        if not all(is_id(code, 64) for code in _entries(payload, "codes", "revocations")):
            raise BadRecord("a revoked code is 1-64 printable characters")
    elif known is UpdateKind.KEYS:
        from ..vouchers import Keyring

        if not isinstance(payload, dict) or not all(
            is_id(k, 64) and isinstance(v, str) for k, v in payload.items()
        ):
            raise BadRecord("keys map key ids to base64 Ed25519 public keys")
        try:
            Keyring.from_json(payload)
        except (LoyaltyError, ValueError) as error:
            raise BadRecord(f"keys: {error}") from error
    elif known is UpdateKind.VOUCHERS:
        from ..vouchers import VoucherTerms

        for terms in _entries(payload, "terms", "vouchers"):
            try:
                VoucherTerms.from_json(terms)
            except (LoyaltyError, ValueError, TypeError, KeyError) as error:
                raise BadRecord(f"voucher terms: {error}") from error
    elif known is UpdateKind.MEMBERS:
        for member in _entries(payload, "members", "members"):
            _check_member(member)
    else:
        _check_allowance(payload)
    return known


__all__ = ["ALLOWANCE_FIELDS", "MAX_ENTRIES", "UID_PATTERN", "check_update", "is_uid"]
