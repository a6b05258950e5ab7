# SPDX-License-Identifier: Apache-2.0
"""A chain simulator: a hub, a till in each of several stores, and a seeded, unreliable network.

Every till is a real `Till` on its own SQLite file, in a chain (its hub link
goes through the bad network); the hub is a real `Hub`. Members shop at any
store, online and offline: they earn and redeem points, top up and spend
their wallets, pay with stored-value cards loaded at another store, have
cards replaced, buy gift cards at one till and spend them at others, spend
head office's vouchers, and tap NTAG 424 tags whose URLs are sometimes
replayed at another store. The network drops requests and replies, delivers
some twice, reorders and splits batches, and partitions tills for a while;
tills restart. The same seed gives the same run.

A reference model keeps what every account should hold from what the tills
answered (receipts, refunds, top-ups) and what every chip holds. After
`heal()`, `check()` asserts the chain's invariants and returns the report.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loyaltysdk import Basket, Line, Money, Receipt, Refund, Till
from loyaltysdk._errors import CardError, HubUnreachable, LoyaltyError, SyncError
from loyaltysdk.cards.keystore import SoftwareKeyStore
from loyaltysdk.cards.ntag424 import MemoryCounterStore, SunVerifier, read_sun_url
from loyaltysdk.cards.purse import Purse
from loyaltysdk.hub import Hub, HubStore, SQLiteHubStore
from loyaltysdk.rules import load_rules
from loyaltysdk.simulators.desfire import VirtualDesfire
from loyaltysdk.simulators.ntag424 import VirtualNtag424
from loyaltysdk.simulators.reader import VirtualReader
from loyaltysdk.sync import DirectLink, PushResult, Snapshot, Syncer, Update, UpdateKind
from loyaltysdk.till import OfflineAllowance, TillPolicy
from loyaltysdk.vouchers import (
    IssuedVoucher,
    IssuerKey,
    Keyring,
    RedemptionPolicy,
    VoucherIssuer,
    VoucherTemplate,
)

EUR = "EUR"
RULES = {
    "schema": 1,
    "version": 1,
    "currency": EUR,
    "points": {"expiry_days": 365},
    "exclude": {"categories": ["gift-card"]},
    "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
}
META_KEY, FILE_KEY = b"M" * 16, b"F" * 16


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
            raise HubUnreachable("partitioned")
        if self.rng.random() < self.loss:
            self.lost_requests += 1
            raise HubUnreachable("request lost")

    def _maybe_lose_reply(self) -> None:
        if self.rng.random() < self.loss:
            self.lost_replies += 1
            raise HubUnreachable("reply lost")

    def push(self, records: Sequence[tuple[int, str]], *, head: int | None = None) -> PushResult:
        self._maybe_drop()
        batch = list(records)
        if len(batch) > 1 and self.rng.random() < self.loss:
            # Reordered, and split: the tail may arrive before the head.
            self.rng.shuffle(batch)
            cut = self.rng.randrange(1, len(batch))
            self.link.push(batch[cut:], head=head)
            batch = batch[:cut]
        result = self.link.push(batch, head=head)
        self.sent += 1
        if self.rng.random() < self.loss:
            self.duplicated += 1
            result = self.link.push(batch, head=head)
        self._maybe_lose_reply()
        return result

    def push_events(self, events: Sequence[tuple[int, str, Any]]) -> int:
        self._maybe_drop()
        acked = self.link.push_events(events)
        self._maybe_lose_reply()
        return acked

    def pull(self, after: int, limit: int = 500) -> list[Update]:
        self._maybe_drop()
        return self.link.pull(after, limit)

    def update_key(self) -> bytes | None:
        return self.link.update_key()

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
        self._maybe_lose_reply()
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


class StoreSimulation:
    """One seeded day of a chain: `stores` stores with a till each, and a hub."""

    def __init__(
        self,
        seed: int,
        directory: Path,
        *,
        tills: int = 3,
        members: int = 12,
        store: HubStore | None = None,
        loss: float = 0.15,
    ) -> None:
        self.rng = random.Random(seed)
        self.directory = directory
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        # The hub keeps the simulation's time (hold timeouts, breakage).
        self.hub = Hub(store or SQLiteHubStore(directory / "hub.db"), clock=self._epoch)
        self.members = [f"M-{m:03d}" for m in range(members)]
        self.issuer = IssuerKey.generate("HQ-1")
        self.keystore = SoftwareKeyStore.generate(b"SIM-CHAIN")
        self.till_ids = [f"S{n + 1}-T1" for n in range(tills)]
        self.links: dict[str, LossyLink] = {}
        self.tills: dict[str, Till] = {}
        self.syncers: dict[str, Syncer] = {}
        self.restarts = 0
        self.reader = VirtualReader()
        # The reference model: what each account should hold, from the tills' answers.
        self.model: dict[str, int] = defaultdict(int)
        self.offline_use: set[str] = set()  # accounts some till spent from offline
        self.cards: dict[str, VirtualDesfire] = {}  # live stored-value card per member
        self.old_cards: list[str] = []
        self.tags: dict[str, VirtualNtag424] = {}
        self.taps: list[str] = []  # SUN URLs already read, for replays
        self.replays_refused = 0
        #: What happened, by kind, so tests can show the day was not vacuous.
        self.seen: Counter[str] = Counter()
        self.loaded_at: dict[str, str] = {}  # card UID -> the till that last loaded it
        self.sold_at: dict[str, str] = {}  # gift card code -> the till that sold it
        for till_id in self.till_ids:
            credential = self.hub.register(till_id, self.hub.create_till(till_id))
            self.links[till_id] = LossyLink(
                DirectLink(self.hub, credential), random.Random(self.rng.random()), loss=loss
            )
            self._open(till_id)
        start = self.now
        # Head office's vouchers, funded once at the hub; gift cards sold at tills.
        template = VoucherTemplate("value", 1_500, EUR, start, start + timedelta(days=30))
        self.vouchers: list[IssuedVoucher] = list(
            VoucherIssuer(self.issuer).issue_batch(template, 4)
        )
        gift = VoucherTemplate(
            "value", 2_000, EUR, start, start + timedelta(days=90), mode="partial"
        )
        self.gift_cards = list(VoucherIssuer(self.issuer).issue_batch(gift, 6))
        self.sold: list[IssuedVoucher] = []
        self._setup()

    def _epoch(self) -> float:
        return self.now.timestamp()

    def _clock(self) -> datetime:
        return self.now

    def _open(self, till_id: str) -> None:
        till = Till.open(
            self.directory / f"{till_id}.db",
            store=till_id.split("-")[0],
            till_id=till_id,
            currency=EUR,
            timezone="Europe/Berlin",
            rules=load_rules(RULES),
            clock=self._clock,
            keyring=Keyring({"HQ-1": self.issuer.public_key}),
            purse=Purse(self.keystore, clock=self._epoch),
            sun=SunVerifier(META_KEY, FILE_KEY, MemoryCounterStore()),
            hub=self.links[till_id],
            allowance=OfflineAllowance(per_transaction=4_000, per_member_per_day=6_000),
            policy=TillPolicy(
                vouchers=RedemptionPolicy(offline_max_value=2_000),
                presence_for_redemption=False,
            ),
        )
        self.tills[till_id] = till
        self.syncers[till_id] = Syncer(till, self.links[till_id], batch=7)

    def _setup(self) -> None:
        """Head office enrols the members (some with cards or tags) and publishes its vouchers."""
        members = []
        for n, member in enumerate(self.members):
            cards = []
            if n % 3 == 0:
                uid = bytes.fromhex(f"04CA{n:010X}")
                self.cards[member] = VirtualDesfire(uid)
                cards.append({"uid": uid.hex().upper(), "kind": "purse"})
            if n % 4 == 1:
                tag = VirtualNtag424(
                    bytes.fromhex(f"04DA{n:010X}"), meta_read_key=META_KEY, file_read_key=FILE_KEY
                )
                self.tags[member] = tag
                cards.append({"uid": tag.uid.hex().upper(), "kind": "identity"})
            members.append({"id": member, "cards": cards})
        self.hub.publish(UpdateKind.MEMBERS, {"members": members})
        self.hub.publish(UpdateKind.VOUCHERS, {"terms": [v.terms.to_json() for v in self.vouchers]})
        for voucher in self.vouchers:
            self.model[f"voucher:{voucher.terms.code}"] += voucher.terms.amount
        losses = {till_id: link.loss for till_id, link in self.links.items()}
        for till_id in self.till_ids:  # the network is good before the day starts
            self.links[till_id].loss = 0.0
            self.syncers[till_id].run_once()
        first = self.tills[self.till_ids[0]]
        for member, card in self.cards.items():
            first.issue_card(self._present(card), card.uid, member)
        for till_id, loss in losses.items():
            self.links[till_id].loss = loss

    def _present(self, card: Any) -> Any:
        self.reader.insert(card)
        return self.reader.connect()

    # -- the day ------------------------------------------------------------------------

    def step(self, n: int) -> None:
        rng = self.rng
        self.now += timedelta(seconds=rng.randint(1, 30))
        till_id = rng.choice(self.till_ids)
        till = self.tills[till_id]
        member = rng.choice(self.members)
        roll = rng.random()
        try:
            if roll < 0.08:
                amount = rng.randint(5, 50) * 100
                till.top_up(member, Money(amount, EUR), payment_ref=f"{till_id}-P{n}")
                self.model[till.wallet_account(member)] += amount
            elif roll < 0.13 and member in self.cards:
                self.load_card(till, member, f"{till_id}-L{n}")
            elif roll < 0.16 and member in self.cards:
                if self.rng.random() < 0.4:  # reported lost first: hotlisted, then replaced
                    till.block_card(self.cards[member].uid, reason="lost")
                    self.seen["card blocked"] += 1
                self.replace_card(till, member)
            elif roll < 0.22 and member in self.tags:
                self.tap(till, member)
            elif roll < 0.27:
                link = self.links[till_id]
                link.partitioned = not link.partitioned
            elif roll < 0.30:
                self.restart(till_id)
            elif roll < 0.45:
                self.sync(till_id)
            else:
                self.sale(till, member, f"{till_id}-R{n}")
        except (LoyaltyError, SyncError):
            pass  # a refusal or a lost message: the day goes on

    def load_card(self, till: Till, member: str, ref: str) -> None:
        card = self.cards[member]
        amount = self.rng.randint(5, 30) * 100
        till.top_up_card(self._present(card), card.uid, Money(amount, EUR), payment_ref=ref)
        self.loaded_at[card.uid.hex().upper()] = till.till_id

    def replace_card(self, till: Till, member: str) -> None:
        old = self.cards[member]
        new = VirtualDesfire(bytes.fromhex(f"05{self.rng.getrandbits(48):012X}"))
        onto_card = self.rng.random() < 0.5
        transport = None
        if onto_card:
            till.issue_card(self._present(new), new.uid, member)
            transport = self._present(new)
        aid = till.purse.layout.aid  # type: ignore[union-attr]
        on_chip = old.value_of(aid, 1) if old.apps else 0
        moved = till.replace_card(old.uid, new.uid, transport=transport).minor
        # The member keeps what the lost chip held: what this till moved (to
        # the new card or the wallet), and what the hub finds left on the old
        # card once it knows everything (it moves that to the wallet).
        wallet = till.wallet_account(member)
        self.model[wallet] += (0 if onto_card else moved) + max(0, on_chip - moved)
        self.cards[member] = new
        self.old_cards.append(old.uid.hex().upper())

    def tap(self, till: Till, member: str) -> None:
        if self.taps and self.rng.random() < 0.4:
            url = self.rng.choice(self.taps)  # a URL copied and replayed at this store
            try:
                till.identify(url)
                self.seen["replay accepted offline"] += 1
            except LoyaltyError:
                self.replays_refused += 1
                self.seen["replay refused"] += 1
            return
        url = read_sun_url(self._present(self.tags[member]))
        self.taps.append(url)
        till.identify(url)

    def sale(self, till: Till, member: str, ref: str) -> None:
        rng = self.rng
        lines = [Line(f"SKU{rng.randint(1, 50)}", rng.randint(1, 3), rng.randint(50, 3_000))]
        selling = None
        if rng.random() < 0.15 and len(self.sold) < len(self.gift_cards):
            selling = self.gift_cards[len(self.sold)]
            lines.append(Line("GIFT", 1, 2_000, category="gift-card", reference=selling.terms.code))
        sale = till.checkout(Basket(EUR, lines), till.identify(member))
        try:
            receipt = self._pay_and_complete(till, sale, member, ref)
        except (LoyaltyError, SyncError, CardError):
            sale.cancel()  # what the session held is let go, here and at the hub
            raise
        if selling is not None:
            self.sold.append(selling)
            self.sold_at[selling.terms.code] = till.till_id
        self._book_sale(till, receipt)
        self.seen[f"{receipt.mode} sale"] += 1
        if receipt.card_uid and self.loaded_at.get(receipt.card_uid, till.till_id) != till.till_id:
            self.seen["card paid at another store than it was loaded"] += 1
        for use in receipt.vouchers:
            if self.sold_at.get(use.code, till.till_id) != till.till_id:
                self.seen["gift card spent at another store"] += 1
        if rng.random() < 0.1:
            result = till.refund(ref, {0: 1}, refund_ref=f"{ref}-F")
            self._book_refund(till, receipt, result)

    def _pay_and_complete(self, till: Till, sale: Any, member: str, ref: str) -> Any:
        rng = self.rng
        if rng.random() < 0.3:
            most = sale.quote().max_redeemable
            if most > 0:
                sale.redeem_points(rng.randint(1, most))
        if rng.random() < 0.3:
            spendable = self.vouchers + self.sold
            if spendable:
                with contextlib.suppress(LoyaltyError, SyncError):
                    sale.apply_voucher(rng.choice(spendable).payload)
        wallet = till.wallet_available(member)
        if wallet.minor > 0 and sale.due.minor > 0 and rng.random() < 0.4:
            sale.pay_wallet(min(wallet, sale.due, Money(2_000, EUR)))
        card = self.cards.get(member)
        if card is not None and sale.due.minor > 0 and rng.random() < 0.5:
            on_chip = card.value_of(till.purse.layout.aid, 1) if card.apps else 0  # type: ignore[union-attr]
            if on_chip:
                sale.pay_card(card.uid, Money(min(on_chip, sale.due.minor), EUR))
        return sale.complete(ref, card=self._present(card) if card is not None else None)

    def _book_sale(self, till: Till, receipt: Receipt) -> None:
        member = receipt.member
        offline = receipt.mode == "offline"
        if member:
            points = till.points_account(member)
            self.model[points] += receipt.points_earned - receipt.points_redeemed
            self.model[till.wallet_account(member)] -= receipt.wallet_paid.minor
            if offline and (receipt.points_redeemed or receipt.wallet_paid):
                self.offline_use |= {points, till.wallet_account(member)}
        for use in receipt.vouchers:
            account = f"voucher:{use.code}"
            # What the redemption took off the voucher: its amount, and for a
            # single-use voucher the rest it forfeited, as the till saw it.
            key = f"voucher:{use.code}:{receipt.ref}" if use.partial else account
            entry = till.ledger.transaction(key)
            assert entry is not None, key
            self.model[account] -= sum(
                p.amount.minor
                for p in entry.postings
                if p.account == account and p.side.value == "D"
            )
            if offline or use.offline:
                self.offline_use.add(account)
        plan, _, _, _ = till._receipt_row(receipt.ref)
        for line in plan["lines"]:
            if line[3] == "gift-card":
                self.model[f"voucher:{line[6]}"] += line[1] * line[2] - line[5]

    def _book_refund(self, till: Till, receipt: Receipt, result: Refund) -> None:
        member = receipt.member
        if member:
            points = till.points_account(member)
            self.model[points] += result.points_reinstated - result.points_clawed_back
            self.model[till.wallet_account(member)] += result.wallet_credited.minor
        for use in receipt.vouchers:  # at most one voucher a sale here
            self.model[f"voucher:{use.code}"] += result.vouchers_reinstated.minor

    def sync(self, till_id: str) -> None:
        with contextlib.suppress(SyncError):
            self.syncers[till_id].run_once()

    def restart(self, till_id: str) -> None:
        """The till process restarts: open sessions are gone, the file stays."""
        self.tills[till_id].close()
        self._open(till_id)
        self.restarts += 1

    def play_each_once(self) -> None:
        """Each cross-store flow once, on a good network, so a day surely has them all."""
        one, two = (self.tills[t] for t in self.till_ids[:2])
        carded = next(m for m in self.members if m in self.cards)
        tagged = next(m for m in self.members if m in self.tags)
        losses = {t: link.loss for t, link in self.links.items()}
        for link in self.links.values():
            link.loss = 0.0
        self.load_card(one, carded, "PLAY-L1")
        self.sync(one.till_id)
        gift = self.gift_cards[len(self.sold)]
        sold = one.checkout(
            Basket(EUR, [Line("GIFT", 1, 2_000, category="gift-card", reference=gift.terms.code)]),
            one.identify(carded),
        ).complete("PLAY-R1")
        self.sold.append(gift)
        self.sold_at[gift.terms.code] = one.till_id
        self._book_sale(one, sold)
        self.sync(one.till_id)
        sale = two.checkout(Basket(EUR, [Line("X", 1, 2_500)]), two.identify(carded))
        sale.apply_voucher(gift.payload)
        card = self.cards[carded]
        sale.pay_card(card.uid, min(Money(500, EUR), sale.due))
        receipt = sale.complete("PLAY-R2", card=self._present(card))
        self._book_sale(two, receipt)
        self.seen["card paid at another store than it was loaded"] += 1
        self.seen["gift card spent at another store"] += 1
        self.tap(one, tagged)
        try:
            two.identify(self.taps[-1])
        except LoyaltyError:
            self.seen["replay refused"] += 1
        for till_id, loss in losses.items():
            self.links[till_id].loss = loss

    def run(self, steps: int) -> None:
        for n in range(steps):
            self.step(n)

    def heal(self, *, rounds: int = 200) -> None:
        """The network heals; every till syncs until its outbox and events are sent."""
        for link in self.links.values():
            link.partitioned = False
            link.loss = 0.0
        for _ in range(rounds):
            waiting = 0
            for till_id in self.till_ids:
                self.sync(till_id)
                till = self.tills[till_id]
                waiting += till.ledger.outbox_status().length + len(till.unsent_events())
            if not waiting:
                return
        raise AssertionError("outboxes did not drain after the network healed")

    # -- invariants ---------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """The chain's invariants after `heal()`; an AssertionError names the first broken one."""
        hub = self.hub
        for till_id, till in self.tills.items():
            last = till.ledger.outbox_status().last_seq
            assert hub.entries(till_id) == last, (till_id, hub.entries(till_id), last)
            assert hub.cursor_of(till_id) == last
            assert till.pending_card_intents() == [], till.pending_card_intents()
        totals = hub.unit_totals()
        assert all(total == 0 for total in totals.values()), totals
        # Every member's and voucher's account at the hub is what the tills' answers say.
        for account, expected in sorted(self.model.items()):
            found = hub.balance(account)
            held = 0 if found is None else found[2] - found[1]
            assert held == expected, (account, held, expected)
        # Every live chip equals its shadow at the hub; a replaced card's shadow is empty.
        aid = self.tills[self.till_ids[0]].purse.layout.aid  # type: ignore[union-attr]
        for card in self.cards.values():
            if not card.apps:
                continue
            found = hub.balance(f"card:{card.uid.hex().upper()}:{EUR}")
            shadow = 0 if found is None else found[2] - found[1]
            assert shadow == card.value_of(aid, 1), (card.uid.hex(), shadow)
        exceptions = hub.exceptions()
        overdrafts: dict[str, int] = defaultdict(int)
        for exception in exceptions:
            if exception["kind"] == "overdraft":
                overdrafts[exception["account"]] += exception["amount"]
        for uid in self.old_cards:
            # Its value moved on; a till that moved it offline, from an old
            # figure, moved too much: that is an overdraft on the old card.
            found = hub.balance(f"card:{uid}:{EUR}")
            left = 0 if found is None else found[2] - found[1]
            assert left == 0 or overdrafts[f"card:{uid}:{EUR}"] > 0, (uid, found)
        # What only online tills spent was never overspent (the hub held it first) ...
        for account in overdrafts:
            assert account in self.offline_use or account.startswith("card:"), (account, overdrafts)
        # ... and every overspend that remains is an exception with at least its amount.
        for account in self.model:
            found = hub.balance(account)
            deficit = 0 if found is None else found[1] - found[2]
            if deficit > 0:
                assert overdrafts[account] >= deficit, (account, deficit, overdrafts[account])
        return {
            "exceptions": exceptions,
            "restarts": self.restarts,
            "replays_refused": self.replays_refused,
            "sold": len(self.sold),
            "seen": dict(self.seen),
        }

    def close(self) -> None:
        for till in self.tills.values():
            till.close()
