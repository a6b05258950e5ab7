# SPDX-License-Identifier: Apache-2.0
"""A store simulator: a hub, several tills, and a seeded, unreliable network between them.

Every till is a real `Till` on its own SQLite file; the hub is a real `Hub`.
The network drops requests and replies, delivers some twice, reorders and
splits batches, and partitions tills for a while; tills restart (closed and
reopened from their files). The same seed gives the same run. After
`heal()` every till syncs until its outbox is empty, and `check()` states
the invariants the property tests assert.
"""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loyaltysdk import Basket, Line, Money, Till
from loyaltysdk._errors import LoyaltyError, SyncError
from loyaltysdk.hub import Hub, SQLiteHubStore
from loyaltysdk.rules import load_rules
from loyaltysdk.sync import MOVING, DirectLink, PushResult, Snapshot, Syncer, Update
from loyaltysdk.till import TillPolicy
from loyaltysdk.vouchers import (
    IssuedVoucher,
    IssuerKey,
    Keyring,
    RedemptionPolicy,
    VoucherIssuer,
    VoucherTemplate,
)

RULES = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "points": {"expiry_days": 365},
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}


class LossyLink:
    """A `HubLink` through a bad network, decided by a seeded random generator."""

    def __init__(self, link: DirectLink, rng: random.Random, *, loss: float = 0.15) -> None:
        self.link = link
        self.rng = rng
        self.loss = loss
        self.partitioned = False
        self.sent = self.lost_requests = self.lost_replies = self.duplicated = 0

    def _maybe_drop(self) -> None:
        if self.partitioned:
            raise SyncError("partitioned")
        if self.rng.random() < self.loss:
            self.lost_requests += 1
            raise SyncError("request lost")

    def push(self, records: Sequence[tuple[int, str]]) -> PushResult:
        self._maybe_drop()
        batch = list(records)
        if len(batch) > 1 and self.rng.random() < self.loss:
            # Reordered, and split: the tail may arrive before the head.
            self.rng.shuffle(batch)
            cut = self.rng.randrange(1, len(batch))
            self.link.push(batch[cut:])
            batch = batch[:cut]
        result = self.link.push(batch)
        self.sent += 1
        if self.rng.random() < self.loss:
            self.duplicated += 1
            result = self.link.push(batch)
        if self.rng.random() < self.loss:
            self.lost_replies += 1
            raise SyncError("reply lost")
        return result

    def pull(self, after: int, limit: int = 500) -> list[Update]:
        self._maybe_drop()
        return self.link.pull(after, limit)

    def take_hold(
        self,
        hold_id: str,
        account: str,
        unit: str,
        amount: int,
        records: Sequence[tuple[int, str]] = (),
    ) -> int:
        self._maybe_drop()
        acked = self.link.take_hold(hold_id, account, unit, amount, records)
        if self.rng.random() < self.loss:
            self.lost_replies += 1
            raise SyncError("reply lost")
        return acked

    def release_hold(self, hold_id: str) -> None:
        self._maybe_drop()
        self.link.release_hold(hold_id)

    def snapshot(
        self,
        member: str | None = None,
        accounts: Sequence[str] = (),
        sun: tuple[str, int] | None = None,
    ) -> Snapshot:
        self._maybe_drop()
        return self.link.snapshot(member, accounts, sun)

    def push_events(self, events: Sequence[tuple[int, str, Any]]) -> int:
        self._maybe_drop()
        acked = self.link.push_events(events)
        if self.rng.random() < self.loss:
            self.lost_replies += 1
            raise SyncError("reply lost")
        return acked


