# SPDX-License-Identifier: Apache-2.0
"""Property: whatever the network does, once it heals the chain's books are right.

Every till's records at the hub once; every member's and voucher's account
equal to a reference model of what the tills answered; every chip equal to
its hub shadow; what only online tills spent never overspent; every offline
overspend an exception with its amount; units summing to zero.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loyaltysdk.hub import PostgresHubStore
from loyaltysdk.simulators.store import StoreSimulation

SEEDS = int(os.environ.get("LOYALTY_SIM_SEEDS", "6"))


def _expected_double_redemptions(sim: StoreSimulation) -> int:
    extra = 0
    for voucher in sim.vouchers:
        used = sum(
            1 for till in sim.tills.values() if till.ledger.transaction(f"voucher:{voucher.code}")
        )
        extra += max(0, used - 1)
    return extra


@pytest.mark.parametrize("seed", range(SEEDS))
def test_converges_exactly_once(seed: int, tmp_path: Path) -> None:
    sim = StoreSimulation(seed, tmp_path, tills=3, members=10)
    try:
        sim.run(250)
        sim.heal()
        report = sim.check()  # every record once, units sum to zero, balances = fold of tills
        kinds = [e["kind"] for e in report["exceptions"]]
        assert kinds.count("double_redemption") == _expected_double_redemptions(sim)
        assert sum(link.sent for link in sim.links.values()) > 0
    finally:
        sim.close()


def test_same_seed_same_run(tmp_path: Path) -> None:
    outcomes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        sim = StoreSimulation(42, tmp_path / name)
        sim.run(150)
        sim.heal()
        outcomes.append(
            (
                [t.ledger.outbox_status().last_seq for t in sim.tills.values()],
                sim.restarts,
                # Voucher codes are random, so exceptions of one batch may be
                # recorded in another order; which ones they are is the same.
                sorted((e["till"], e["seq"], e["kind"]) for e in sim.hub.exceptions()),
            )
        )
        sim.close()
    assert outcomes[0] == outcomes[1]


@pytest.mark.postgres
def test_converges_on_postgresql(pg_dsn: str, tmp_path: Path) -> None:
    sim = StoreSimulation(7, tmp_path, store=PostgresHubStore(pg_dsn))
    try:
        sim.run(200)
        sim.heal()
        sim.check()
    finally:
        sim.close()


def test_the_day_meets_every_feature_across_stores(tmp_path: Path) -> None:
    """Not vacuous: each thing the chain must get right happens, then a random day on top."""
    sim = StoreSimulation(3, tmp_path, tills=3, members=10)
    try:
        sim.play_each_once()
        sim.run(400)
        sim.heal()
        seen = sim.check()["seen"]
        for what in (
            "online sale",
            "offline sale",
            "card paid at another store than it was loaded",
            "gift card spent at another store",
            "replay refused",
        ):
            assert seen.get(what, 0) > 0, (what, seen)
    finally:
        sim.close()
