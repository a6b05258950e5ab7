# SPDX-License-Identifier: Apache-2.0
"""kill -9 at any point loses nothing that was acknowledged.

A forked child opens the ledger file and runs a deterministic stream of
operations, acknowledging each (its outcome) only after the call returned.
It dies by SIGKILL at a point chosen by progress (tests/forking.py): after
the parent read N acknowledgements (a random instant inside later work), at
the k-th SQL statement (every statement of an operation, COMMIT included),
or after an operation returned but before its acknowledgement. The parent
reopens the file, checks every invariant, and checks that every
acknowledged key is there exactly once with the outcome it was
acknowledged with. The next child first retries the operation that may
have been in flight, as a till retries after a crash.

CI runs 100 kills; a longer soak: LOYALTY_CRASH_KILLS=10000 scripts/test tests/ledger/test_crash.py
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from loyaltysdk import Money, Points
from loyaltysdk.ledger import Ledger, Posting, Rejection, UnknownTransaction

from ..forking import Child, Kill, run
from .conftest import open_chart

KILLS = int(os.environ.get("LOYALTY_CRASH_KILLS", "100"))
SEED = int(os.environ.get("LOYALTY_CRASH_SEED", "20261123"))


def operation(ledger: Ledger, index: int) -> str:
    """The index-th operation of the stream; returns its acknowledged outcome."""
    member = f"M-{index // 6 % 2 + 1}"  # each member gets whole cycles
    wallet, points = f"member:{member}:wallet:EUR", f"member:{member}:points"
    key = f"op-{index}"
    kind = index % 6
    try:
        if kind == 0:
            money = Money(1000, "EUR")
            ledger.transfer(
                key, [Posting.debit("sys:float:EUR", money), Posting.credit(wallet, money)]
            )
        elif kind == 1:
            money = Money(700, "EUR")
            ledger.transfer(
                key, [Posting.debit(wallet, money), Posting.credit("sys:sales:EUR", money)]
            )
        elif kind == 2:
            pts = Points(40)
            ledger.transfer(
                key, [Posting.debit("sys:points:issued", pts), Posting.credit(points, pts)]
            )
        elif kind == 3:
            pts = Points(25)
            ledger.transfer(
                key, [Posting.debit(points, pts), Posting.credit("sys:points:redeemed", pts)]
            )
        elif kind == 4:
            money = Money(250, "EUR")
            ledger.hold(
                f"hold-{index}",
                [Posting.debit(wallet, money), Posting.credit("sys:sales:EUR", money)],
                timeout=timedelta(hours=1),
            )
            ledger.post(key, f"hold-{index}", amount=Money(200, "EUR"))
        else:
            ledger.reverse(key, f"op-{index - 4}")  # undo the spend four steps back
    except (Rejection, UnknownTransaction):  # UnknownTransaction: reversing a rejected op
        return "rejected"
    return "ok"


def _stream(path: Path, start: int) -> Callable[[Child], None]:
    def body(child: Child) -> None:
        ledger = Ledger.open(path, origin="S001-T1")
        open_chart(ledger)
        child.watch(ledger.store.connection)  # type: ignore[attr-defined]
        child.ready()
        index = start
        while True:
            outcome = operation(ledger, index)
            child.ack(f"{index} {outcome}")
            index += 1

    return body


def _plan(number: int, rng: random.Random) -> Kill:
    # Every third kind in turn, so each is exercised whatever the machine's speed.
    kind = number % 3
    if kind == 0:
        return Kill.after_acks(rng.randint(0, 12))
    if kind == 1:
        if number // 3 % 4 == 0:  # just before a commit, by construction
            return Kill.at_commit(number // 12 % 5 + 1)
        return Kill.at_statement(number // 3 % 60 + 1)  # walks the statement positions
    return Kill.before_ack(rng.randint(1, 12))


def test_sigkill_at_any_point_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "till.db"
    rng = random.Random(SEED)
    acknowledged: dict[int, str] = {}
    next_index = 0
    killed_at: list[str] = []
    for number in range(KILLS):
        # Retry from the first unacknowledged operation: it may have committed.
        outcome = run(_stream(path, next_index), _plan(number, rng))
        assert outcome.ready and outcome.killed
        killed_at.append(outcome.killed_at or "?")
        for line in outcome.acks:
            index_text, result = line.split()
            index = int(index_text)
            assert index not in acknowledged or acknowledged[index] == result
            acknowledged[index] = result
            next_index = index + 1
        with Ledger.open(path, origin="S001-T1") as ledger:
            ledger.check()
            for index, result in acknowledged.items():
                committed = ledger.transaction(f"op-{index}")
                assert (committed is not None) == (result == "ok"), f"op-{index} acked {result}"
    # Not vacuous, by what happened rather than by how long it took: kills
    # landed just before a commit, inside writes, and after unacknowledged commits.
    if KILLS >= 60:
        assert {"COMMIT", "INSERT", "UPDATE", "before-ack", "after-acks"} <= set(killed_at)
    assert len(acknowledged) >= KILLS
    # Replaying every acknowledged operation changes nothing: each applied once.
    with Ledger.open(path, origin="S001-T1") as ledger:
        before = ledger.balances()
        for index, result in sorted(acknowledged.items()):
            assert operation(ledger, index) == result
        assert ledger.balances() == before
        ledger.check()
