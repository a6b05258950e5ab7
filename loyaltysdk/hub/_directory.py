# SPDX-License-Identifier: Apache-2.0
"""What tills learn about members and cards, kept for the chain and sent to every till.

A till pushes events (enrolments, card links, blocks, replacements, NTAG
424 SUN counters) exactly once per ``(till, seq)``, like its outbox. The
hub keeps the chain's member directory (`hub_members`, `hub_cards`, with
the store of enrolment: reports need it) and each tag's highest SUN
counter (`hub_sun`), and publishes what other tills must know as updates:
new members and cards, and the hotlist. What could not be known offline
(a card already another member's, a SUN counter seen before) is recorded
as an exception, never by dropping the till's event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from .._ids import is_id, is_name
from .._money import MAX_AMOUNT
from ..reports import LINE_COLUMNS, RECEIPT_COLUMNS, VOUCHER_COLUMNS, records_rows
from ..sync import BadRecord, UpdateKind, check_receipt, is_uid
from ._store import DuplicateRows, HubStore

#: The event kinds a till sends, and the fields each must have (and their types).
EVENT_FIELDS: dict[str, dict[str, type]] = {
    "enrol": {"member": str},
    "card": {"member": str, "uid": str, "kind": str},
    "block": {"uid": str},
    "replace": {"member": str, "lost": str, "new": str, "kind": str},
    "sun": {"uid": str, "counter": int},
    # A sale's (or a refund's, negative) goods spend and points, on the sale's local day:
    # what tiers and the per-member cap count, chain-wide.
    "sale": {"member": str, "ref": str, "day": str, "spend": int, "points": int},
    # A receipt record (sale, refund or void) with lines and tenders, for reports.
    "receipt": {},
}


def check_event(seq: object, kind: object, payload: object) -> tuple[int, str, dict[str, Any]]:
    """A pushed event, checked; raises BadRecord naming what is wrong."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise BadRecord(f"bad event sequence number {seq!r}")
    if not isinstance(kind, str) or kind not in EVENT_FIELDS:
        raise BadRecord(f"event {seq}: unknown kind {kind!r}")
    if not isinstance(payload, dict):
        raise BadRecord(f"event {seq}: the payload is an object")
    if kind == "receipt":
        try:
            return seq, kind, check_receipt(payload)
        except BadRecord as error:
            raise BadRecord(f"event {seq} (receipt): {error}") from None
    for name, wanted in EVENT_FIELDS[kind].items():
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise BadRecord(f"event {seq} ({kind}): {name} must be a {wanted.__name__}")
        if not _FIELD_CHECKS.get(name, _short_id)(value):
            raise BadRecord(f"event {seq} ({kind}): {name} {value!r:.60} is not allowed")
    # An enrolment's details (tier, segments, birthday, store, when) are stored too.
    for name in ("tier", "store", "at", "birthday"):
        value = payload.get(name)
        if value is not None and not (isinstance(value, str) and (not value or is_id(value, 64))):
            raise BadRecord(f"event {seq} ({kind}): {name} is up to 64 printable characters")
    segments = payload.get("segments", [])
    if (
        not isinstance(segments, list)
        or len(segments) > 50
        or not all(is_id(s, 64) for s in segments)
    ):
        raise BadRecord(f"event {seq} ({kind}): segments are up to 50 short names")
    return seq, kind, payload


def _short_id(value: Any) -> bool:
    return is_id(value, 110) if isinstance(value, str) else True


def _is_day(value: Any) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


#: What each event field may hold, beyond its type: what storage and the wire allow.
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "member": is_name,
    "uid": is_uid,
    "lost": is_uid,
    "new": is_uid,
    "kind": lambda value: value in ("identity", "purse"),
    "day": _is_day,
    "counter": lambda value: 0 <= value < 2**24,
    "spend": lambda value: abs(value) <= MAX_AMOUNT,
    "points": lambda value: abs(value) <= MAX_AMOUNT,
}