class StoreSimulation:
    """One seeded store day across `tills` tills and a hub."""

    def __init__(
        self,
        seed: int,
        directory: Path,
        *,
        tills: int = 3,
        members: int = 12,
        hub: Hub | None = None,
        loss: float = 0.15,
    ) -> None:
        self.rng = random.Random(seed)
        self.directory = directory
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        self.hub = hub or Hub(SQLiteHubStore(directory / "hub.db"))
        self.members = [f"M-{m:03d}" for m in range(members)]
        self.issuer = IssuerKey.generate("HQ-1")
        self.till_ids = [f"S1-T{n}" for n in range(tills)]
        self.links: dict[str, LossyLink] = {}
        self.tills: dict[str, Till] = {}
        self.syncers: dict[str, Syncer] = {}
        self.restarts = 0
        for till_id in self.till_ids:
            credential = self.hub.register(till_id, self.hub.create_till(till_id))
            self.links[till_id] = LossyLink(
                DirectLink(self.hub, credential), random.Random(self.rng.random()), loss=loss
            )
            self._open(till_id, first=True)
        # Signed vouchers no till was told about: accepted offline, some at two tills.
        start = self.now
        template = VoucherTemplate("value", 300, "EUR", start, start + timedelta(days=30))
        self.vouchers: list[IssuedVoucher] = list(
            VoucherIssuer(self.issuer).issue_batch(template, 6)
        )

    def _clock(self) -> datetime:
        return self.now

    def _open(self, till_id: str, *, first: bool = False) -> None:
        till = Till.open(
            self.directory / f"{till_id}.db",
            store="S1",
            till_id=till_id,
            currency="EUR",
            timezone="Europe/Berlin",
            rules=load_rules(RULES),
            clock=self._clock,
            keyring=Keyring({"HQ-1": self.issuer.public_key}),
            policy=TillPolicy(vouchers=RedemptionPolicy(offline_max_value=1_000)),
        )
        if first:
            for member in self.members:
                till.enrol(member, pin="0000")
        self.tills[till_id] = till
        self.syncers[till_id] = Syncer(till, self.links[till_id], batch=7)

    # -- the day ------------------------------------------------------------------------

    def step(self, n: int) -> None:
        rng = self.rng
        self.now += timedelta(seconds=rng.randint(1, 30))
        till_id = rng.choice(self.till_ids)
        till = self.tills[till_id]
        member = rng.choice(self.members)
        roll = rng.random()
        try:
            if roll < 0.1:
                till.top_up(
                    member, Money(rng.randint(5, 50) * 100, "EUR"), payment_ref=f"{till_id}-P{n}"
                )
            elif roll < 0.15:
                link = self.links[till_id]
                link.partitioned = not link.partitioned
            elif roll < 0.18:
                self.restart(till_id)
            elif roll < 0.35:
                self.sync(till_id)
            else:
                self.sale(till, member, f"{till_id}-R{n}")
        except (LoyaltyError, SyncError):
            pass  # a refusal or a lost message: the day goes on

    def sale(self, till: Till, member: str, ref: str) -> None:
        rng = self.rng
        lines = [Line(f"SKU{rng.randint(1, 50)}", rng.randint(1, 3), rng.randint(50, 3_000))]
        sale = till.checkout(Basket("EUR", lines), till.identify(member))
        if rng.random() < 0.3:
            most = sale.quote().max_redeemable
            if most > 0:
                sale.redeem_points(rng.randint(1, most), pin="0000")
        if rng.random() < 0.2 and self.vouchers:
            voucher = rng.choice(self.vouchers)
            with contextlib.suppress(LoyaltyError):
                sale.apply_voucher(voucher.payload)
        wallet = till.wallet_available(member)
        if wallet and sale.due > 0 and rng.random() < 0.4:
            sale.pay_wallet(Money(min(wallet, sale.due), "EUR"))
        sale.complete(ref)
        if rng.random() < 0.1:
            till.refund(ref, {0: 1}, refund_ref=f"{ref}-F")

    def sync(self, till_id: str) -> None:
        with contextlib.suppress(SyncError):
            self.syncers[till_id].run_once()

    def restart(self, till_id: str) -> None:
        """The till process restarts: open sessions are gone, the file stays."""
        self.tills[till_id].close()
        self._open(till_id)
        self.restarts += 1

    def run(self, steps: int) -> None:
        for n in range(steps):
            self.step(n)

    def heal(self, *, rounds: int = 200) -> None:
        """The network heals; every till syncs until its outbox is empty."""
        for link in self.links.values():
            link.partitioned = False
            link.loss = 0.0
        for _ in range(rounds):
            waiting = 0
            for till_id in self.till_ids:
                self.sync(till_id)
                waiting += self.tills[till_id].ledger.outbox_status().length
            if not waiting:
                return
        raise AssertionError("outboxes did not drain after the network healed")

    # -- invariants ---------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """The invariants after `heal()`; raises AssertionError naming the first broken one."""
        hub = self.hub
        for till_id, till in self.tills.items():
            last = till.ledger.outbox_status().last_seq
            assert hub.entries(till_id) == last, (till_id, hub.entries(till_id), last)
            assert hub.cursor_of(till_id) == last
        totals = hub.unit_totals()
        assert all(total == 0 for total in totals.values()), totals
        folded: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for till in self.tills.values():
            for balance in till.ledger.balances():
                folded[balance.account][0] += balance.debits_posted
                folded[balance.account][1] += balance.credits_posted
        for account, (debits, credits) in folded.items():
            found = hub.balance(account)
            if debits == credits == 0:
                continue
            assert found is not None, account
            assert (found[1], found[2]) == (debits, credits), (account, found, debits, credits)
        exceptions = hub.exceptions()
        return {"exceptions": exceptions, "restarts": self.restarts, "moving": sorted(MOVING)}

    def close(self) -> None:
        for till in self.tills.values():
            till.close()
        self.hub.store.close()
