# SPDX-License-Identifier: Apache-2.0
"""kill -9 at random instants loses nothing that was acknowledged.

A forked child opens the ledger file and runs a deterministic stream of
operations, writing each key to a pipe only after the call returned (the
till's acknowledgement). The parent SIGKILLs it after a random delay,
reopens the file, checks every invariant, and checks that every
acknowledged key is there exactly once with the outcome it was acknowledged
with. The next child first retries the operation that may have been in
flight, as a till retries after a crash.

CI runs 100 kills; a longer soak: LOYALTY_CRASH_KILLS=10000 scripts/test tests/ledger/test_crash.py
"""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import timedelta
from pathlib import Path

from loyaltysdk import Money, Points
from loyaltysdk.ledger import Ledger, Posting, Rejection, UnknownTransaction

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


def _child(path: Path, start: int, pipe: int) -> None:
    try:
        ledger = Ledger.open(path, origin="S001-T1")
        open_chart(ledger)
        os.write(pipe, b"ready\n")
        index = start
        while True:
            outcome = operation(ledger, index)
            os.write(pipe, f"{index} {outcome}\n".encode())
            index += 1
    finally:
        os._exit(0)


def _run_child(path: Path, start: int, delay: float) -> list[tuple[int, str]]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read_end)
        _child(path, start, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb", buffering=0) as reader:
        buffered = b""
        while b"ready\n" not in buffered:
            chunk = reader.read(4096)
            assert chunk, "child died before it was ready"
            buffered += chunk
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        buffered += reader.read()
    acked = []
    for line in buffered.decode().splitlines():
        if line != "ready":
            index, outcome = line.split()
            acked.append((int(index), outcome))
    return acked


def test_sigkill_at_random_instants_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "till.db"
    rng = random.Random(SEED)
    acknowledged: dict[int, str] = {}
    next_index = 0
    mid_stream_kills = 0
    for _ in range(KILLS):
        # Retry from the first unacknowledged operation: it may have committed.
        acked = _run_child(
            path, next_index, rng.choice([0.0, rng.uniform(0, 0.004), rng.uniform(0, 0.02)])
        )
        for index, outcome in acked:
            assert index not in acknowledged or acknowledged[index] == outcome
            acknowledged[index] = outcome
        if acked:
            next_index = acked[-1][0] + 1
            mid_stream_kills += 1
        with Ledger.open(path, origin="S001-T1") as ledger:
            ledger.check()
            for index, outcome in acknowledged.items():
                committed = ledger.transaction(f"op-{index}")
                assert (committed is not None) == (outcome == "ok"), (
                    f"op-{index} acknowledged {outcome}"
                )
    # Not vacuous: many kills landed after some work was acknowledged.
    assert mid_stream_kills >= KILLS // 4
    assert len(acknowledged) >= KILLS
    # Replaying every acknowledged operation changes nothing: each applied once.
    with Ledger.open(path, origin="S001-T1") as ledger:
        before = ledger.balances()
        for index, outcome in sorted(acknowledged.items()):
            assert operation(ledger, index) == outcome
        assert ledger.balances() == before
        ledger.check()