class Directory:
    """The chain's members, cards and SUN counters at the hub (inside the caller's transaction)."""

    def __init__(
        self,
        store: HubStore,
        publish: Callable[[str, Any], int],
        sweep: Callable[[list[str]], None],
    ) -> None:
        self.store = store
        self._publish = publish
        self._sweep = sweep

    def apply(self, till_id: str, events: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
        members: dict[str, dict[str, Any]] = {}
        blocked: list[str] = []
        receipts: list[dict[str, Any]] = []
        for seq, kind, data in events:
            if kind == "receipt":
                if data["till"] != till_id:
                    raise BadRecord(f"event {seq}: a receipt of till {data['till']!r}")
                receipts.append(data)
            elif kind == "enrol":
                self._enrol(till_id, data)
                members.setdefault(data["member"], self._member_update(data["member"]))
            elif kind == "card":
                if self._link(till_id, seq, data["member"], data["uid"].upper(), data["kind"]):
                    members[data["member"]] = self._member_update(data["member"])
            elif kind == "block":
                self.store.execute(
                    "UPDATE hub_cards SET status = 'blocked' WHERE uid = ?", (data["uid"].upper(),)
                )
                blocked.append(data["uid"].upper())
            elif kind == "replace":
                lost, new = data["lost"].upper(), data["new"].upper()
                self.store.execute(
                    "UPDATE hub_cards SET status = 'replaced' WHERE uid = ?", (lost,)
                )
                blocked.append(lost)
                # Whatever the old card still holds at the hub follows the member.
                self._sweep(
                    [
                        a
                        for (a,) in self.store.execute(
                            "SELECT account FROM hub_balances WHERE account LIKE ?",
                            (f"card:{lost}:%",),
                        )
                    ]
                )
                if self._link(till_id, seq, data["member"], new, data["kind"]):
                    members[data["member"]] = self._member_update(data["member"])
            elif kind == "sun":
                self._sun(till_id, seq, data["uid"].upper(), data["counter"])
            elif kind == "sale":
                self.store.execute(
                    "INSERT INTO hub_member_days (member, day, spend, points) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (member, day) DO UPDATE SET"
                    " spend = hub_member_days.spend + excluded.spend,"
                    " points = hub_member_days.points + excluded.points",
                    (data["member"], data["day"][:10], data["spend"], data["points"]),
                )
        if receipts:
            self._file_receipts(receipts)
        if members:
            self._publish(UpdateKind.MEMBERS, {"members": list(members.values())})
        if blocked:
            self._publish(UpdateKind.HOTLIST, {"block": blocked})

    def _file_receipts(self, records: list[dict[str, Any]]) -> None:
        """Receipt records into the tables reports read (set-based; COPY on PostgreSQL)."""
        receipts, lines, vouchers, voided = records_rows(records)
        # Each event is applied once (the till's event cursor, under its lock); a
        # receipt number a till sends twice is refused, so the rows go in by COPY.
        store = self.store
        try:  # the primary key refuses a receipt number the till sent before
            store.copy_rows("report_receipts", RECEIPT_COLUMNS, receipts)
        except DuplicateRows:
            raise BadRecord(
                "a receipt record repeats a receipt number this till sent before"
            ) from None
        if lines:
            store.copy_rows("report_lines", LINE_COLUMNS, lines)
        if vouchers:
            store.copy_rows("report_vouchers", VOUCHER_COLUMNS, vouchers)
        if voided:
            store.executemany(
                "UPDATE report_receipts SET voided = 1 WHERE till = ? AND ref = ?"
                " AND type = 'sale'",
                voided,
            )

    def record_members(self, payload: Any) -> None:
        """Head office enrols members (and cards) itself: the directory keeps them too."""
        members = payload.get("members") if isinstance(payload, dict) else None
        if not isinstance(members, list):
            raise BadRecord("a members update carries a list of members")
        for member in members:
            if not isinstance(member, dict) or not isinstance(member.get("id"), str):
                raise BadRecord(f"not a member: {member!r:.100}")
            self._enrol("head office", {**member, "member": member["id"], "store": ""})
            for card in member.get("cards", []):
                if not isinstance(card, dict) or not isinstance(card.get("uid"), str):
                    raise BadRecord(f"not a card: {card!r:.100}")
                self._link(
                    "head office",
                    0,
                    member["id"],
                    card["uid"].upper(),
                    card.get("kind", "identity"),
                )

    def _enrol(self, till_id: str, data: dict[str, Any]) -> None:
        self.store.execute(
            "INSERT INTO hub_members (id, tier, segments, birthday, store, enrolled_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                data["member"],
                str(data.get("tier", ""))[:32],
                json.dumps(sorted(str(s) for s in data.get("segments", []))),
                data.get("birthday"),
                str(data.get("store", till_id))[:64],
                str(data.get("at", "")),
            ),
        )

    def _link(self, till_id: str, seq: int, member: str, uid: str, kind: str) -> bool:
        """Register a card to a member; True if new. A card already another's is an exception."""
        found = self.store.execute("SELECT member FROM hub_cards WHERE uid = ?", (uid,))
        if found:
            if found[0][0] != member:
                self.store.execute(
                    "INSERT INTO hub_exceptions (till, seq, kind, account, amount, detail)"
                    " VALUES (?, ?, 'card_conflict', ?, 0, ?)",
                    (till_id, seq, f"card:{uid}", "the card is another member's at the hub"),
                )
            return False
        self.store.execute(
            "INSERT INTO hub_cards (uid, member, kind, status) VALUES (?, ?, ?, 'active')",
            (uid, member, kind if kind in ("identity", "purse") else "identity"),
        )
        return True

    def _sun(self, till_id: str, seq: int, uid: str, counter: int) -> None:
        if not self.advance_sun(uid, counter):
            self.store.execute(
                "INSERT INTO hub_exceptions (till, seq, kind, account, amount, detail)"
                " VALUES (?, ?, 'sun_replay', ?, 0, ?)",
                (till_id, seq, f"tag:{uid}", f"SUN counter {counter} was seen before"),
            )

    def advance_sun(self, uid: str, counter: int) -> bool:
        """Raise a tag's counter if `counter` is higher; False for a replayed one."""
        # One statement decides: two hub processes seeing the same tap cannot both win.
        raised = self.store.execute(
            "INSERT INTO hub_sun (uid, counter) VALUES (?, ?)"
            " ON CONFLICT (uid) DO UPDATE SET counter = excluded.counter"
            " WHERE hub_sun.counter < excluded.counter RETURNING uid",
            (uid, counter),
        )
        return bool(raised)

    def days(self, member: str, since: str) -> dict[str, tuple[int, int]]:
        """A member's goods spend and points per local day, all stores, since a day."""
        rows = self.store.execute(
            "SELECT day, spend, points FROM hub_member_days WHERE member = ? AND day >= ?",
            (member, since),
        )
        return {day: (int(spend), int(points)) for day, spend, points in rows}

    def events_cursor(self, till_id: str) -> int:
        rows = self.store.execute("SELECT acked FROM hub_event_cursors WHERE till = ?", (till_id,))
        return int(rows[0][0]) if rows else 0

    def _member_update(self, member: str) -> dict[str, Any]:
        rows = self.store.execute(
            "SELECT tier, segments, birthday FROM hub_members WHERE id = ?", (member,)
        )
        tier, segments, birthday = rows[0] if rows else ("", "[]", None)
        cards = [
            {"uid": uid, "kind": kind}
            for uid, kind in self.store.execute(
                "SELECT uid, kind FROM hub_cards WHERE member = ? AND status = 'active'"
                " ORDER BY uid",
                (member,),
            )
        ]
        return {
            "id": member,
            "tier": tier,
            "segments": json.loads(segments),
            "birthday": birthday,
            "cards": cards,
        }
