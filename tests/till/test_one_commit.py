# SPDX-License-Identifier: Apache-2.0
"""A checkout is one durable commit: counted by SQLite's trace and by the fsyncs the process makes.

The checkout of the benchmark (identify by card UID, quote 20 lines under
the demo rules, redeem points, complete) runs in a child process with an
LD_PRELOAD shim that counts fsync and fdatasync calls (bench/_measure.py);
the child reports commits (from the connection's trace) and fsyncs, and the
test decides on those counts, never on a time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, random, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from _measure import Counter, fsyncs
from loyaltysdk import Basket, Line, Money, Till
from loyaltysdk._cli_demo import DEMO_RULES, demo_rules

path = Path(tempfile.mkdtemp()) / "till.db"
till = Till.open(path, store="S1", till_id="S1-T1", currency="EUR",
                 timezone="Europe/Berlin", rules=demo_rules())
rng = random.Random(7)
skus = [(f"SKU{n}", rng.choice(DEMO_RULES["_categories"])) for n in range(100)]
for m in range(5):
    uid = bytes([4]) + m.to_bytes(6, "big")
    till.enrol(f"M-{m}", card_uid=uid)
    till.top_up(f"M-{m}", Money(100_000, "EUR"), payment_ref=f"P-{m}")
    till.checkout(Basket("EUR", [Line("TV", 1, 500_000)]), till.identify(uid)).complete(f"S-{m}")

def checkout(n):
    uid = bytes([4]) + (n % 5).to_bytes(6, "big")
    lines = [Line(s, 1 + n % 3, 100 + 7 * i, category=c)
             for i, (s, c) in enumerate(rng.sample(skus, 20))]
    sale = till.checkout(Basket("EUR", lines), till.identify(uid))
    sale.redeem_points(min(100, sale.quote().max_redeemable))
    sale.complete(f"R-{n}")

with Counter(till.ledger.store.connection, path) as counted:
    checkout(-1)  # the first commit after the WAL's reset also syncs its header
    commits, statements, flushed = counted.commits, counted.statements, fsyncs()
    for n in range(20):
        checkout(n)
    commits, statements = counted.commits - commits, counted.statements - statements
    flushed = fsyncs() - flushed
print(json.dumps({"commits": commits, "fsyncs": flushed, "statements": statements}))
"""


def _shim() -> Path:
    if shutil.which("gcc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is needed to build the fsync-counting shim under CI=true")
        pytest.skip("no gcc")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from _measure import fsync_shim  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return Path(fsync_shim())


def test_a_checkout_is_one_commit_and_one_fsync() -> None:
    env = dict(os.environ, LD_PRELOAD=str(_shim()), LOYALTY_FSYNC_DELAY_US="0")
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "bench")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    assert counts["commits"] == 20, counts
    assert counts["fsyncs"] == 20, counts  # WAL, synchronous=FULL: one flush per commit
    # The member's balances read once per session and once for the receipt, the
    # sale's ledger entries one statement per table: 20 (bench/checkout.py); a
    # read per quote again, or an entry written on its own, would show here.
    assert counts["statements"] <= 20 * 20, counts
