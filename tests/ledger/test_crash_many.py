# SPDX-License-Identifier: Apache-2.0
"""kill -9 inside `transfer_many` leaves each batch written whole or not at all.

The harness of test_crash.py (tests/forking.py): a child writes a stream of
sales, each one `transfer_many` of points taken, wallet paid and points
earned, acknowledging each outcome after the call returned, and dies by
SIGKILL after N acknowledgements, at the k-th SQL statement or just before
an acknowledgement. The parent reopens the file and checks every invariant,
that every batch is there with all its entries or none of them, and that
every acknowledged batch has the outcome it was acknowledged with. The next
child retries from the first unacknowledged batch, as a till does.

CI runs 45 kills; more: LOYALTY_CRASH_KILLS=3000 pytest tests/ledger/test_crash_many.py
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from loyaltysdk import Money, Points
from loyaltysdk.ledger import Ledger, Posting, Rejection

from ..forking import Child, Kill, run
from .conftest import open_chart

KILLS = int(os.environ.get("LOYALTY_CRASH_KILLS", "45"))
SEED = int(os.environ.get("LOYALTY_CRASH_SEED", "20261204"))
EXPIRES = datetime(2031, 1, 1, tzinfo=UTC)
PARTS = ("points", "wallet", "earn")


def batch(index: int) -> list[tuple[str, list[Posting], str | None]]:
    """The index-th sale; every fourth takes more points than the member has."""
    member = f"M-{index % 2 + 1}"
    wallet, points = f"member:{member}:wallet:EUR", f"member:{member}:points"
    taken = Points(10_000 if index % 4 == 3 else 5 + index % 7)
    paid, earned = Money(100 + index % 50, "EUR"), Points(20)
    return [
        (
            f"s-{index}:points",
            [Posting.debit(points, taken), Posting.credit("sys:points:redeemed", taken)],
            None,
        ),
        (
            f"s-{index}:wallet",
            [Posting.debit(wallet, paid), Posting.credit("sys:sales:EUR", paid)],
            f'{{"receipt":"s-{index}"}}',
        ),
        (
            f"s-{index}:earn",
            [
                Posting.debit("sys:points:issued", earned),
                Posting.credit(points, earned, expires_at=EXPIRES),
            ],
            None,
        ),
    ]


def sell(ledger: Ledger, index: int) -> str:
    try:
        ledger.transfer_many(batch(index))
    except Rejection:
        return "rejected"
    return "ok"


def _fund(ledger: Ledger) -> None:
    with ledger.atomic():
        for member in ("M-1", "M-2"):
            big = Money(10**8, "EUR")
            ledger.transfer(
                f"fund-{member}",
                [
                    Posting.debit("sys:float:EUR", big),
                    Posting.credit(f"member:{member}:wallet:EUR", big),
                ],
            )
            ledger.transfer(
                f"fund-{member}:points",
                [
                    Posting.debit("sys:points:issued", Points(100)),
                    Posting.credit(f"member:{member}:points", Points(100), expires_at=EXPIRES),
                ],
            )


def _stream(path: Path, start: int) -> Callable[[Child], None]:
    def body(child: Child) -> None:
        ledger = Ledger.open(path, origin="S001-T1")
        open_chart(ledger)
        _fund(ledger)
        child.watch(ledger.store.connection)  # type: ignore[attr-defined]
        child.ready()
        index = start
        while True:
            outcome = sell(ledger, index)
            child.ack(f"{index} {outcome}")
            index += 1

    return body


def _plan(number: int, rng: random.Random) -> Kill:
    kind = number % 3
    if kind == 0:
        return Kill.after_acks(rng.randint(0, 8))
    if kind == 1:
        if number // 3 % 4 == 0:
            return Kill.at_commit(number // 12 % 4 + 1)
        return Kill.at_statement(number // 3 % 40 + 1)  # walks the statement positions
    return Kill.before_ack(rng.randint(1, 8))


def test_sigkill_inside_a_batch_keeps_it_whole_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "till.db"
    rng = random.Random(SEED)
    acknowledged: dict[int, str] = {}
    next_index = 0
    killed_at: list[str] = []
    for number in range(KILLS):
        outcome = run(_stream(path, next_index), _plan(number, rng))
        assert outcome.ready and outcome.killed
        killed_at.append(outcome.killed_at or "?")
        for line in outcome.acks:
            index_text, result = line.split()
            index = int(index_text)
            assert acknowledged.get(index, result) == result
            acknowledged[index] = result
            next_index = index + 1
        with Ledger.open(path, origin="S001-T1") as ledger:
            ledger.check()
            for index in range(next_index + 1):  # the one in flight too
                written = [ledger.transaction(f"s-{index}:{part}") is not None for part in PARTS]
                assert len(set(written)) == 1, f"sale {index} written in part: {written}"
                if index in acknowledged:
                    assert written[0] == (acknowledged[index] == "ok"), index
    if KILLS >= 30:
        assert {"COMMIT", "INSERT", "UPDATE", "before-ack", "after-acks"} <= set(killed_at)
    assert "rejected" in acknowledged.values() and "ok" in acknowledged.values()
    # Every acknowledged sale again: each was applied once, nothing moves.
    with Ledger.open(path, origin="S001-T1") as ledger:
        before = ledger.balances()
        for index, result in sorted(acknowledged.items()):
            assert sell(ledger, index) == result
        assert ledger.balances() == before
        ledger.check()
