# SPDX-License-Identifier: Apache-2.0
"""Every report recomputed from the raw receipt records with pandas, not with our SQL.

Generated data: thousands of members over six stores in three currencies,
with anonymous sales, vouchers of three campaigns, partial refunds and
voids. The reports run on the report tables (SQLite and PostgreSQL); pandas
works from the records themselves, so a wrong join, a mixed currency or a
void counted as revenue shows up as a difference.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loyaltysdk.reports import (
    WEEKDAYS,
    campaigns,
    connect,
    growth,
    liability,
    load_records,
    member_stats,
    pareto,
    revenue,
    stores,
)
from loyaltysdk.reports._data import generated_records

START = date(2026, 1, 1)
DAYS = 180
END = START + timedelta(days=DAYS - 1)
CURRENCIES = ("EUR", "JPY", "CHF")


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return list(
        generated_records(
            random.Random(7),
            12_000,
            5_000,
            6,
            START,
            DAYS,
            3,
            CURRENCIES,
            ("XMAS", "SPRING", "SUMMER"),
        )
    )


@pytest.fixture(scope="module")
def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(
        [
            {
                "till": r["till"],
                "ref": r["ref"],
                "type": r["type"],
                "receipt": r["receipt"],
                "member": r["member"],
                "store": r["store"],
                "day": r["day"],
                "hour": r["hour"],
                "currency": r["currency"],
                "total": r["total"],
                "earned": r["points_earned"],
                "redeemed": r["points_redeemed"],
                "campaign": next((v["campaign"] for v in r["tenders"]["vouchers"]), ""),
                "voucher": sum(v["amount"] for v in r["tenders"]["vouchers"]),
            }
            for r in records
        ]
    )
    voided = set(zip(df.till[df.type == "void"], df.receipt[df.type == "void"], strict=True))
    undone = pd.Series(
        [(t, r) in voided for t, r in zip(df.till, df.ref, strict=True)], index=df.index
    )
    df["visit"] = (df.type == "sale") & ~undone
    df["month"] = df.day.str[:7]
    df["weekday"] = pd.to_datetime(df.day).dt.weekday
    return df


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path, records: list[dict[str, Any]]) -> Any:
    if request.param == "sqlite":
        db = connect(str(tmp_path / "r.db"))
    else:
        db = connect(request.getfixturevalue("pg_dsn"))
    load_records(db, records)
    yield db
    db.close()


def test_the_data_has_what_the_reports_must_handle(frame: pd.DataFrame) -> None:
    assert set(frame.currency) == set(CURRENCIES)
    assert frame.member.isna().sum() > 500 and frame.member.nunique() > 2_500
    assert (frame.type == "void").sum() > 30 and (frame.type == "refund").sum() > 60
    assert (frame.campaign != "").sum() > 100


@pytest.mark.parametrize("by", ["store", "month", "weekday", "hour"])
def test_revenue_net_of_refunds_and_voids(db: Any, frame: pd.DataFrame, by: str) -> None:
    grouped = frame.groupby(["currency", by])
    expected = {}
    for (unit, key), g in grouped:
        label = WEEKDAYS[key] if by == "weekday" else f"{key:02d}" if by == "hour" else key
        sales = int(g.total[g.type == "sale"].sum())
        net = int(g.total.sum())
        expected[(unit, label)] = (int(g.visit.sum()), sales, net - sales, net)
    got = {
        (r.currency, r.key): (r.receipts, r.sales, r.refunds, r.revenue)
        for r in revenue(db, START, END, by=by)
    }
    assert got == expected


def _members(frame: pd.DataFrame, unit: str, start: date, end: date) -> pd.DataFrame:
    window = frame[
        (frame.currency == unit)
        & frame.member.notna()
        & (frame.day >= start.isoformat())
        & (frame.day <= end.isoformat())
    ]
    per = window.groupby("member").agg(
        visits=("visit", "sum"),
        revenue=("total", "sum"),
        redeemed=("redeemed", "sum"),
        voucher=("voucher", "sum"),
    )
    per["last"] = window[window.visit].groupby("member").day.max()
    return per[per.visits > 0]


@pytest.mark.parametrize("unit", CURRENCIES)
def test_members_and_the_top_fifth(db: Any, frame: pd.DataFrame, unit: str) -> None:
    expected = _members(frame, unit, START, END)
    stats = member_stats(db, START, END, currency=unit)
    got = {s.member: (s.visits, s.revenue, s.last_visit.isoformat(), s.cost) for s in stats}
    assert got == {
        m: (int(row.visits), int(row.revenue), row["last"], int(row.redeemed + row.voucher))
        for m, row in expected.iterrows()
    }
    ordered = expected.reset_index().sort_values(["revenue", "member"], ascending=[False, True])
    top = math.ceil(len(ordered) / 5)
    share = Fraction(int(ordered.revenue.iloc[:top].sum()), int(ordered.revenue.sum()))
    assert pareto(stats).top_fifth_share == share


@pytest.mark.parametrize("unit", CURRENCIES)
def test_stores_side_by_side(db: Any, frame: pd.DataFrame, unit: str) -> None:
    mine = frame[frame.currency == unit]
    rows = {r.store: r for r in stores(db, START, END, currency=unit)}
    assert set(rows) == set(mine.store)
    for store, g in mine.groupby("store"):
        row = rows[store]
        per = g[g.member.notna()].groupby("member").visit.sum()
        per = per[per > 0]
        assert (row.receipts, row.members, row.revenue) == (
            int(g.visit.sum()),
            len(per),
            int(g.total.sum()),
        )
        assert row.repeat_rate == Fraction(int((per >= 2).sum()), len(per))
        baskets, others = g.total[g.visit], mine.total[mine.visit & (mine.store != store)]
        se = math.sqrt(baskets.var() / len(baskets) + others.var() / len(others))
        assert row.basket_z == pytest.approx((baskets.mean() - others.mean()) / se, rel=1e-9)


@pytest.mark.parametrize("unit", CURRENCIES)
def test_growth_per_store_and_for_the_chain(db: Any, frame: pd.DataFrame, unit: str) -> None:
    middle = START + timedelta(days=DAYS // 2 - 1)
    before, after = (START, middle), (middle + timedelta(days=1), END)
    rows = {g.store: g for g in growth(db, before, after, currency=unit)}
    mine = frame[frame.currency == unit]
    early = mine.day <= middle.isoformat()
    for store in [*sorted(set(mine.store)), "*"]:
        here = mine if store == "*" else mine[mine.store == store]
        first, second = here[early.loc[here.index]], here[~early.loc[here.index]]
        cohort_b = first[first.member.notna()].groupby("member").visit.sum()
        cohort = set(cohort_b[cohort_b > 0].index)
        later = second[second.member.isin(cohort)]
        came_back = later.groupby("member").visit.sum()
        row = rows[store]
        assert (row.revenue_before, row.revenue_after) == (
            int(first.total.sum()),
            int(second.total.sum()),
        )
        assert (row.members_before, row.returned) == (len(cohort), int((came_back > 0).sum()))
        assert (row.visits_before, row.visits_after) == (
            int(cohort_b[cohort_b > 0].sum()),
            int(later.visit.sum()),
        )
        assert (row.spend_before, row.spend_after) == (
            int(first[first.member.isin(cohort)].total.sum()),
            int(later.total.sum()),
        )


def test_campaigns_and_liability(db: Any, frame: pd.DataFrame) -> None:
    used = frame[frame.visit & (frame.campaign != "") & (frame.currency == "EUR")]
    rows = {c.campaign: c for c in campaigns(db, START, END, currency="EUR")}
    for campaign, g in used.groupby("campaign"):
        assert (rows[campaign].redeemed, rows[campaign].value) == (len(g), int(g.voucher.sum()))
        assert rows[campaign].redeemers == g.member.nunique()
    months = frame.groupby("month").agg(earned=("earned", "sum"), redeemed=("redeemed", "sum"))
    got = {r.month: (r.earned, r.redeemed) for r in liability(db)}
    assert got == {m: (int(r.earned), int(r.redeemed)) for m, r in months.iterrows()}
