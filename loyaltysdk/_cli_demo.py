# SPDX-License-Identifier: Apache-2.0
"""``loyalty demo``: a simulated store day on the embedded SQLite default, through the Till API.

Members with identity cards and stored-value DESFire cards (simulated),
a voucher campaign, a few thousand checkouts with taps, points
redemptions, vouchers, card and wallet payments, top-ups, refunds, voids,
cards torn away mid-payment, and an hour without the hub during which
vouchers the till has never heard of are accepted offline within policy.
Everything goes through the public API; the file is left for inspection.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tqdm import tqdm

from . import Money
from ._errors import LoyaltyError
from .cards.keystore import KeyRole, SoftwareKeyStore
from .cards.purse import Purse
from .rules import Basket, Line, RuleSet, load_rules
from .simulators.desfire import VirtualDesfire
from .simulators.reader import VirtualReader
from .till import PaymentInterrupted, Till, TillPolicy
from .vouchers import (
    IssuedVoucher,
    IssuerKey,
    Keyring,
    RedemptionPolicy,
    VoucherIssuer,
    VoucherTemplate,
)

_OPEN = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
_CATEGORIES = ["bakery", "dairy", "coffee", "produce", "household", "electronics", "tobacco"]

#: The demo chain's rules (also used by bench/checkout.py).
DEMO_RULES: dict[str, Any] = {
    "schema": 1,
    "version": 1,
    "currency": "EUR",
    "rounding": "half_up",
    "points": {"expiry_days": 365},
    "exclude": {"categories": ["tobacco", "gift-card"]},
    "caps": {"per_receipt": 5_000},
    "tiers": {
        "window_days": 365,
        "review": "quarter",
        "levels": [
            {"name": "Silver", "min_spend": 0},
            {"name": "Gold", "min_spend": 50_000},
        ],
    },
    "rules": [
        {
            "id": "base",
            "description": "1 point per euro",
            "effect": {"type": "earn", "points": 1, "per": 100},
        },
        {
            "id": "coffee-x2",
            "description": "double points on coffee",
            "effect": {"type": "multiply", "factor": "2"},
            "what": {"categories": ["coffee"]},
        },
        {
            "id": "gold-x1.5",
            "description": "Gold: 1.5x points",
            "effect": {"type": "multiply", "factor": "1.5"},
            "who": {"tiers": ["Gold"]},
        },
        {
            "id": "morning",
            "description": "early bird bonus",
            "effect": {"type": "bonus", "points": 10, "per": "receipt"},
            "when": {"hours": ["08:00", "09:00"]},
        },
        {
            "id": "big-basket",
            "description": "basket over 50 euro",
            "effect": {"type": "basket_bonus", "threshold": 5_000, "points": 50},
        },
    ],
    "_categories": _CATEGORIES,
}


def demo_rules() -> RuleSet:
    """The demo chain's rules as a validated rule set."""
    return load_rules({k: v for k, v in DEMO_RULES.items() if not k.startswith("_")})


class _Clock:
    def __init__(self) -> None:
        self.now = _OPEN

    def __call__(self) -> datetime:
        return self.now


