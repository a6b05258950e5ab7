# SPDX-License-Identifier: Apache-2.0
"""Lifetime value from the report tables: historical by hand, predicted with its holdout shown."""

from __future__ import annotations

import random
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

from loyaltysdk.reports import connect, lifetime_value, load_records, split
from loyaltysdk.reports._data import generated_records

START = date(2026, 1, 1)


def test_lifetime_value_with_its_fit_shown(tmp_path: Path) -> None:
    records = list(
        generated_records(random.Random(5), 20_000, 2_000, 4, START, 300, 1, ("EUR",), ("X",))
    )
    db = connect(str(tmp_path / "r.db"))
    load_records(db, records)
    calibration_end, holdout_end = split(START, START + timedelta(days=299))
    found = lifetime_value(db, calibration_end, holdout_end=holdout_end, margin=Fraction(1, 4))
    # Historical: a quarter of each member's visits to the calibration end, net of refunds.
    voided = {(r["till"], r["receipt"]) for r in records if r["type"] == "void"}
    sold_on = {r["ref"]: r["day"] for r in records if r["type"] == "sale"}
    spent: dict[str, int] = {}
    for r in records:
        visit = r["type"] == "sale" and (r["till"], r["ref"]) not in voided
        counted = visit or r["type"] == "refund"
        if r["member"] and counted and sold_on[r["receipt"]] <= calibration_end.isoformat():
            spent[r["member"]] = spent.get(r["member"], 0) + r["total"]
    assert {row.member: row.historical for row in found.rows} == {
        m: int(v * Fraction(1, 4)) for m, v in spent.items()
    }
    # Ordered by predicted value; estimates within their ranges.
    assert [r.predicted for r in found.rows] == sorted(
        (r.predicted for r in found.rows), reverse=True
    )
    assert all(0 <= r.p_alive <= 1 and r.expected_purchases >= 0 for r in found.rows)
    # The fit, shown: buckets add up, and the model is within a fifth of what happened.
    check = found.holdout
    assert sum(b.actual for b in check.buckets) == check.actual
    assert abs(check.predicted - check.actual) < 0.2 * check.actual
    db.close()
