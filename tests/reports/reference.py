# SPDX-License-Identifier: Apache-2.0
"""Every report worked out the slow, obvious way: Python loops over the receipt records.

No SQL, no grouping tricks, no shared scans: each figure is a filter and a
sum over the records as a till sent them, written from docs/reports.md. The
reports' SQL is compared against this on random data, so a faster query
cannot quietly change an answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from loyaltysdk.reports import (
    SEGMENTS,
    WEEKDAYS,
    CampaignRow,
    Growth,
    LiabilityRow,
    MemberStats,
    Pareto,
    ParetoRow,
    RevenueRow,
    RfmRow,
    StoreRow,
    TierRow,
)

Record = dict[str, Any]


def voided(records: Sequence[Record]) -> set[tuple[str, str]]:
    """The (till, ref) of each sale a void undid."""
    return {(r["till"], r["receipt"]) for r in records if r["type"] == "void"}


def is_visit(record: Record, undone: set[tuple[str, str]]) -> bool:
    return record["type"] == "sale" and (record["till"], record["ref"]) not in undone


def voucher_value(record: Record) -> int:
    return sum(v["amount"] for v in record["tenders"]["vouchers"])


def within(
    records: Iterable[Record], start: date, end: date, currency: str | None, store: str | None
) -> list[Record]:
    return [
        r
        for r in records
        if start.isoformat() <= r["day"] <= end.isoformat()
        and (currency is None or r["currency"] == currency)
        and (store is None or r["store"] == store)
    ]


def member_stats(
    records: Sequence[Record],
    tiers: dict[str, str],
    start: date,
    end: date,
    currency: str,
    store: str | None = None,
    minor_per_point: Fraction = Fraction(1),
) -> list[MemberStats]:
    undone = voided(records)
    mine = [r for r in within(records, start, end, currency, store) if r["member"] is not None]
    out = []
    for member in sorted({r["member"] for r in mine}):
        theirs = [r for r in mine if r["member"] == member]
        visits = [r for r in theirs if is_visit(r, undone)]
        if not visits:
            continue
        points = sum(r["points_redeemed"] for r in theirs)
        out.append(
            MemberStats(
                member,
                tiers.get(member, ""),
                len(visits),
                sum(r["total"] for r in theirs),
                max(date.fromisoformat(r["day"]) for r in visits),
                math.floor(points * minor_per_point) + sum(voucher_value(r) for r in theirs),
            )
        )
    return out


def pareto(stats: Sequence[MemberStats], limit: int = 20, points: int = 50) -> Pareto:
    ordered = sorted(stats, key=lambda s: (-s.revenue, s.member))
    total = sum(s.revenue for s in stats)

    def share(x: int) -> Fraction:
        return Fraction(x, total) if total else Fraction(0)

    n = len(ordered)
    top = math.ceil(n / 5)
    rows = tuple(
        ParetoRow(
            rank,
            s.member,
            s.tier,
            s.revenue,
            share(s.revenue),
            share(sum(t.revenue for t in ordered[:rank])),
            s.last_visit,
        )
        for rank, s in enumerate(ordered[:limit], start=1)
    )
    step = max(1, n // points)
    marks = [k for k in range(1, n + 1) if k % step == 0 or k == n]
    curve = (
        (Fraction(0), Fraction(0)),
        *((Fraction(k, n), share(sum(t.revenue for t in ordered[:k]))) for k in marks),
    )
    return Pareto(n, total, top, share(sum(s.revenue for s in ordered[:top])), rows, curve)


def scores(keyed: dict[str, Any]) -> dict[str, int]:
    """1 (worst) .. 5 (best) by position, worst first and ties by member: 12 give 3,3,2,2,2."""
    order = sorted(keyed, key=lambda m: (keyed[m], m))
    n = len(order)
    sizes = [n // 5 + (1 if g < n % 5 else 0) for g in range(5)]
    bounds = [sum(sizes[: g + 1]) for g in range(5)]
    return {m: next(g + 1 for g in range(5) if i < bounds[g]) for i, m in enumerate(order)}


def rfm(stats: Sequence[MemberStats], as_of: date, margin: Fraction) -> list[RfmRow]:
    recency = {s.member: (as_of - s.last_visit).days for s in stats}
    r = scores({m: -days for m, days in recency.items()})  # longer ago is worse
    f = scores({s.member: s.visits for s in stats})
    m = scores({s.member: s.revenue for s in stats})
    out = []
    for s in sorted(stats, key=lambda s: s.member):
        rs, fs, ms = r[s.member], f[s.member], m[s.member]
        if s.cost > s.revenue * margin:
            segment = SEGMENTS[0]
        elif min(rs, fs, ms) >= 4:
            segment = "most valuable"
        elif rs <= 2 and max(fs, ms) >= 4:
            segment = "at risk"
        elif rs >= 4 and fs <= 3 and ms >= 3:
            segment = "most growable"
        elif rs == 1 and fs <= 2:
            segment = "lost"
        else:
            segment = "others"
        out.append(
            RfmRow(s.member, recency[s.member], s.visits, s.revenue, s.cost, rs, fs, ms, segment)
        )
    return out


def tier_mix(stats: Sequence[MemberStats]) -> list[TierRow]:
    total = sum(s.revenue for s in stats)
    rows = []
    for tier in {s.tier for s in stats}:
        revenue = sum(s.revenue for s in stats if s.tier == tier)
        count = sum(1 for s in stats if s.tier == tier)
        rows.append(
            TierRow(tier, count, revenue, Fraction(revenue, total) if total else Fraction(0))
        )
    return sorted(rows, key=lambda t: (-t.revenue, t.tier))


def _less_one(after: int, before: int) -> Fraction:
    return Fraction(after, before) - 1 if before else Fraction(0)


def growth(
    records: Sequence[Record],
    before: tuple[date, date],
    after: tuple[date, date],
    currency: str,
    store: str | None = None,
) -> list[Growth]:
    undone = voided(records)
    seen = within(records, min(before[0], after[0]), max(before[1], after[1]), currency, store)
    out = []
    for place in sorted({r["store"] for r in seen} | ({"*"} if seen else set())):
        here = [r for r in seen if place in ("*", r["store"])]
        first = within(here, *before, None, None)
        second = within(here, *after, None, None)
        cohort = {r["member"] for r in first if r["member"] is not None and is_visit(r, undone)}
        visits_b = sum(1 for r in first if r["member"] in cohort and is_visit(r, undone))
        later = [r for r in second if r["member"] in cohort]
        back = {r["member"] for r in later if is_visit(r, undone)}
        visits_a = sum(1 for r in later if is_visit(r, undone))
        rev_b, rev_a = sum(r["total"] for r in first), sum(r["total"] for r in second)
        spend_b = sum(r["total"] for r in first if r["member"] in cohort)
        spend_a = sum(r["total"] for r in later)
        out.append(
            Growth(
                place,
                currency,
                rev_b,
                rev_a,
                _less_one(rev_a, rev_b),
                len(cohort),
                len(back),
                Fraction(len(back), len(cohort)) if cohort else Fraction(0),
                visits_b,
                visits_a,
                _less_one(visits_a, visits_b),
                spend_b,
                spend_a,
                _less_one(spend_a, spend_b),
            )
        )
    return out


def liability(records: Sequence[Record]) -> list[LiabilityRow]:
    out, outstanding = [], 0
    for month in sorted({r["day"][:7] for r in records}):
        earned = sum(r["points_earned"] for r in records if r["day"][:7] == month)
        redeemed = sum(r["points_redeemed"] for r in records if r["day"][:7] == month)
        outstanding += earned - redeemed
        out.append(LiabilityRow(month, earned, redeemed, outstanding))
    return out


def _band(visits: int) -> int:
    return 0 if visits == 0 else 1 if visits == 1 else 2 if visits == 2 else 3 if visits <= 4 else 4


def campaigns(
    records: Sequence[Record],
    tiers: dict[str, str],
    issued: dict[str, int],
    start: date,
    end: date,
    currency: str,
    store: str | None = None,
) -> list[CampaignRow]:
    undone = voided(records)
    spend = {s.member: s.revenue for s in member_stats(records, tiers, start, end, currency, store)}
    length = (end - start).days + 1
    prior_window = (start - timedelta(days=length), start - timedelta(days=1))
    prior = member_stats(records, tiers, *prior_window, currency, store)
    band = {s.member: _band(s.visits) for s in prior}
    population = set(spend) | set(band)
    sales = [r for r in within(records, start, end, currency, store) if is_visit(r, undone)]
    # One voucher once a receipt, its parts summed, under its first part's campaign.
    used_all: list[tuple[str, int, str | None]] = []
    for r in sales:
        merged: dict[str, list[Any]] = {}
        for v in r["tenders"]["vouchers"]:
            merged.setdefault(v["code"], [v["campaign"], 0])[1] += v["amount"]
        used_all.extend((name, amount, r["member"]) for name, amount in merged.values())
    out = []
    for campaign in sorted({name for name, _, _ in used_all} - {""}):
        used = [amount for name, amount, _ in used_all if name == campaign]
        redeemers = {m for name, _, m in used_all if name == campaign and m is not None}
        count, value = len(used), sum(used)
        mine = [spend.get(m, 0) for m in redeemers]
        redeemer_avg = Fraction(sum(mine), len(mine)) if mine else Fraction(0)
        weighted, weight, comparable = Fraction(0), 0, 0
        for b in range(5):
            group = [m for m in redeemers if band.get(m, 0) == b]
            others = [spend.get(m, 0) for m in population - redeemers if band.get(m, 0) == b]
            if group and others:
                weighted += Fraction(len(group) * sum(others), len(others))
                weight += len(group)
                comparable += len(others)
        comparable_avg = weighted / weight if weight else Fraction(0)
        incremental = redeemer_avg - comparable_avg if weight else Fraction(0)
        n = issued.get(campaign, 0)
        out.append(
            CampaignRow(
                campaign,
                currency,
                n,
                count,
                value,
                Fraction(count, n) if n else Fraction(0),
                len(redeemers),
                redeemer_avg,
                comparable,
                comparable_avg,
                incremental,
                incremental * len(redeemers) / value if value else Fraction(0),
            )
        )
    return out


def _mean_z(a: list[int], b: list[int]) -> float:
    """Welch's statistic from the two samples' (n, sum, sum of squares), as the report has it."""
    (n1, s1, q1), (n2, s2, q2) = [(len(x), sum(x), sum(v * v for v in x)) for x in (a, b)]
    if n1 < 2 or n2 < 2:
        return 0.0
    m1, m2 = s1 / n1, s2 / n2
    v1 = (q1 - n1 * m1 * m1) / (n1 - 1)
    v2 = (q2 - n2 * m2 * m2) / (n2 - 1)
    se = math.sqrt(max(v1, 0.0) / n1 + max(v2, 0.0) / n2)
    return (m1 - m2) / se if se else 0.0


def _proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    if not n1 or not n2:
        return 0.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return (k1 / n1 - k2 / n2) / se if se else 0.0


def stores(
    records: Sequence[Record],
    start: date,
    end: date,
    currency: str,
    store: str | None = None,
    critical: float = 0.0,
) -> list[StoreRow]:
    """Each store's row; `critical` is the |z| beyond which a figure differs.

    The repeat test counts a member with only refunds at the store among those
    seen (its denominator), the repeat rate does not: both as the report has them.
    """
    undone = voided(records)
    seen = within(records, start, end, currency, store)
    places = sorted({r["store"] for r in seen})

    def baskets(where: Iterable[Record]) -> list[int]:
        return [r["total"] for r in where if is_visit(r, undone)]

    def visits_of(here: list[Record]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in here:
            if r["member"] is not None:
                counts[r["member"]] = counts.get(r["member"], 0) + is_visit(r, undone)
        return counts

    counts = {place: visits_of([r for r in seen if r["store"] == place]) for place in places}
    out = []
    for place in places:
        here = [r for r in seen if r["store"] == place]
        visits = counts[place]
        members = sorted(m for m, c in visits.items() if c > 0)
        spend = sorted(
            (sum(r["total"] for r in here if r["member"] == m) for m in members), reverse=True
        )
        top = math.ceil(len(spend) / 5)
        repeaters = sum(1 for m in members if visits[m] >= 2)
        others = [p for p in places if p != place]
        repeat_z = _proportion_z(
            repeaters,
            len(visits),
            sum(sum(1 for c in counts[p].values() if c >= 2) for p in others),
            sum(len(counts[p]) for p in others),
        )
        basket_z = _mean_z(baskets(here), baskets(r for r in seen if r["store"] != place))
        receipts = len(baskets(here))
        revenue = sum(r["total"] for r in here)
        out.append(
            StoreRow(
                place,
                currency,
                receipts,
                len(members),
                revenue,
                Fraction(revenue, receipts) if receipts else Fraction(0),
                Fraction(repeaters, len(members)) if members else Fraction(0),
                Fraction(sum(spend[:top]), sum(spend)) if sum(spend) else Fraction(0),
                basket_z,
                repeat_z,
                tuple(
                    name
                    for name, z in (("basket", basket_z), ("repeat rate", repeat_z))
                    if abs(z) > critical
                ),
            )
        )
    return out


def revenue(
    records: Sequence[Record], start: date, end: date, by: str, store: str | None = None
) -> list[RevenueRow]:
    undone = voided(records)
    seen = within(records, start, end, None, store)

    def key(r: Record) -> str:
        if by == "store":
            return str(r["store"])
        if by == "month":
            return str(r["day"][:7])
        if by == "weekday":
            return WEEKDAYS[date.fromisoformat(r["day"]).weekday()]
        return f"{r['hour']:02d}"

    out = []
    for unit, k in {(r["currency"], key(r)) for r in seen}:
        group = [r for r in seen if r["currency"] == unit and key(r) == k]
        sales = sum(r["total"] for r in group if r["type"] == "sale")
        refunds = sum(r["total"] for r in group if r["type"] != "sale")
        receipts = sum(1 for r in group if is_visit(r, undone))
        out.append(RevenueRow(unit, k, receipts, sales, refunds, sales + refunds))
    order = {day: n for n, day in enumerate(WEEKDAYS)}
    return sorted(out, key=lambda r: (r.currency, order.get(r.key, 0), r.key))