class _Day:
    """The demo's cast: a till, members, their cards, the campaign's vouchers."""

    def __init__(self, rng: random.Random, db_path: Path, members: int) -> None:
        self.rng = rng
        self.clock = _Clock()
        masters = {role: rng.randbytes(16) for role in KeyRole}
        self.keys = SoftwareKeyStore(masters, b"DEMO-CHAIN")
        self.issuer = IssuerKey("HQ-1", Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)))
        self.till = Till.open(
            db_path,
            store="S001",
            till_id="S001-T1",
            currency="EUR",
            timezone="Europe/Berlin",
            rules=demo_rules(),
            clock=self.clock,
            purse=Purse(self.keys, clock=lambda: self.clock.now.timestamp()),
            keyring=Keyring({"HQ-1": self.issuer.public_key}),
            policy=TillPolicy(vouchers=RedemptionPolicy(offline_max_value=1_000)),
        )
        self.reader = VirtualReader()
        self.ids = [f"M-{m:05d}" for m in range(members)]
        self.uids: dict[str, bytes] = {}
        self.cards: dict[str, VirtualDesfire] = {}
        self.catalog = [
            (f"SKU-{n:04d}", rng.choice(_CATEGORIES), rng.randint(49, 2_999)) for n in range(400)
        ]

    def enrol_everyone(self) -> None:
        till, rng = self.till, self.rng
        for member in tqdm(
            self.ids, desc="members and cards", unit="member", leave=False, disable=None
        ):
            uid = bytes([4]) + rng.randbytes(6)
            purse = rng.random() < 0.3
            tier = "Gold" if rng.random() < 0.1 else "Silver"
            till.enrol(member, card_uid=uid, card_kind="purse" if purse else "identity", tier=tier)
            self.uids[member] = uid
            if purse:
                card = VirtualDesfire(uid)
                self.tap(card)
                till.purse.issue(self.reader.connect(), uid)  # type: ignore[union-attr]
                till.top_up_card(
                    self.reader.connect(), uid, Money(2_000, "EUR"), payment_ref=f"card-{member}"
                )
                self.cards[member] = card

    def tap(self, card: VirtualDesfire) -> None:
        if self.reader.card is not card:
            self.reader.insert(card)

    def campaign(self, count: int, *, register: bool) -> list[IssuedVoucher]:
        start = self.clock.now
        template = VoucherTemplate(
            "value", 500, "EUR", start, start + timedelta(days=30), min_spend=2_000, campaign="XMAS"
        )
        vouchers = list(VoucherIssuer(self.issuer).issue_batch(template, count))
        if register:
            for voucher in vouchers:
                self.till.vouchers.register(voucher.terms)
        return vouchers


