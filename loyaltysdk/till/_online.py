# SPDX-License-Identifier: Apache-2.0
"""Online first, offline within an allowance: how a till decides it may spend stored value.

With a hub configured, stored value taken at checkout (wallet, card,
points) is first held at the hub with a short timeout: the hub sees every
till's spending and refuses what was spent elsewhere. When the hub does not
answer, the till spends only within the allowance the hub granted it, in
the spirit of an EMV floor limit with consecutive-offline counters:

- per transaction, per member per (local) day, a total per till, a count
  of offline transactions, and a maximum time since the last good sync.

All limits are on by default. A till without a hub is standalone: its own
ledger is the whole truth. The mode that applied is on the quote and the
receipt, so the POS can tell the customer.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import attrs

from .._errors import SyncError
from ..sync import MOVING, InsufficientOnline
from ._errors import CheckoutError

if TYPE_CHECKING:
    from ._till import Till

Mode = Literal["standalone", "online", "offline"]


class OfflineLimitReached(CheckoutError):
    """Offline, this payment would exceed the allowance the hub granted."""


class OnlineRefused(CheckoutError):
    """The hub refused the hold: the balance was spent elsewhere."""


@attrs.frozen
class OfflineAllowance:
    """What a till may spend from stored value while the hub is unreachable (minor units)."""

    per_transaction: int = 5_000
    per_member_per_day: int = 10_000
    per_till_total: int = 100_000
    max_transactions: int = 500
    max_time_offline: timedelta = timedelta(hours=24)


def last_good_sync(till: Till) -> datetime | None:
    last = till._get_sync("last_ok", "")
    return datetime.fromisoformat(last) if last else None


def authorise(till: Till, member: str, account: str, unit: str, amount: int, hold_id: str) -> Mode:
    """Take an online hold, or check the offline allowance; returns the mode that applied.

    Raises:
        OnlineRefused: the hub answered and refused.
        OfflineLimitReached: the hub did not answer and the allowance is spent.
    """
    if till.hub is None:
        return "standalone"
    # Value this till took in but has not yet pushed is invisible to the hub
    # and cannot be spent elsewhere: only the rest needs the hub's hold.
    needed = amount - max(0, unsynced_net_credit(till, account))
    try:
        if needed > 0:
            till.hub.take_hold(hold_id, account, unit, needed)
        return "online"
    except InsufficientOnline as error:
        raise OnlineRefused(str(error)) from error
    except SyncError:
        pass
    limits = till.allowance
    now = till.now()
    if amount > limits.per_transaction:
        raise OfflineLimitReached(f"offline, at most {limits.per_transaction} per transaction")
    since = last_good_sync(till)
    if since is not None and now - since > limits.max_time_offline:
        raise OfflineLimitReached("offline for too long: sync with the hub first")
    today = till.local_date(now).isoformat()
    member_today, till_total, count = till._conn.execute(
        "SELECT coalesce(sum(CASE WHEN member = ? AND local_date = ? THEN amount END), 0),"
        " coalesce(sum(amount), 0), count(*) FROM till_offline WHERE synced = 0",
        (member, today),
    ).fetchone()
    if member_today + amount > limits.per_member_per_day:
        raise OfflineLimitReached("offline, this member's allowance for today is spent")
    if till_total + amount > limits.per_till_total:
        raise OfflineLimitReached("offline, this till's allowance is spent")
    if count >= limits.max_transactions:
        raise OfflineLimitReached("offline, too many transactions since the last sync")
    return "offline"


def unsynced_net_credit(till: Till, account: str) -> int:
    """Credits minus debits to `account` in outbox records the hub has not acknowledged."""
    net = 0
    for record in till.ledger.outbox(limit=100_000):
        data = json.loads(record.payload)
        if data["kind"] not in MOVING:
            continue
        for posted_account, side, amount, *_ in data["postings"]:
            if posted_account == account:
                net += amount if side == "C" else -amount
    return net


def record_offline(till: Till, ref: str, member: str | None, amount: int, at: datetime) -> None:
    """Count an offline payment against the allowance (inside the completing commit)."""
    till._conn.execute(
        "INSERT INTO till_offline (ref, member, amount, at, local_date) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (ref) DO NOTHING",
        (ref, member, amount, at.isoformat(), till.local_date(at).isoformat()),
    )


def synced(till: Till) -> None:
    """A sync round succeeded: the allowance starts again."""
    till._conn.execute("UPDATE till_offline SET synced = 1 WHERE synced = 0")
