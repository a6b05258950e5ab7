# SPDX-License-Identifier: Apache-2.0
"""Every figure against a dozen members worked out by hand (see the table below)."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from loyaltysdk.reports import (
    campaigns,
    connect,
    growth,
    liability,
    load_records,
    member_stats,
    pareto,
    rfm,
    stores,
)

AS_OF = date(2026, 6, 30)
# member: visits, revenue, last visit, points redeemed (1 point = 1 cent)
MEMBERS = {
    "M01": (6, 12_000, date(2026, 6, 29), 0),
    "M02": (5, 9_000, date(2026, 6, 28), 0),
    "M03": (4, 7_000, date(2026, 6, 27), 3_000),  # rewards 3,000 > 25 % of 7,000: below zero
    "M04": (1, 6_000, date(2026, 6, 26), 0),
    "M05": (1, 5_000, date(2026, 6, 25), 0),
    "M06": (5, 4_000, date(2026, 1, 10), 0),
    "M07": (4, 3_000, date(2026, 1, 9), 0),
    "M08": (3, 2_000, date(2026, 3, 1), 0),
    "M09": (2, 1_000, date(2026, 3, 2), 0),
    "M10": (1, 500, date(2026, 1, 1), 0),
    "M11": (1, 400, date(2026, 1, 2), 0),
    "M12": (2, 300, date(2026, 4, 1), 0),
}


def receipts() -> list[tuple[str, str, str, str, int, int, int, int, str | None]]:
    """Weekly visits back from the last one; the last visit carries the remainder."""
    rows = []
    for member, (visits, revenue, last, redeemed) in MEMBERS.items():
        store = "S1" if member <= "M06" else "S2"
        for n in range(visits):
            total = revenue // visits + (revenue % visits if n == 0 else 0)
            day = last - timedelta(days=7 * n)
            rows.append(
                (
                    f"{member}-{n}",
                    member,
                    store,
                    day.isoformat(),
                    total,
                    total // 100,
                    redeemed if n == 0 else 0,
                    0,
                    None,
                )
            )
    rows.append(("ANON-1", None, "S2", "2026-06-01", 999, 0, 0, 0, None))
    rows.append(("V-1", "M05", "S1", "2026-06-25", 100, 1, 0, 500, "XMAS"))
    return rows


def record(
    ref: str,
    member: str | None,
    store: str,
    day: str,
    total: int,
    earned: int,
    redeemed: int,
    voucher: int,
    campaign: str | None,
    *,
    kind: str = "sale",
    sale: str | None = None,
    currency: str = "EUR",
    hour: int = 12,
) -> dict[str, Any]:
    """A receipt record as a till sends it, one line carrying the whole total."""
    return {
        "v": 1,
        "type": kind,
        "ref": ref,
        "receipt": sale or ref,
        "store": store,
        "till": f"{store}-T1",
        "at": f"{day}T{hour:02d}:00:00+00:00",
        "day": day,
        "hour": hour,
        "member": member,
        "currency": currency,
        "total": total,
        "lines": [
            {
                "sku": "X",
                "category": "",
                "brand": "",
                "quantity": 1 if total >= 0 else -1,
                "unit_price": abs(total),
                "discount": 0,
                "points": earned,
            }
        ],
        "points_earned": earned,
        "points_redeemed": redeemed,
        "tenders": {
            "points": 0,
            "vouchers": [{"code": f"V-{ref}", "campaign": campaign or "", "amount": voucher}]
            if voucher
            else [],
            "wallet": 0,
            "card": 0,
            "cash": total - voucher,
        },
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        db = connect(str(tmp_path / "r.db"))
    else:
        db = connect(request.getfixturevalue("pg_dsn"))
    load_records(db, [record(*row) for row in receipts()])
    db.insert(
        "report_members",
        ("member", "tier", "enrolled"),
        [(m, "Gold" if m == "M01" else "Silver", "2025-01-01") for m in MEMBERS],
    )
    db.insert("report_campaigns", ("campaign", "issued"), [("XMAS", 10)])
    yield db
    db.close()


def test_pareto_top_fifth(db) -> None:  # type: ignore[no-untyped-def]
    stats = member_stats(db, date(2025, 1, 1), AS_OF)
    top = pareto(stats, limit=3)
    # M05's voucher receipt adds 100: total member revenue 50,300.
    assert (top.members, top.revenue, top.top_fifth_members) == (12, 50_300, 3)
    assert top.top_fifth_share == Fraction(28_000, 50_300)  # M01 + M02 + M03
    assert [(r.member, r.tier, r.revenue) for r in top.rows] == [
        ("M01", "Gold", 12_000),
        ("M02", "Silver", 9_000),
        ("M03", "Silver", 7_000),
    ]
    assert top.rows[0].last_visit == date(2026, 6, 29)
    assert top.rows[2].cumulative_share == Fraction(28_000, 50_300)
    assert top.curve[-1] == (Fraction(1), Fraction(1))


def test_rfm_scores_and_segments(db) -> None:  # type: ignore[no-untyped-def]
    stats = member_stats(db, date(2025, 1, 1), AS_OF)
    rows = {r.member: r for r in rfm(stats, AS_OF, margin=Fraction(1, 4))}
    # By hand: R (recency, worst first) groups of 3,3,2,2,2: [M10 M11 M07] [M06 M08 M09]
    # [M12 M05] [M04 M03] [M02 M01]; F: [M04 M05* M10] ... (*M05 has 2 visits with the
    # voucher receipt): [M04 M10 M11] [M05 M09 M12] [M08 M03] [M07 M02] [M06 M01];
    # M: [M12 M11 M10] [M09 M08 M07] [M06 M05] [M04 M03] [M02 M01].
    assert (rows["M01"].r, rows["M01"].f, rows["M01"].m) == (5, 5, 5)
    assert (rows["M04"].r, rows["M04"].f, rows["M04"].m) == (4, 1, 4)
    assert (rows["M07"].r, rows["M07"].f, rows["M07"].m) == (1, 4, 2)
    expected = {
        "M01": "most valuable",
        "M02": "most valuable",
        "M03": "below zero",
        "M04": "most growable",
        "M05": "others",
        "M06": "at risk",
        "M07": "at risk",
        "M08": "others",
        "M09": "others",
        "M10": "lost",
        "M11": "lost",
        "M12": "others",
    }
    assert {m: r.segment for m, r in rows.items()} == expected
    assert rows["M03"].cost == 3_000 and rows["M10"].recency_days == 180


def test_revisit_and_spend_growth(db) -> None:  # type: ignore[no-untyped-def]
    before = (date(2026, 1, 1), date(2026, 3, 31))
    after = (date(2026, 4, 1), date(2026, 6, 30))
    overall = next(g for g in growth(db, before, after) if g.store == "*")
    # Bought Jan-Mar: M06 M07 M08 M09 M10 M11 (and M12's first visit 03-25) = 7;
    # came back Apr-Jun: only M12 (04-01).
    assert (overall.members_before, overall.returned) == (7, 1)
    assert overall.revisit_rate == Fraction(1, 7)
    # Spend Jan-Mar by that cohort: M06 2x800 (01-10, 01-03; the rest in 2025)
    # + M07 2x750 + M08 2000 + M09 1000 + M10 500 + M11 400 + M12 150 = 7,150;
    # Apr-Jun: M12 150.
    assert (overall.spend_before, overall.spend_after) == (7_150, 150)
    assert overall.spend_growth == Fraction(150, 7_150) - 1
    # The cohort's visits: M06 2, M07 2, M08 3, M09 2, M10 1, M11 1, M12 1 = 12; after: 1.
    assert (overall.visits_before, overall.visits_after) == (12, 1)
    assert overall.revisit_growth == Fraction(1, 12) - 1
    # Revenue counts every receipt: Apr-Jun is M01-M05 (39,000), the voucher receipt
    # (100), the anonymous one (999) and M12 (150).
    assert (overall.revenue_before, overall.revenue_after) == (7_150, 40_249)
    assert overall.revenue_growth == Fraction(40_249, 7_150) - 1


def test_liability_by_month(db) -> None:  # type: ignore[no-untyped-def]
    rows = liability(db)
    assert rows[-1].month == "2026-06"
    total_earned = sum(r[5] for r in receipts())
    assert rows[-1].outstanding == total_earned - 3_000
    assert all(
        r.outstanding == sum(x.earned - x.redeemed for x in rows[: i + 1])
        for i, r in enumerate(rows)
    )


def test_campaign_uptake_and_incremental_spend(db) -> None:  # type: ignore[no-untyped-def]
    (row,) = campaigns(db, date(2025, 1, 1), AS_OF)
    assert (row.campaign, row.issued, row.redeemed, row.value) == ("XMAS", 10, 1, 500)
    assert row.uptake == Fraction(1, 10)
    assert row.redeemer_spend == 5_100  # M05
    # Nobody bought in the equal window before: one visit band, all 11 others in it.
    assert (row.redeemers, row.comparable) == (1, 11)
    assert row.comparable_spend == Fraction(50_300 - 5_100, 11)
    assert row.incremental == 5_100 - Fraction(45_200, 11)
    assert row.return_per_value == row.incremental / 500


def test_store_comparison(db) -> None:  # type: ignore[no-untyped-def]
    s1, s2 = stores(db, date(2025, 1, 1), AS_OF)
    assert (s1.store, s1.receipts, s1.members, s1.revenue) == ("S1", 23, 6, 43_100)
    assert (s2.store, s2.receipts, s2.members, s2.revenue) == ("S2", 14, 6, 8_199)
    assert s1.average_basket == Fraction(43_100, 23)
    assert s1.repeat_rate == Fraction(5, 6)  # all but M04
    assert s2.repeat_rate == Fraction(4, 6)  # M07 M08 M09 M12
    assert s1.top_fifth_share == Fraction(12_000 + 9_000, 43_100)  # 2 of 6


def test_reports_from_a_till_and_from_its_hub(tmp_path: Path) -> None:
    from loyaltysdk import Basket, Line, Till, load_rules
    from loyaltysdk.hub import Hub, SQLiteHubStore
    from loyaltysdk.reports import load_from_hub, load_from_till
    from loyaltysdk.sync import DirectLink, Syncer

    rules = load_rules(
        {
            "schema": 1,
            "version": 1,
            "currency": "EUR",
            "rules": [{"id": "base", "effect": {"type": "earn", "points": 1, "per": 100}}],
        }
    )
    till = Till.open(
        tmp_path / "till.db",
        store="S7",
        till_id="S7-T1",
        currency="EUR",
        timezone="Europe/Berlin",
        rules=rules,
    )
    for m, amount in (("A", 9_000), ("B", 1_000), ("C", 500)):
        till.enrol(m)
        till.checkout(Basket("EUR", [Line("X", 1, amount)]), till.identify(m)).complete(f"R-{m}")
    till.checkout(Basket("EUR", [Line("X", 1, 700)])).complete("R-ANON")
    hub = Hub(SQLiteHubStore(tmp_path / "hub.db"))
    Syncer(till, DirectLink(hub, hub.register("S7-T1", hub.create_till("S7-T1")))).run_once()
    till.close()
    at_till = connect(str(tmp_path / "till.db"))
    assert load_from_till(at_till) == 4  # the store comes with the records
    at_hub = connect(str(tmp_path / "hub.db"))
    assert load_from_hub(at_hub) == 4  # the anonymous sale too
    for db in (at_till, at_hub):
        first, last = db.query("SELECT min(day), max(day) FROM report_receipts")[0]
        top = pareto(member_stats(db, date.fromisoformat(first), date.fromisoformat(last)))
        assert (top.members, top.revenue, top.top_fifth_members) == (3, 10_500, 1)
        assert top.top_fifth_share == Fraction(9_000, 10_500)
        (store,) = stores(db, date.fromisoformat(first), date.fromisoformat(last))
        assert store.store == "S7"
        db.close()
    hub.store.close()
