# SPDX-License-Identifier: Apache-2.0
"""The reports head office acts on, computed in SQL aggregates plus exact arithmetic.

Every figure is an integer (minor units, points, counts) or an exact ratio
(`Fraction`); percentages are rendered only at the edge. Definitions are
stated in docs/reports.md and pinned by hand-computed fixtures in the tests.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from fractions import Fraction

import attrs

from ._data import PostgresDb, SQLiteDb

Db = SQLiteDb | PostgresDb


@attrs.frozen
class MemberStats:
    member: str
    tier: str
    visits: int
    revenue: int
    last_visit: date
    cost: int  # rewards given: points redeemed (at their value) and vouchers


def member_stats(
    db: Db, start: date, end: date, *, minor_per_point: Fraction = Fraction(1)
) -> list[MemberStats]:
    """Per member over [start, end]: visits, revenue, last visit, rewards cost (one scan)."""
    rows = db.query(
        "SELECT r.member, coalesce(m.tier, ''), count(*), sum(r.total), max(r.day),"
        " sum(r.points_redeemed), sum(r.voucher_value)"
        " FROM report_receipts r LEFT JOIN report_members m ON m.member = r.member"
        " WHERE r.member IS NOT NULL AND r.day >= ? AND r.day <= ?"
        " GROUP BY r.member, m.tier",
        (start.isoformat(), end.isoformat()),
    )
    return [
        MemberStats(
            member,
            tier,
            int(visits),
            int(revenue),
            date.fromisoformat(last),
            math.floor(int(points) * minor_per_point) + int(vouchers),
        )
        for member, tier, visits, revenue, last, points, vouchers in rows
    ]


# -- the top 20 % ----------------------------------------------------------------------


@attrs.frozen
class ParetoRow:
    rank: int
    member: str
    tier: str
    revenue: int
    share: Fraction
    cumulative_share: Fraction
    last_visit: date


@attrs.frozen
class Pareto:
    members: int
    revenue: int
    top_fifth_members: int
    top_fifth_share: Fraction
    rows: tuple[ParetoRow, ...]
    curve: tuple[tuple[Fraction, Fraction], ...]  # (share of members, share of revenue)


def pareto(stats: list[MemberStats], *, limit: int = 20, points: int = 50) -> Pareto:
    """Members by revenue, their share, and the share the top fifth brings."""
    ordered = sorted(stats, key=lambda s: (-s.revenue, s.member))
    total = sum(s.revenue for s in ordered)
    n = len(ordered)
    top = math.ceil(n / 5)
    top_share = Fraction(sum(s.revenue for s in ordered[:top]), total) if total else Fraction(0)
    rows, running = [], 0
    for rank, s in enumerate(ordered[:limit], start=1):
        running += s.revenue
        rows.append(
            ParetoRow(
                rank,
                s.member,
                s.tier,
                s.revenue,
                Fraction(s.revenue, total) if total else Fraction(0),
                Fraction(running, total) if total else Fraction(0),
                s.last_visit,
            )
        )
    curve = [(Fraction(0), Fraction(0))]
    cumulative = 0
    step = max(1, n // points)
    for index, s in enumerate(ordered, start=1):
        cumulative += s.revenue
        if index % step == 0 or index == n:
            curve.append(
                (Fraction(index, n), Fraction(cumulative, total) if total else Fraction(0))
            )
    return Pareto(n, total, top, top_share, tuple(rows), tuple(curve))


# -- RFM ---------------------------------------------------------------------------------


@attrs.frozen
class RfmRow:
    member: str
    recency_days: int
    frequency: int
    monetary: int
    cost: int
    r: int
    f: int
    m: int
    segment: str


SEGMENTS = ("below zero", "most valuable", "at risk", "most growable", "lost", "others")


def _quintiles(values: list[tuple[int, str]], *, higher_is_better: bool = True) -> dict[str, int]:
    """Scores 1 (worst) .. 5 (best) by position, as SQL's NTILE(5) deals them out.

    Items are ordered worst first (ties by member id, so the result is
    deterministic) and dealt into five groups as equal as possible, the
    first groups taking the remainder: 12 members give 3, 3, 2, 2, 2.
    """
    ordered = sorted(values, key=lambda v: (v[0] if higher_is_better else -v[0], v[1]))
    n = len(ordered)
    scores: dict[str, int] = {}
    index = 0
    for group in range(5):
        size = n // 5 + (1 if group < n % 5 else 0)
        for _, member in ordered[index : index + size]:
            scores[member] = group + 1
        index += size
    return scores


def rfm(
    stats: list[MemberStats], as_of: date, *, margin: Fraction = Fraction(1, 4)
) -> list[RfmRow]:
    """RFM scores (1 worst .. 5 best) and segments; `margin` is the gross margin on revenue.

    Segments, first match wins: "below zero" (rewards cost more than the
    margin on the member's revenue), "most valuable" (R, F and M at least 4),
    "at risk" (R at most 2 with F or M at least 4), "most growable" (R at
    least 4, F at most 3, M at least 3), "lost" (R = 1 and F at most 2),
    "others".
    """
    recency = {s.member: (as_of - s.last_visit).days for s in stats}
    r = _quintiles([(recency[s.member], s.member) for s in stats], higher_is_better=False)
    f = _quintiles([(s.visits, s.member) for s in stats])
    m = _quintiles([(s.revenue, s.member) for s in stats])
    rows = []
    for s in sorted(stats, key=lambda s: s.member):
        rs, fs, ms = r[s.member], f[s.member], m[s.member]
        if s.cost > s.revenue * margin:
            segment = "below zero"
        elif rs >= 4 and fs >= 4 and ms >= 4:
            segment = "most valuable"
        elif rs <= 2 and (fs >= 4 or ms >= 4):
            segment = "at risk"
        elif rs >= 4 and fs <= 3 and ms >= 3:
            segment = "most growable"
        elif rs == 1 and fs <= 2:
            segment = "lost"
        else:
            segment = "others"
        rows.append(
            RfmRow(s.member, recency[s.member], s.visits, s.revenue, s.cost, rs, fs, ms, segment)
        )
    return rows


# -- growth ----------------------------------------------------------------------------------


@attrs.frozen
class Growth:
    store: str
    members_before: int
    returned: int
    revisit_rate: Fraction
    spend_before: int
    spend_after: int
    spend_growth: Fraction


def growth(db: Db, before: tuple[date, date], after: tuple[date, date]) -> list[Growth]:
    """Per store and overall ("*"): of the members who bought in `before`, how many came
    back in `after`, and how their spend changed (after / before - 1)."""
    rows = db.query(
        "SELECT store, member,"
        " sum(CASE WHEN day >= ? AND day <= ? THEN total ELSE 0 END),"
        " sum(CASE WHEN day >= ? AND day <= ? THEN total ELSE 0 END)"
        " FROM report_receipts WHERE member IS NOT NULL AND day >= ? AND day <= ?"
        " GROUP BY store, member",
        (
            before[0].isoformat(),
            before[1].isoformat(),
            after[0].isoformat(),
            after[1].isoformat(),
            min(before[0], after[0]).isoformat(),
            max(before[1], after[1]).isoformat(),
        ),
    )
    per: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for store, member, spent_before, spent_after in rows:
        for key in (store, "*"):
            per[key][member][0] += int(spent_before)
            per[key][member][1] += int(spent_after)
    out = []
    for store in sorted(per):
        cohort = {m: v for m, v in per[store].items() if v[0] > 0}
        returned = sum(1 for v in cohort.values() if v[1] > 0)
        spend_before = sum(v[0] for v in cohort.values())
        spend_after = sum(v[1] for v in cohort.values())
        out.append(
            Growth(
                store,
                len(cohort),
                returned,
                Fraction(returned, len(cohort)) if cohort else Fraction(0),
                spend_before,
                spend_after,
                Fraction(spend_after, spend_before) - 1 if spend_before else Fraction(0),
            )
        )
    return out


# -- liability, campaigns, stores -----------------------------------------------------------------


@attrs.frozen
class LiabilityRow:
    month: str
    earned: int
    redeemed: int
    outstanding: int


def liability(db: Db) -> list[LiabilityRow]:
    """Points earned and redeemed per month, and the points liability outstanding after it."""
    rows = db.query(
        "SELECT substr(day, 1, 7), sum(points_earned), sum(points_redeemed) FROM report_receipts"
        " GROUP BY substr(day, 1, 7) ORDER BY 1"
    )
    out, outstanding = [], 0
    for month, earned, redeemed in rows:
        outstanding += int(earned) - int(redeemed)
        out.append(LiabilityRow(month, int(earned), int(redeemed), outstanding))
    return out


@attrs.frozen
class CampaignRow:
    campaign: str
    issued: int
    redeemed: int
    value: int
    uptake: Fraction
    redeemer_spend: Fraction  # average spend per redeeming member in the period
    other_spend: Fraction  # average spend per other member in the period
    incremental: Fraction  # redeemer_spend - other_spend


def campaigns(
    db: Db, start: date, end: date, stats: list[MemberStats] | None = None
) -> list[CampaignRow]:
    """Voucher uptake per campaign and the spend of redeemers against everyone else.

    `stats` (from `member_stats` over the same window) saves a second scan.
    """
    window = (start.isoformat(), end.isoformat())
    uses = db.query(
        "SELECT campaign, count(*), sum(voucher_value) FROM report_receipts"
        " WHERE campaign IS NOT NULL AND day >= ? AND day <= ? GROUP BY campaign",
        window,
    )
    issued = dict(db.query("SELECT campaign, issued FROM report_campaigns"))
    if stats is None:
        stats = member_stats(db, start, end)
    spend = {s.member: s.revenue for s in stats}
    redeemers: dict[str, set[str]] = defaultdict(set)
    for campaign, member in db.query(
        "SELECT DISTINCT campaign, member FROM report_receipts WHERE campaign IS NOT NULL"
        " AND member IS NOT NULL AND day >= ? AND day <= ?",
        window,
    ):
        redeemers[campaign].add(member)
    out = []
    for campaign, count, value in sorted(uses):
        group = redeemers[campaign]
        others = [v for m, v in spend.items() if m not in group]
        mine = [spend[m] for m in group if m in spend]
        redeemer_avg = Fraction(sum(mine), len(mine)) if mine else Fraction(0)
        other_avg = Fraction(sum(others), len(others)) if others else Fraction(0)
        n_issued = int(issued.get(campaign, 0))
        out.append(
            CampaignRow(
                campaign,
                n_issued,
                int(count),
                int(value),
                Fraction(int(count), n_issued) if n_issued else Fraction(0),
                redeemer_avg,
                other_avg,
                redeemer_avg - other_avg,
            )
        )
    return out


@attrs.frozen
class StoreRow:
    store: str
    receipts: int
    members: int
    revenue: int
    average_basket: Fraction
    repeat_rate: Fraction  # members with two or more visits / members
    top_fifth_share: Fraction


def stores(db: Db, start: date, end: date) -> list[StoreRow]:
    """Store by store: receipts, members, revenue, average basket, repeat rate, top-fifth share."""
    rows = db.query(
        "SELECT store, member, count(*), sum(total) FROM report_receipts"
        " WHERE day >= ? AND day <= ? GROUP BY store, member",
        (start.isoformat(), end.isoformat()),
    )
    per: dict[str, list[tuple[str | None, int, int]]] = defaultdict(list)
    for store, member, count, total in rows:
        per[store].append((member, int(count), int(total)))
    out = []
    for store in sorted(per):
        entries = per[store]
        receipts = sum(c for _, c, _ in entries)
        revenue = sum(t for _, _, t in entries)
        members = [(m, c, t) for m, c, t in entries if m is not None]
        ranked = sorted((t for _, _, t in members), reverse=True)
        top = math.ceil(len(ranked) / 5)
        member_revenue = sum(ranked)
        out.append(
            StoreRow(
                store,
                receipts,
                len(members),
                revenue,
                Fraction(revenue, receipts) if receipts else Fraction(0),
                Fraction(sum(1 for _, c, _ in members if c >= 2), len(members))
                if members
                else Fraction(0),
                Fraction(sum(ranked[:top]), member_revenue) if member_revenue else Fraction(0),
            )
        )
    return out


def period(db: Db) -> tuple[date, date]:
    """The first and last day with receipts."""
    first, last = db.query("SELECT min(day), max(day) FROM report_receipts")[0]
    if first is None:
        today = date.today()
        return today, today
    return date.fromisoformat(first), date.fromisoformat(last)
