# SPDX-License-Identifier: Apache-2.0
"""``loyalty demo``: a simulated store day on the embedded SQLite ledger.

Until the checkout API lands this drives the ledger directly, the way a
till will: purchases that earn points, wallet top-ups and payments, points
redemptions as holds that are posted or abandoned, refunds as reversals,
and the nightly expiry run. Everything goes through the public API.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from tqdm import tqdm

from . import Money, Points
from .ledger import (
    Account,
    AccountFlags,
    InsufficientFunds,
    Kind,
    Ledger,
    NotReversible,
    Posting,
)

_LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
_OPEN = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
_POINTS_SYSTEM = ("issued", "redeemed", "breakage")
_MONEY_SYSTEM = ("sales", "float", "tender")


class _DemoClock:
    def __init__(self) -> None:
        self.now = _OPEN

    def __call__(self) -> datetime:
        return self.now


def _chart(ledger: Ledger, members: int) -> None:
    system = [Account(f"sys:points:{name}", "PTS", AccountFlags.NONE) for name in _POINTS_SYSTEM]
    system += [Account(f"sys:{name}:EUR", "EUR", AccountFlags.NONE) for name in _MONEY_SYSTEM]
    enrolled = []
    for m in range(members):
        enrolled.append(
            Account(f"member:M-{m:05d}:points", "PTS", _LIMITED, True, "sys:points:breakage")
        )
        enrolled.append(Account(f"member:M-{m:05d}:wallet:EUR", "EUR", _LIMITED))
    ledger.open_accounts(system + enrolled)


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
    help="Ledger file to create (replaced if it exists).",
)
def demo(seed: int, receipts: int, members: int, db_path: Path) -> None:
    """Run a simulated store day on the embedded SQLite ledger and summarise it."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    rng = random.Random(seed)
    clock = _DemoClock()
    ledger = Ledger.open(db_path, origin="S001-T1", clock=clock)
    _chart(ledger, members)
    # A few members bring most of the revenue, as in real programmes.
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(members)]
    ids = [f"M-{m:05d}" for m in range(members)]
    outcomes: Counter[str] = Counter()
    spend: Counter[str] = Counter()
    paid_receipts: list[str] = []

    for n in tqdm(range(receipts), desc="store day", unit="receipt", leave=False, disable=None):
        clock.now += timedelta(seconds=rng.randint(5, 20))
        member = rng.choices(ids, weights)[0]
        points, wallet = f"member:{member}:points", f"member:{member}:wallet:EUR"
        receipt = f"S001-T1-{n:06d}"
        roll = rng.random()
        if roll < 0.08:  # top-up of stored value, paid in cash or by card
            amount = Money(rng.choice([1000, 2000, 5000]), "EUR")
            ledger.transfer(
                receipt,
                [Posting.debit("sys:float:EUR", amount), Posting.credit(wallet, amount)],
                memo="top-up",
            )
            outcomes["top-ups"] += 1
            continue
        total = Money(rng.randint(150, 9000), "EUR")
        earned = Points(total.minor // 100)
        tender = "sys:tender:EUR"
        if roll < 0.25 and ledger.balance(wallet).available.minor >= total.minor:
            tender = wallet  # paid from the member's stored value
        postings = [Posting.debit(tender, total), Posting.credit("sys:sales:EUR", total)]
        if earned.value:
            postings += [
                Posting.debit("sys:points:issued", earned),
                Posting.credit(points, earned, expires_at=clock.now + timedelta(days=365)),
            ]
        if roll > 0.9 and ledger.balance(points).available.minor >= 50:
            # A redemption is held while the customer decides, then posted or dropped.
            hold = f"{receipt}-redeem"
            ledger.hold(
                hold,
                [
                    Posting.debit(points, Points(50)),
                    Posting.credit("sys:points:redeemed", Points(50)),
                ],
                timeout=timedelta(minutes=5),
            )
            if rng.random() < 0.85:
                ledger.post(f"{hold}-post", hold)
                outcomes["redemptions"] += 1
            else:
                outcomes["abandoned redemptions"] += 1
        ledger.transfer(receipt, postings, memo="sale")
        spend[member] += total.minor
        paid_receipts.append(receipt)
        outcomes["sales"] += 1
        if rng.random() < 0.02 and paid_receipts:  # a return, reversed whole
            original = rng.choice(paid_receipts)
            try:
                ledger.reverse(f"refund-{original}", original, memo="return")
                outcomes["refunds"] += 1
            except InsufficientFunds:
                outcomes["refunds refused: points already spent"] += 1
            except NotReversible:
                outcomes["refunds refused: refunded already"] += 1

    clock.now += timedelta(hours=12)  # the nightly run releases abandoned holds
    for tx in ledger.expire():
        outcomes[
            "holds expired overnight" if tx.kind is Kind.EXPIRY else "points lots expired"
        ] += 1
    ledger.check()
    _summary(ledger, outcomes, spend, db_path)
    ledger.close()


def _summary(ledger: Ledger, outcomes: Counter[str], spend: Counter[str], db_path: Path) -> None:
    def posted(account: str) -> str:
        return str(ledger.balance(account).posted)

    wallets = sum(b.posted.minor for b in ledger.balances() if b.account.endswith(":wallet:EUR"))
    click.echo("Store S001, till T1: the day in numbers")
    for name, count in sorted(outcomes.items()):
        click.echo(f"  {name:<32}{count:>10}")
    click.echo(f"  {'sales':<32}{posted('sys:sales:EUR'):>14}")
    issued = Points(-ledger.balance("sys:points:issued").posted.minor)
    click.echo(f"  {'points issued':<32}{issued!s:>14}")
    click.echo(f"  {'points redeemed':<32}{posted('sys:points:redeemed'):>14}")
    click.echo(f"  {'stored value float (wallets)':<32}{Money(wallets, 'EUR')!s:>14}")
    status = ledger.outbox_status()
    click.echo(f"  {'outbox waiting for the hub':<32}{status.length:>10}")
    click.echo("  top members by spend:")
    for member, minor in spend.most_common(5):
        click.echo(f"    {member}  {Money(minor, 'EUR')!s:>14}")
    click.echo(f"ledger check: ok. Inspect it with: loyalty ledger balance {db_path}")