@click.command("demo")
@click.option("--seed", default=1, show_default=True, help="Same seed, same day.")
@click.option("--receipts", default=3000, show_default=True, help="Receipts to ring up.")
@click.option("--members", default=400, show_default=True, help="Loyalty members.")
@click.option(
    "--db",
    "db_path",
    default="loyalty-demo.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Till file to create (replaced if it exists).",
)
def demo(seed: int, receipts: int, members: int, db_path: Path) -> None:
    """Run a simulated store day through the checkout API and summarise it."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    rng = random.Random(seed)
    day = _Day(rng, db_path, members)
    day.enrol_everyone()
    online_vouchers = day.campaign(max(10, receipts // 20), register=True)
    offline_vouchers = day.campaign(max(5, receipts // 100), register=False)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(members)]
    outcomes: Counter[str] = Counter()
    spend: Counter[str] = Counter()
    completed: list[str] = []
    till = day.till
    for n in tqdm(range(receipts), desc="store day", unit="receipt", leave=False, disable=None):
        day.clock.now += timedelta(seconds=rng.randint(5, 15))
        offline = 0.4 <= n / receipts < 0.5  # an hour without the hub
        try:
            _one_receipt(
                day,
                n,
                weights,
                offline,
                online_vouchers,
                offline_vouchers,
                outcomes,
                spend,
                completed,
            )
        except LoyaltyError as error:
            outcomes[f"refused: {type(error).__name__}"] += 1
    day.clock.now += timedelta(hours=12)  # the nightly run
    outcomes["holds expired overnight"] += len(till.ledger.expire())
    outcomes["pending points released"] += till.release_pending_points()
    till.ledger.check()
    _summary(day, outcomes, spend, db_path)
    till.close()


def _one_receipt(
    day: _Day,
    n: int,
    weights: list[float],
    offline: bool,
    online_vouchers: list[IssuedVoucher],
    offline_vouchers: list[IssuedVoucher],
    outcomes: Counter[str],
    spend: Counter[str],
    completed: list[str],
) -> None:
    till, rng = day.till, day.rng
    ref = f"S001-T1-{n:06d}"
    member = rng.choices(day.ids, weights)[0] if rng.random() < 0.8 else None
    roll = rng.random()
    if member and roll < 0.05:  # a top-up, in cash
        if member in day.cards and rng.random() < 0.5:
            day.tap(day.cards[member])
            till.top_up_card(
                day.reader.connect(), day.uids[member], Money(2_000, "EUR"), payment_ref=ref
            )
            outcomes["card top-ups"] += 1
        else:
            till.top_up(member, Money(rng.choice([1_000, 2_000, 5_000]), "EUR"), payment_ref=ref)
            outcomes["wallet top-ups"] += 1
        return
    if completed and roll > 0.98:  # a return of one line, or a void of today's receipt
        original = rng.choice(completed)
        if rng.random() < 0.25:
            till.void(original)
            completed.remove(original)
            outcomes["voids"] += 1
        else:
            till.refund(original, {0: 1}, refund_ref=f"{ref}-refund")
            outcomes["refunds"] += 1
        return
    lines = [
        Line(sku, rng.randint(1, 3), price, category=category)
        for sku, category, price in rng.sample(day.catalog, rng.randint(1, 12))
    ]
    identity = None
    if member:
        if rng.random() < 0.9:  # tapped
            card = day.cards.get(member)
            if card is not None:
                day.tap(card)
            identity = till.identify(day.uids[member])
        else:
            identity = till.identify(member)  # typed member number
    sale = till.checkout(Basket("EUR", lines), identity)
    quote = sale.quote()
    if identity and identity.present and quote.max_redeemable >= 100 and rng.random() < 0.15:
        sale.redeem_points(rng.randint(100, quote.max_redeemable))
        outcomes["points redemptions"] += 1
    if rng.random() < 0.08:
        pool = offline_vouchers if offline else online_vouchers
        if pool:
            voucher = pool.pop(rng.randrange(len(pool)))
            try:
                use = sale.apply_voucher(voucher.payload)
                outcomes["vouchers used offline" if use.offline else "vouchers used"] += 1
            except LoyaltyError as error:
                outcomes[f"vouchers refused: {type(error).__name__}"] += 1
    transport = None
    if member in day.cards and sale.due and rng.random() < 0.3:
        balance = dict(till.balance(member).cards).get(day.uids[member].hex().upper())
        amount = min(balance, sale.due) if balance is not None else None
        if amount:
            sale.pay_card(day.uids[member], amount)
            card = day.cards[member]
            day.tap(card)
            transport = day.reader.connect()
            if rng.random() < 0.05:  # pulled away too early
                card.faults.tear_before = card.apdu_count + rng.randint(0, 6)
    elif member and sale.due and rng.random() < 0.2:
        available = till.wallet_available(member)
        if available.minor > 0:
            sale.pay_wallet(min(available, sale.due))
    try:
        receipt = sale.complete(ref, card=transport)
    except PaymentInterrupted:
        outcomes["card payments torn, finished at the next tap"] += 1
        assert member is not None
        day.tap(day.cards[member])
        receipt = sale.complete(ref, card=day.reader.connect())
    outcomes["receipts"] += 1
    if receipt.card_paid:
        outcomes["paid with card value"] += 1
    if member:
        spend[member] += receipt.total.minor
    completed.append(ref)


def _summary(day: _Day, outcomes: Counter[str], spend: Counter[str], db_path: Path) -> None:
    till = day.till
    ledger = till.ledger

    def minor(account: str) -> int:
        amount = ledger.balance(account).posted
        return amount.minor if isinstance(amount, Money) else amount.value

    balances = ledger.balances()
    wallets = sum(
        till._minor(b.posted)
        for b in balances
        if ":wallet:" in b.account and b.account.startswith("member:")
    )
    cards = sum(till._minor(b.posted) for b in balances if b.account.startswith("card:"))
    vouchers_paid = sum(
        till._minor(b.posted) for b in balances if b.account == "sys:vouchers:tender:EUR"
    )
    click.echo("Store S001, till T1: the day in numbers")
    for name, count in sorted(outcomes.items()):
        click.echo(f"  {name:<46}{count:>10}")
    click.echo(f"  {'points issued':<46}{-minor('sys:points:issued'):>10}")
    click.echo(f"  {'points redeemed':<46}{minor('sys:points:redeemed'):>10}")
    click.echo(f"  {'stored value float (wallets)':<46}{Money(wallets, 'EUR')!s:>14}")
    click.echo(f"  {'stored value float (cards)':<46}{Money(cards, 'EUR')!s:>14}")
    click.echo(f"  {'paid with vouchers':<46}{Money(vouchers_paid, 'EUR')!s:>14}")
    status = ledger.outbox_status()
    click.echo(f"  {'outbox waiting for the hub':<46}{status.length:>10}")
    click.echo("  top members by spend:")
    for member, total in spend.most_common(5):
        click.echo(f"    {member}  {Money(total, 'EUR')!s:>14}")
    click.echo(f"ledger check: ok. Inspect it with: loyalty ledger balance {db_path}")
