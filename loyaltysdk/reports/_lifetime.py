# SPDX-License-Identifier: Apache-2.0
"""Customer lifetime value: historical from the receipts, predicted with BG/NBD and Gamma-Gamma.

Historical value is the margin on a member's net spend to date. Predicted
value fits the two models (`_clv`, scipy) on every member's visits up to
a calibration end and projects a horizon; when a holdout period is given,
the fit is shown as predicted against actual repeat purchases in it.
Model outputs are estimates (floats): they never feed a balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import attrs

from .._extras import require
from ._reports import Db, currency_of


@attrs.frozen
class LifetimeRow:
    member: str
    historical: int  # margin on net spend to the calibration end (minor units)
    p_alive: float
    expected_purchases: float  # in the horizon
    predicted: float  # margin on the spend expected in the horizon (minor units, an estimate)


@attrs.frozen
class LifetimeValue:
    currency: str
    calibration_end: date
    horizon_weeks: int
    bgnbd: tuple[float, float, float, float]  # r, alpha, a, b
    gamma_gamma: tuple[float, float, float] | None  # p, q, v (None: too few repeat buyers)
    holdout: Any  # `_clv.HoldoutCheck`, or None without a holdout period
    rows: tuple[LifetimeRow, ...]  # most predicted value first


def _visits(db: Db, currency: str, until: date) -> list[tuple[str, date, int]]:
    """Members' visits to `until`, each worth its sale net of what was later refunded of it."""
    refunded = {
        (till, ref): int(total)
        for till, ref, total in db.query(
            "SELECT till, receipt, sum(total) FROM report_receipts"
            " WHERE type = 'refund' AND currency = ? GROUP BY till, receipt",
            (currency,),
        )
    }
    rows = db.query(
        "SELECT till, ref, member, day, total FROM report_receipts"
        " WHERE type = 'sale' AND voided = 0 AND member IS NOT NULL AND currency = ?"
        " AND day <= ?",
        (currency, until.isoformat()),
    )
    return [(m, date.fromisoformat(d), int(v) + refunded.get((t, r), 0)) for t, r, m, d, v in rows]


def lifetime_value(
    db: Db,
    calibration_end: date,
    *,
    currency: str | None = None,
    horizon_weeks: int = 52,
    holdout_end: date | None = None,
    margin: Fraction = Fraction(1, 4),
    limit: int | None = None,
) -> LifetimeValue:
    """Historical and predicted lifetime value per member (docs/reports.md, "Lifetime value").

    Raises:
        ValueError: too few members to fit the purchase model.
    """
    require("scipy", extra="reports", feature="predicted lifetime value")
    from . import _clv  # scipy, only when asked

    unit = currency_of(db, currency)
    until = holdout_end or calibration_end
    visits = _visits(db, unit, until)
    calibration = [v for v in visits if v[1] <= calibration_end]
    summaries = _clv.summarise(calibration, calibration_end, unit="weeks")
    if len(summaries) < 20:
        raise ValueError(f"{len(summaries)} members in {unit}: too few to fit a purchase model")
    purchases = _clv.fit_bgnbd(summaries).model
    repeaters = [s for s in summaries if s.x >= 1 and s.repeat_spend > 0]
    spend = _clv.fit_gamma_gamma(summaries).model if len(repeaters) >= 10 else None
    history: dict[str, int] = {}
    for member, _, value in calibration:
        history[member] = history.get(member, 0) + value
    rows = []
    if spend is not None:
        estimates = _clv.predict_clv(
            purchases, spend, summaries, horizon=horizon_weeks, margin=float(margin)
        )
        rows = [
            LifetimeRow(
                e.member,
                int(history.get(e.member, 0) * margin),
                e.p_alive,
                e.expected_purchases,
                e.clv_minor,
            )
            for e in estimates
        ]
    else:
        rows = [
            LifetimeRow(
                s.member,
                int(history.get(s.member, 0) * margin),
                purchases.p_alive(s.x, s.t_x, s.T),
                purchases.expected_purchases(horizon_weeks, s.x, s.t_x, s.T),
                0.0,
            )
            for s in summaries
        ]
    rows.sort(key=lambda r: (-r.predicted, -r.historical, r.member))
    check = None
    if holdout_end is not None:
        actual = _clv.holdout_purchases(visits, calibration_end, holdout_end)
        weeks = (holdout_end - calibration_end).days / 7
        check = _clv.holdout_check(purchases, summaries, actual, horizon=weeks)
    return LifetimeValue(
        unit,
        calibration_end,
        horizon_weeks,
        (purchases.r, purchases.alpha, purchases.a, purchases.b),
        (spend.p, spend.q, spend.v) if spend is not None else None,
        check,
        tuple(rows[:limit] if limit else rows),
    )


def split(first: date, last: date, holdout_share: Fraction = Fraction(1, 3)) -> tuple[date, date]:
    """A calibration end and a holdout end: the last `holdout_share` of the window held out."""
    days = (last - first).days
    return first + timedelta(days=int(days * (1 - holdout_share))), last


__all__: Sequence[str] = ["LifetimeRow", "LifetimeValue", "lifetime_value", "split"]
