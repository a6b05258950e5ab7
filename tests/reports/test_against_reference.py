# SPDX-License-Identifier: Apache-2.0
"""Every report against the slow reference (tests/reports/reference.py) on random receipts.

Hypothesis draws a few dozen receipt records: members and anonymous sales in
two currencies at three stores, vouchers of two campaigns (a code split in
parts on one receipt too), partial refunds and voids of earlier sales, a
member without a tier. The reports' SQL (shared scans, loose index scans,
sums in the database) must give exactly what plain loops over the records
give, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from fractions import Fraction
from statistics import NormalDist
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltysdk.reports import (
    BREAKDOWNS,
    campaigns,
    connect,
    currencies,
    currency_of,
    growth,
    liability,
    load_records,
    member_stats,
    pareto,
    period,
    revenue,
    rfm,
    stores,
    tier_mix,
)

from . import reference

START = date(2026, 3, 1)
STORES = ("S1", "S2", "S3")
MEMBERS = ("M1", "M2", "M3", "M4", "M5", "M6")
TIERS = {"M1": "Gold", "M2": "Silver", "M3": "Silver", "M4": "VIP", "M5": "Gold"}  # M6: none
UNITS = ("EUR", "JPY")
ISSUED = {"XMAS": 40}  # SPRING's vouchers were never published: none issued


def _record(n: int, kind: str, sale: dict[str, Any] | None, draw: Any) -> dict[str, Any]:
    if sale is None:
        member = draw(st.sampled_from((*MEMBERS, None)))
        vouchers = (
            draw(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "code": st.sampled_from(("V1", "V2")),
                            "campaign": st.sampled_from(("", "XMAS", "SPRING")),
                            "amount": st.integers(1, 800),
                        }
                    ),
                    max_size=3,
                )
            )
            if member
            else []
        )
        total = draw(st.integers(0, 9_000))
        store = draw(st.sampled_from(STORES))
        base = {
            "receipt": f"R{n}",
            "store": store,
            "till": f"{store}-T1",
            "member": member,
            "currency": draw(st.sampled_from(UNITS)),
            "redeemed": draw(st.sampled_from((0, 0, 150))) if member else 0,
        }
        day = START + timedelta(days=draw(st.integers(0, 59)))
    else:
        base = {k: sale[k] for k in ("store", "till", "member", "currency")}
        base["receipt"] = sale["ref"]
        base["redeemed"] = -sale["points_redeemed"] if kind == "void" else 0
        vouchers = []
        total = -sale["total"] if kind == "void" else -draw(st.integers(0, sale["total"]))
        day = date.fromisoformat(sale["day"]) + timedelta(days=draw(st.integers(0, 9)))
    return {
        "type": kind,
        "ref": f"{kind[0].upper()}{n}",
        "receipt": base["receipt"],
        "store": base["store"],
        "till": base["till"],
        "day": day.isoformat(),
        "hour": draw(st.integers(8, 21)),
        "member": base["member"],
        "currency": base["currency"],
        "total": total,
        "lines": [],
        "points_earned": total // 100 if base["member"] else 0,
        "points_redeemed": base["redeemed"],
        "tenders": {"points": 0, "vouchers": vouchers, "wallet": 0, "card": 0, "cash": total},
    }


@st.composite
def receipt_records(draw: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for n in range(draw(st.integers(0, 36))):
        sales = [r for r in records if r["type"] == "sale"]
        kind = draw(st.sampled_from(("sale",) * 5 + ("refund", "void"))) if sales else "sale"
        sale = draw(st.sampled_from(sales)) if kind != "sale" else None
        records.append(_record(n, kind, sale, draw))
    return records


@st.composite
def windows(draw: Any) -> tuple[date, date]:
    first = START + timedelta(days=draw(st.integers(-5, 65)))
    return first, first + timedelta(days=draw(st.integers(0, 40)))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def db(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One database for the module, emptied before each example."""
    if request.param == "sqlite":
        db = connect(":memory:")
        yield db
        db.close()
        return
    import psycopg

    dsn = os.environ.get("LOYALTY_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
    schema = f"reports_ref_{os.getpid()}"
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.Error as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(f"no PostgreSQL: {error}")
    admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.execute(f"CREATE SCHEMA {schema}")
    db = connect(f"{dsn} options='-c search_path={schema}'")
    try:
        yield db
    finally:
        db.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def _fill(db: Any, records: list[dict[str, Any]]) -> None:
    for table in ("report_receipts", "report_lines", "report_vouchers"):
        db.execute(f"DELETE FROM {table}")
    for table in ("report_members", "report_campaigns"):
        db.execute(f"DELETE FROM {table}")
    load_records(db, records)
    db.insert("report_members", ("member", "tier"), sorted(TIERS.items()))
    db.insert("report_campaigns", ("campaign", "issued"), sorted(ISSUED.items()))


SETTINGS = settings(
    max_examples=int(os.environ.get("REPORTS_REFERENCE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(
    receipt_records(),
    windows(),
    windows(),
    st.sampled_from((None, *STORES)),
    st.sampled_from((Fraction(1, 4), Fraction(1, 10), Fraction(3, 7))),
    st.sampled_from((Fraction(1), Fraction(1, 2), Fraction(3, 2))),
)
def test_every_report_matches_the_reference(
    db: Any,
    records: list[dict[str, Any]],
    window: tuple[date, date],
    other: tuple[date, date],
    store: str | None,
    margin: Fraction,
    per_point: Fraction,
) -> None:
    _fill(db, records)
    start, end = window
    if records:
        days = [r["day"] for r in records]
        assert period(db) == (date.fromisoformat(min(days)), date.fromisoformat(max(days)))
    units = sorted({r["currency"] for r in records})
    assert sorted(currencies(db)) == units
    if len(units) == 1:
        assert currency_of(db, None) == units[0]
    elif len(units) > 1:
        with pytest.raises(ValueError, match="name one currency"):
            currency_of(db, None)
    assert liability(db) == reference.liability(records)
    for by in BREAKDOWNS:
        assert revenue(db, start, end, by=by) == reference.revenue(records, start, end, by)
    for unit in UNITS:
        stats = member_stats(db, start, end, currency=unit, store=store)
        expected = reference.member_stats(records, TIERS, start, end, unit, store)
        assert sorted(stats, key=lambda s: s.member) == expected
        with_points = member_stats(
            db, start, end, currency=unit, store=store, minor_per_point=per_point
        )
        assert sorted(with_points, key=lambda s: s.member) == reference.member_stats(
            records, TIERS, start, end, unit, store, per_point
        )
        assert pareto(stats, points=7) == reference.pareto(expected, points=7)
        assert pareto(stats) == reference.pareto(expected)
        assert rfm(stats, end, margin=margin) == reference.rfm(expected, end, margin)
        assert tier_mix(stats) == reference.tier_mix(expected)
        assert growth(db, window, other, currency=unit, store=store) == reference.growth(
            records, window, other, unit, store
        )
        expected_campaigns = reference.campaigns(records, TIERS, ISSUED, start, end, unit, store)
        assert campaigns(db, start, end, stats, currency=unit, store=store) == expected_campaigns
        assert campaigns(db, start, end, currency=unit, store=store) == expected_campaigns
        got = stores(db, start, end, currency=unit, store=store)
        places = len({r["store"] for r in reference.within(records, start, end, unit, store)})
        critical = NormalDist().inv_cdf(1 - 0.025 / max(1, places))
        assert got == reference.stores(records, start, end, unit, store, critical)
