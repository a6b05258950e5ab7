# SPDX-License-Identifier: Apache-2.0
"""The till's side of sync: push the outbox, pull updates, in rounds or in the background.

Push sends the ledger's outbox after the acknowledged cursor in batches
and moves the cursor only to what the hub acknowledged, so a lost request,
a lost answer or a duplicate costs a resend, never a record. Pull applies
updates by cursor: hotlists block cards, revocations refuse vouchers, rules
replace the till's rules (validated first), keys extend the keyring,
vouchers are registered. The pull cursor lives in the till's own file.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import attrs

from .._errors import LoyaltyError, SyncError
from ..rules import load_rules
from ..till import Till
from ..vouchers import Keyring, VoucherTerms
from ._client import HubLink

_STATE = "CREATE TABLE IF NOT EXISTS till_sync (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


@attrs.frozen
class SyncReport:
    pushed: int
    acked: int
    pulled: int
    pull_cursor: int
    waiting: int


class Syncer:
    """Sync one till with the hub through a `HubLink`."""

    def __init__(self, till: Till, link: HubLink, *, batch: int = 500) -> None:
        self.till = till
        self.link = link
        self.batch = batch
        self._conn = till.ledger.store.connection  # type: ignore[attr-defined]
        with till.ledger.atomic():
            self._conn.execute(_STATE)
        self._revoked: set[str] = set(json.loads(self._get("revoked", "[]")))
        till.vouchers.set_revocations(self._revoked)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _get(self, name: str, default: str) -> str:
        row = self._conn.execute("SELECT value FROM till_sync WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else default

    def _set(self, name: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO till_sync (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    @property
    def pull_cursor(self) -> int:
        return int(self._get("pull_cursor", "0"))

    def push(self) -> tuple[int, int]:
        """Send the outbox; returns (records sent, the hub's acknowledged cursor)."""
        ledger = self.till.ledger
        sent = 0
        acked = ledger.outbox_status().acked_seq
        while True:
            records = ledger.outbox(limit=self.batch)
            if not records:
                break
            result = self.link.push([(r.seq, r.payload) for r in records])
            sent += len(records)
            if result.acked > acked:
                ledger.ack_outbox(result.acked)
                acked = result.acked
            if result.acked < records[-1].seq:
                break  # the hub is holding a gap or stopped early; next round
        return sent, acked

    def pull(self) -> int:
        """Apply updates from the hub; returns how many."""
        cursor = self.pull_cursor
        applied = 0
        while True:
            updates = self.link.pull(cursor, self.batch)
            if not updates:
                break
            for update in updates:
                with self.till.ledger.atomic():
                    self._apply(update.kind, update.payload)
                    cursor = update.cursor
                    self._set("pull_cursor", str(cursor))
                applied += 1
        return applied

    def _apply(self, kind: str, payload: Any) -> None:
        till = self.till
        if kind == "hotlist":
            for uid in payload.get("block", []):
                till._conn.execute(
                    "UPDATE till_cards SET status = 'blocked' WHERE uid = ? AND status = 'active'",
                    (str(uid).upper(),),
                )
        elif kind == "revocations":
            self._revoked |= set(payload.get("codes", []))
            self._set("revoked", json.dumps(sorted(self._revoked)))
            till.vouchers.set_revocations(self._revoked)
        elif kind == "rules":
            rules = load_rules(payload)
            if rules.currency == till.currency and rules.version > till.rules.version:
                till.rules = rules
                self._set("rules", json.dumps(payload))
        elif kind == "keys":
            ring = Keyring.from_json(payload)
            for key_id, key in ring.keys.items():
                till.vouchers.keyring.add(key_id, key)
        elif kind == "members":
            from datetime import date

            for member in payload.get("members", []):
                birthday = member.get("birthday")
                till.enrol(
                    member["id"],
                    tier=member.get("tier", ""),
                    segments=frozenset(member.get("segments", [])),
                    birthday=date.fromisoformat(birthday) if birthday else None,
                )
                for card in member.get("cards", []):
                    till.link_card(member["id"], bytes.fromhex(card["uid"]), kind=card["kind"])
        elif kind == "vouchers":
            for terms in payload.get("terms", []):
                till.vouchers.register(VoucherTerms.from_json(terms))

    def run_once(self) -> SyncReport:
        """One round: push, then pull.

        Raises:
            SyncError: the hub is unreachable (retry later; nothing is lost).
            HubError: the hub refused (credentials, a malformed record).
        """
        sent, acked = self.push()
        pulled = self.pull()
        from ..till._online import synced

        with self.till.ledger.atomic():
            self._set("last_ok", self.till.now().isoformat())
            synced(self.till)
        status = self.till.ledger.outbox_status()
        return SyncReport(sent, acked, pulled, self.pull_cursor, status.length)

    # -- background -------------------------------------------------------------------

    def start(self, interval: float = 5.0, *, max_backoff: float = 300.0) -> None:
        """Sync every `interval` seconds on a thread, backing off (with jitter) on errors."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            delay = interval
            while not self._stop.is_set():
                try:
                    self.run_once()
                    delay = interval
                except SyncError:
                    delay = min(max_backoff, delay * 2)
                except LoyaltyError:
                    delay = max_backoff  # refused: try again much later
                self._stop.wait(delay * random.uniform(0.8, 1.2))

        self._thread = threading.Thread(target=loop, name="loyaltysdk-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
