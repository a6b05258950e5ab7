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

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import attrs

from .._errors import SyncError
from ..sync import InsufficientOnline
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


def authorise(
    till: Till,
    session: str,
    member: str | None,
    account: str,
    unit: str,
    amount: int,
    hold_id: str,
    worth: int,
) -> Mode:
    """Hold `amount` at the hub, or check the offline allowance; returns the mode that applied.

    Online, the hub holds the whole amount: it sees every till's spending
    and refuses what was spent or held elsewhere. When it does not answer,
    this payment is counted with everything else the session already took
    offline, and with every other open session's, against the allowance.

    Args:
        worth: what the payment is worth in money (points at their value).

    Raises:
        OnlineRefused: the hub answered and refused.
        OfflineLimitReached: the hub did not answer and the allowance is spent.
    """
    if till.hub is None:
        return "standalone"
    try:
        # Value this till took in but has not pushed yet rides along, so the
        # hub can count it (a top-up spent at once); it is a push like any.
        records = _unsynced_touching(till, account)
        acked = till.hub.take_hold(hold_id, account, unit, amount, records=records)
        if records and acked > till.ledger.outbox_status().acked_seq:
            till.ledger.ack_outbox(acked)
        return "online"
    except InsufficientOnline as error:
        raise OnlineRefused(str(error)) from error
    except SyncError:
        pass
    till._offline.allow(session, member, worth)
    return "offline"


class OfflineUse:
    """What a till took offline: completed sales (in its file) and open sessions (in memory).

    Sessions live in the POS's memory, so their offline use does too; a
    restart ends them (and `Till` lets go of their holds).
    """

    def __init__(self, till: Till) -> None:
        self._till = till
        # session -> member, worth, local day, when its holds time out
        self._open: dict[str, tuple[str | None, int, str, datetime]] = {}

    def session_worth(self, session: str) -> int:
        found = self._open.get(session)
        return found[1] if found else 0

    def _live(self) -> dict[str, tuple[str | None, int, str, datetime]]:
        # A session the POS walked away from stops counting when its holds lapse.
        now = self._till.now()
        self._open = {k: v for k, v in self._open.items() if v[3] > now}
        return self._open

    def allow(self, session: str, member: str | None, worth: int) -> None:
        """Count `worth` more for this session, or refuse it.

        Raises:
            OfflineLimitReached: naming the limit that would be passed.
        """
        till = self._till
        limits = till.allowance
        now = till.now()
        since = last_good_sync(till)
        if since is not None and now - since > limits.max_time_offline:
            raise OfflineLimitReached("offline for too long: sync with the hub first")
        today = till.local_date(now).isoformat()
        mine = self.session_worth(session) + worth
        if mine > limits.per_transaction:
            raise OfflineLimitReached(
                f"offline, at most {limits.per_transaction} per transaction (this one: {mine})"
            )
        done_member, done_till, done_count = till._conn.execute(
            "SELECT coalesce(sum(CASE WHEN member = ? AND local_date = ? THEN amount END), 0),"
            " coalesce(sum(amount), 0), count(*) FROM till_offline WHERE synced = 0",
            (member, today),
        ).fetchone()
        others = [v for k, v in self._live().items() if k != session]
        open_member = sum(w for who, w, day, _ in others if who == member and day == today)
        if member is not None and done_member + open_member + mine > limits.per_member_per_day:
            raise OfflineLimitReached("offline, this member's allowance for today is spent")
        if done_till + sum(w for _, w, _, _ in others) + mine > limits.per_till_total:
            raise OfflineLimitReached("offline, this till's allowance is spent")
        if done_count + len(others) + 1 > limits.max_transactions:
            raise OfflineLimitReached("offline, too many transactions since the last sync")
        self._open[session] = (member, mine, today, now + till.policy.hold_timeout)

    def close(self, session: str) -> None:
        """The session ended (completed, and so recorded in the file, or cancelled)."""
        self._open.pop(session, None)


def _unsynced_touching(till: Till, account: str, most: int = 500) -> list[tuple[int, str]]:
    """The unacknowledged outbox, if any record of it moves `account` (else nothing)."""
    records = till.ledger.outbox(limit=most)
    if any(f'"{account}"' in record.payload for record in records):
        return [(record.seq, record.payload) for record in records]
    return []


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
