# SPDX-License-Identifier: Apache-2.0
"""Online first, offline within the allowance; the POS sees which mode applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loyaltysdk import Basket, Line, Money, Till, load_rules
from loyaltysdk._errors import SyncError
from loyaltysdk.hub import Hub
from loyaltysdk.sync import DirectLink, Syncer
from loyaltysdk.till import OfflineAllowance, OfflineLimitReached, OnlineRefused

RULES = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}


class Switch(DirectLink):
    """A link whose network can be cut."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise SyncError("no network")

    def push(self, records: Any, *, head: int | None = None) -> Any:
        self._check()
        return super().push(records, head=head)

    def pull(self, after: int, limit: int = 500) -> Any:
        self._check()
        return super().pull(after, limit)

    def take_hold(self, *args: Any, **kwargs: Any) -> int:
        self._check()
        return super().take_hold(*args, **kwargs)

    def release_hold(self, hold_id: str) -> None:
        self._check()
        super().release_hold(hold_id)


class Clock:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def open_till(
    path: Path, hub: Hub, till_id: str, clock: Clock, allowance: OfflineAllowance
) -> tuple[Till, Switch]:
    link = Switch(hub, hub.register(till_id, hub.create_till(till_id)))
    till = Till.open(
        path,
        store="S1",
        till_id=till_id,
        currency="EUR",
        timezone="Europe/Berlin",
        rules=load_rules(RULES),
        hub=link,
        allowance=allowance,
        clock=clock,
    )
    till.enrol("M1")
    return till, link


def sale(till: Till, amount: int = 1_000) -> Any:
    return till.checkout(Basket("EUR", [Line("A", 1, amount)]), till.identify("M1"))


def test_modes_and_allowances(hub: Hub, tmp_path: Path) -> None:
    clock = Clock()
    limits = OfflineAllowance(
        per_transaction=800,
        per_member_per_day=1_000,
        per_till_total=5_000,
        max_transactions=10,
        max_time_offline=timedelta(hours=1),
    )
    till, link = open_till(tmp_path / "a.db", hub, "A", clock, limits)
    till.top_up("M1", Money(5_000, "EUR"), payment_ref="P1")
    online = sale(till)
    online.pay_wallet(Money(1_000, "EUR"))  # covered by the unsynced top-up
    receipt = online.complete("R-1")
    assert receipt.mode == "online" and online.quote().mode == "online"
    Syncer(till, link).run_once()
    link.down = True
    offline = sale(till)
    with pytest.raises(OfflineLimitReached):
        offline.pay_wallet(Money(900, "EUR"))  # above the per-transaction limit
    offline.pay_wallet(Money(700, "EUR"))
    assert offline.complete("R-2").mode == "offline"
    second = sale(till)
    with pytest.raises(OfflineLimitReached):
        second.pay_wallet(Money(400, "EUR"))  # the member's day is spent (700 + 400 > 1,000)
    second.cancel()
    clock.now += timedelta(hours=2)
    with pytest.raises(OfflineLimitReached):
        sale(till).pay_wallet(Money(100, "EUR"))  # offline for too long
    link.down = False
    Syncer(till, link).run_once()  # back online: the allowance starts again
    assert sale(till).pay_wallet(Money(500, "EUR")).mode == "online"
    till.close()


def test_the_hub_refuses_value_spent_elsewhere(hub: Hub, tmp_path: Path) -> None:
    clock = Clock()
    till, link = open_till(tmp_path / "a.db", hub, "A", clock, OfflineAllowance())
    till.top_up("M1", Money(1_000, "EUR"), payment_ref="P1")
    Syncer(till, link).run_once()
    # Another till holds most of this member's online balance.
    other = hub.register("B", hub.create_till("B"))
    hub.take_hold("B", "b-hold", "member:M1:wallet:EUR", "EUR", 900)
    with pytest.raises(OnlineRefused):
        sale(till).pay_wallet(Money(500, "EUR"))
    assert other
    till.close()
