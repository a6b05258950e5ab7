# SPDX-License-Identifier: Apache-2.0
"""A till in a chain: its local figures for chain-wide accounts follow the hub's.

The hub's ledger is the book of record for every member's points and
wallet, every card's shadow and every voucher's liability. A till's own
ledger records its own movements (and pushes them), but what it may spend
is the chain's figure: the hub's snapshot as of this till's acknowledged
records, plus its own records the hub has not applied yet. `refresh` asks
the hub and brings the till's local accounts to exactly that with
``mirror`` entries (kind MIRROR: they move here and the hub does not apply
them again), so every limit the local ledger enforces is the chain's, and
the same figures serve offline until the next snapshot. Points follow the
hub's lots (their expiry), and the hub books their breakage; a chain
till's own expiry of them is a mirror too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._errors import SyncError
from .._money import Money, Points, amount_of
from ..ledger import Posting, UnknownAccount
from ..ledger._store import from_micros, to_micros
from ..sync import MOVING, Snapshot

if TYPE_CHECKING:
    from ._till import Till

_MIRROR = "sys:chain:mirror"


class ChainView:
    """Snapshots from the hub, mirrored into a till's ledger."""

    def __init__(self, till: Till) -> None:
        self._till = till

    def refresh(
        self,
        member: str | None = None,
        accounts: Iterable[str] = (),
        sun: tuple[str, int] | None = None,
    ) -> Snapshot | None:
        """Ask the hub for a member's figures (and other accounts); None if it did not answer.

        Offline, the till keeps its figures: the last snapshot plus its own
        movements since. `sun` (a tag's UID and counter) is checked by the
        hub in the same call.
        """
        till = self._till
        if till.hub is None:
            return None
        try:
            snapshot: Snapshot = till.hub.snapshot(member, list(accounts), sun)
        except SyncError:
            return None
        self.apply(snapshot)
        return snapshot

    def apply(self, snapshot: Snapshot) -> None:
        """Bring local figures to the snapshot plus this till's movements after its cursor."""
        till = self._till
        ledger = till.ledger
        with ledger.atomic():
            own, own_lots = self._own_after(snapshot.cursor)
            for account, figure in sorted(snapshot.accounts.items()):
                try:
                    described = ledger.account(account)
                except UnknownAccount:
                    continue  # an account this till does not keep
                if described.unit != figure.unit:
                    continue
                if described.lots:
                    self._points(account, snapshot.lots.get(account, ()), own_lots.get(account, []))
                    continue
                target = figure.posted + own.get(account, 0)
                local = _minor(ledger.balance(account).posted)
                self._move(account, figure.unit, target - local, {"snapshot": snapshot.cursor})
            till._directory.learn_chain(snapshot)

    def _own_after(
        self, cursor: int
    ) -> tuple[dict[str, int], dict[str, list[tuple[str, int, int | None]]]]:
        """This till's moving records the hub had not applied: net per account, points moves."""
        net: dict[str, int] = {}
        lots: dict[str, list[tuple[str, int, int | None]]] = {}
        after = cursor
        while True:
            records = self._till.ledger.outbox(after_seq=after, limit=500)
            if not records:
                return net, lots
            for record in records:
                data = json.loads(record.payload)
                if data["kind"] in MOVING:
                    for account, side, amount, _, expires in data["postings"]:
                        net[account] = net.get(account, 0) + (amount if side == "C" else -amount)
                        lots.setdefault(account, []).append((side, amount, expires))
            after = records[-1].seq

    def _points(
        self,
        account: str,
        hub_lots: Iterable[tuple[int, int | None]],
        own: list[tuple[str, int, int | None]],
    ) -> None:
        """Local lots become the hub's lots plus this till's own moves since the snapshot."""
        ledger = self._till.ledger
        ledger.expire(account=account)  # a chain till's own expiry is a mirror (the hub books it)
        # (points left, expiry) per lot: the hub's, then this till's own moves on top.
        target: list[tuple[int, int | None]] = list(hub_lots)
        for side, amount, expires in own:
            if side == "C":
                target.append((amount, expires))
                continue
            need, spent = amount, []
            for left, expiry in sorted(target, key=_soonest):
                take = min(need, left)
                spent.append((left - take, expiry))
                need -= take
            target = spent
        now = self._till.now()
        wanted: dict[int | None, int] = {}
        for left, expiry in target:
            if left > 0 and (expiry is None or from_micros(expiry) > now):
                wanted[expiry] = wanted.get(expiry, 0) + left
        have: dict[int | None, int] = {}
        for lot in ledger.lots(account):
            if lot.remaining and (lot.expires_at is None or lot.expires_at > now):
                key = None if lot.expires_at is None else int(to_micros(lot.expires_at))
                have[key] = have.get(key, 0) + lot.remaining
        surplus = sum(max(0, have.get(e, 0) - wanted.get(e, 0)) for e in set(have) | set(wanted))
        self._move(account, "PTS", -surplus, {"lots": "surplus"})
        for expires, amount in sorted(wanted.items(), key=lambda kv: _soonest((0, kv[0]))):
            missing = amount - have.get(expires, 0)
            self._move(account, "PTS", max(0, missing), {"lots": "missing"}, expires=expires)

    def _move(
        self,
        account: str,
        unit: str,
        delta: int,
        memo: dict[str, Any],
        *,
        expires: int | None = None,
    ) -> None:
        if delta == 0:
            return
        ledger = self._till.ledger
        source = f"{_MIRROR}:{unit}"
        ledger.open_account(source, unit)
        amount = amount_of(abs(delta), unit)
        expiry = None if expires is None else from_micros(expires)
        if delta > 0:
            legs = [
                Posting.debit(source, amount),
                Posting.credit(account, amount, expires_at=expiry),
            ]
        else:
            legs = [Posting.debit(account, amount), Posting.credit(source, amount)]
        # A mirror is applied once, in this commit: its key only has to be new.
        key = f"mirror:{os.urandom(8).hex()}"
        ledger.mirror(key, legs, memo=json.dumps({**memo, "account": account}))


def _minor(amount: Money | Points) -> int:
    return amount.minor if isinstance(amount, Money) else amount.value


def _soonest(lot: tuple[int, int | None]) -> tuple[bool, int]:
    """Lots in the order a debit spends them: soonest expiry first, never-expiring last."""
    return (lot[1] is None, lot[1] or 0)
