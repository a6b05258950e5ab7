# SPDX-License-Identifier: Apache-2.0
"""The reports head office acts on, computed in SQL aggregates plus exact arithmetic.

Every figure is an integer (minor units, points, counts) or an exact ratio
(`Fraction`); percentages are rendered only at the edge. Definitions are
stated in docs/reports.md and pinned by hand-computed fixtures in the tests.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, timedelta
from fractions import Fraction
from itertools import accumulate
from operator import attrgetter
from typing import Any

import attrs

from ._data import PostgresDb, SQLiteDb

Db = SQLiteDb | PostgresDb

# A sale that counts as a visit: not undone by a void. Refunds and voids are
# rows of their own with negative figures, so sums over every row are net.
_VISIT = "CASE WHEN type = 'sale' AND voided = 0 THEN 1 ELSE 0 END"


def _sum(expr: str) -> str:
    """sum() as a 64-bit integer: PostgreSQL sums bigints as numeric, which the driver
    turns into Decimal objects one by one (a second per 100,000s of rows)."""
    return f"CAST(sum({expr}) AS BIGINT)"


def _at_store(store: str | None, alias: str = "") -> tuple[str, tuple[str, ...]]:
    """The SQL condition (and its argument) keeping one store's receipts, or none."""
    return ("", ()) if store is None else (f" AND {alias}store = ?", (store,))


# The currencies there are, one index probe each (a loose index scan): every index
# on the receipts (SQLite's covering ones, PostgreSQL's on currency and day) leads
# with the currency, so each step finds the next one without reading the receipts.
_CURRENCIES = (
    "WITH RECURSIVE found(currency) AS (SELECT min(currency) FROM report_receipts"
    " UNION ALL SELECT (SELECT min(r.currency) FROM report_receipts r"
    " WHERE r.currency > found.currency) FROM found WHERE found.currency IS NOT NULL)"
)


def _distinct_currencies(db: Db) -> list[str]:
    rows = db.query(f"{_CURRENCIES} SELECT currency FROM found")  # noqa: S608 - constant SQL
    return [str(c) for (c,) in rows if c is not None]


def currencies(db: Db) -> list[str]:
    """The currencies receipts were taken in, most receipts first."""
    found = _distinct_currencies(db)
    if len(found) < 2:  # nothing to order: the receipts need not be counted
        return found
    rows = db.query(
        "SELECT currency, count(*) FROM report_receipts GROUP BY currency ORDER BY 2 DESC, 1"
    )
    return [currency for currency, _ in rows]


def currency_of(db: Db, currency: str | None) -> str:
    """`currency`, or the only one there is: money in two currencies is never added up.

    Raises:
        ValueError: receipts in several currencies and none named.
    """
    if currency is not None:
        return currency
    found = _distinct_currencies(db)
    if len(found) > 1:
        found = currencies(db)
        raise ValueError(f"receipts are in {', '.join(found)}: name one currency")
    return found[0] if found else "EUR"


@attrs.frozen
class MemberStats:
    member: str
    tier: str
    visits: int
    revenue: int
    last_visit: date
    cost: int  # rewards given: points redeemed (at their value) and vouchers


def member_stats(
    db: Db,
    start: date,
    end: date,
    *,
    currency: str | None = None,
    minor_per_point: Fraction = Fraction(1),
    store: str | None = None,
) -> list[MemberStats]:
    """Per member over [start, end] in one currency: visits, revenue net of refunds and
    voids, last visit, rewards cost (one scan). Members without a visit in the window
    (only a refund, or a voided sale) are left out. `store`: its receipts only."""
    at_store, store_args = _at_store(store)
    rows = db.query(
        "SELECT a.member, coalesce(m.tier, ''), a.visits, a.revenue, a.last, a.points,"  # noqa: S608 - constant SQL fragments
        f" a.vouchers FROM (SELECT member, sum({_VISIT}) AS visits, {_sum('total')} AS revenue,"
        " max(CASE WHEN type = 'sale' AND voided = 0 THEN day END) AS last,"
        f" {_sum('points_redeemed')} AS points, {_sum('voucher_value')} AS vouchers"
        " FROM report_receipts WHERE member IS NOT NULL AND day >= ? AND day <= ?"
        # Grouped by member alone, in the index's order (no sort), and only then
        # joined to the member's tier: one lookup a member, not one a receipt.
        f" AND currency = ?{at_store} GROUP BY member) AS a"
        " LEFT JOIN report_members m ON m.member = a.member WHERE a.visits > 0",
        (start.isoformat(), end.isoformat(), currency_of(db, currency), *store_args),
    )
    # floor(points x minor_per_point) in integers; a day parsed once, not once a member.
    num, den = minor_per_point.numerator, minor_per_point.denominator
    days: dict[str, date] = {}
    return [
        MemberStats(
            member,
            tier,
            int(visits),
            int(revenue),
            days.get(last) or days.setdefault(last, date.fromisoformat(last)),
            int(points) * num // den + int(vouchers),
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
    # By revenue, highest first, ties by member: two stable sorts on one key each
    # are several times faster than one on a tuple built for every member.
    ordered = sorted(stats, key=attrgetter("member"))
    ordered.sort(key=attrgetter("revenue"), reverse=True)
    running_totals = list(accumulate(s.revenue for s in ordered))
    total = running_totals[-1] if running_totals else 0
    n = len(ordered)
    top = math.ceil(n / 5)
    top_share = Fraction(running_totals[top - 1], total) if total else Fraction(0)
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
    step = max(1, n // points)
    for index in [*range(step, n + 1, step), *([n] if n % step else [])]:
        cumulative = running_totals[index - 1]
        curve.append((Fraction(index, n), Fraction(cumulative, total) if total else Fraction(0)))
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


def _quintiles(keys: list[int]) -> list[int]:
    """Scores 1 (worst) .. 5 (best) by position, as SQL's NTILE(5) deals them out.

    `keys[i]` is item i's figure, lower is worse; items come in member order,
    so a stable sort on the figure alone leaves ties by member id and the
    result is deterministic. They are dealt into five groups as equal as
    possible, the first groups taking the remainder: 12 members give 3, 3, 2, 2, 2.
    """
    n = len(keys)
    ordered = sorted(range(n), key=keys.__getitem__)
    scores = [0] * n
    index = 0
    for group in range(5):
        size = n // 5 + (1 if group < n % 5 else 0)
        for item in ordered[index : index + size]:
            scores[item] = group + 1
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
    ordered = sorted(stats, key=attrgetter("member"))
    recency = [(as_of - s.last_visit).days for s in ordered]
    r = _quintiles([-days for days in recency])  # the longest ago is the worst
    f = _quintiles([s.visits for s in ordered])
    m = _quintiles([s.revenue for s in ordered])
    # cost > revenue * margin, in integers (a Fraction per member costs a second per 100 k).
    num, den = margin.numerator, margin.denominator
    rows = []
    for s, days, rs, fs, ms in zip(ordered, recency, r, f, m, strict=True):
        if s.cost * den > s.revenue * num:
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
        rows.append(RfmRow(s.member, days, s.visits, s.revenue, s.cost, rs, fs, ms, segment))
    return rows


# -- growth ----------------------------------------------------------------------------------


@attrs.frozen
class Growth:
    """One store's (or the chain's, ``*``) growth, `after` over `before` (docs/reports.md)."""

    store: str
    currency: str
    revenue_before: int
    revenue_after: int
    revenue_growth: Fraction
    members_before: int
    returned: int
    revisit_rate: Fraction
    visits_before: int
    visits_after: int
    revisit_growth: Fraction
    spend_before: int
    spend_after: int
    spend_growth: Fraction


def _ratio_less_one(after: int, before: int) -> Fraction:
    return Fraction(after, before) - 1 if before else Fraction(0)


def growth(
    db: Db,
    before: tuple[date, date],
    after: tuple[date, date],
    *,
    currency: str | None = None,
    store: str | None = None,
) -> list[Growth]:
    """Per store and for the chain (``*``): revenue growth over all receipts; and of the
    cohort (members with a visit in `before`, at that store), how many came back in
    `after`, how their visits and their spend changed. `store`: that store (and ``*``) only."""
    unit = currency_of(db, currency)
    b0, b1, a0, a1 = (d.isoformat() for d in (*before, *after))
    window = (min(b0, a0), max(b1, a1))
    in_before = "day >= ? AND day <= ?"
    at_store, store_args = _at_store(store)
    after_window = "day >= ? AND day <= ?"
    # One scan groups the receipts per store and member; the chain's rows are the
    # members' sums over their stores (a member who moved stores came back to the chain).
    per_member = (
        "WITH per AS (SELECT store AS g, member,"  # noqa: S608 - constant SQL fragments
        f" sum(CASE WHEN {in_before} THEN {_VISIT} ELSE 0 END) AS vb,"
        f" sum(CASE WHEN {after_window} THEN {_VISIT} ELSE 0 END) AS va,"
        f" sum(CASE WHEN {in_before} THEN total ELSE 0 END) AS sb,"
        f" sum(CASE WHEN {after_window} THEN total ELSE 0 END) AS sa"
        f" FROM report_receipts WHERE currency = ? AND day >= ? AND day <= ?{at_store}"
        " GROUP BY store, member),"
        " chain AS (SELECT '*' AS g, member, sum(vb) AS vb, sum(va) AS va, sum(sb) AS sb,"
        " sum(sa) AS sa FROM per GROUP BY member)"
    )
    # The cohort's figures are summed in SQL: only a row per store comes back.
    c = "member IS NOT NULL AND vb > 0"
    cohort = ", ".join(_sum(f"CASE WHEN {c} THEN {x} ELSE 0 END") for x in ("vb", "va", "sb", "sa"))
    rows = db.query(
        f"{per_member} SELECT g, {_sum('sb')}, {_sum('sa')}, sum(CASE WHEN {c} THEN 1 ELSE 0 END),"  # noqa: S608 - constant SQL fragments
        f" sum(CASE WHEN {c} AND va > 0 THEN 1 ELSE 0 END), {cohort}"
        " FROM (SELECT * FROM per UNION ALL SELECT * FROM chain) AS groups GROUP BY g",
        (b0, b1, a0, a1, b0, b1, a0, a1, unit, *window, *store_args),
    )
    out = []
    for store, rev_b, rev_a, members, returned, visits_b, visits_a, spend_b, spend_a in sorted(
        rows, key=lambda row: str(row[0])
    ):
        rev_b, rev_a, members, returned = int(rev_b), int(rev_a), int(members), int(returned)
        visits_b, visits_a, spend_b, spend_a = map(int, (visits_b, visits_a, spend_b, spend_a))
        out.append(
            Growth(
                str(store),
                unit,
                rev_b,
                rev_a,
                _ratio_less_one(rev_a, rev_b),
                members,
                returned,
                Fraction(returned, members) if members else Fraction(0),
                visits_b,
                visits_a,
                _ratio_less_one(visits_a, visits_b),
                spend_b,
                spend_a,
                _ratio_less_one(spend_a, spend_b),
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
    # Summed per store and day first: on SQLite that is its per-day index in order
    # (no sort of every receipt by month), and a few thousand days are then summed.
    rows = db.query(
        "SELECT substr(day, 1, 7), sum(earned), sum(redeemed) FROM (SELECT day,"
        " sum(points_earned) AS earned, sum(points_redeemed) AS redeemed FROM report_receipts"
        " GROUP BY currency, store, day) AS days GROUP BY substr(day, 1, 7) ORDER BY 1"
    )
    out, outstanding = [], 0
    for month, earned, redeemed in rows:
        outstanding += int(earned) - int(redeemed)
        out.append(LiabilityRow(month, int(earned), int(redeemed), outstanding))
    return out


@attrs.frozen
class CampaignRow:
    """One campaign's vouchers and what they brought (docs/reports.md, "Campaigns")."""

    campaign: str
    currency: str
    issued: int
    redeemed: int
    value: int  # value granted: what the redeemed vouchers took off (minor units)
    uptake: Fraction
    redeemers: int
    redeemer_spend: Fraction  # average net spend in the window per redeemer
    comparable: int  # non-redeemers in the comparison
    comparable_spend: Fraction  # their average, weighted to the redeemers' visit bands
    incremental: Fraction  # redeemer_spend - comparable_spend
    return_per_value: Fraction  # incremental spend of all redeemers / value granted


def _band(visits: int) -> int:
    """Visits in the prior window, banded: 0, 1, 2, 3-4, 5 or more."""
    return min(visits, 3) if visits < 3 else (3 if visits < 5 else 4)


def campaigns(
    db: Db,
    start: date,
    end: date,
    stats: list[MemberStats] | None = None,
    *,
    currency: str | None = None,
    store: str | None = None,
) -> list[CampaignRow]:
    """Per campaign: vouchers issued and redeemed, value granted, redeemers' spend against
    comparable non-redeemers (same visit band in the equal window before), the return.

    `stats` (from `member_stats` over the same window and store) saves a scan. `store`:
    vouchers redeemed and spend at that store only (vouchers issued are the chain's).
    """
    unit = currency_of(db, currency)
    window = (start.isoformat(), end.isoformat())
    at_store, store_args = _at_store(store, "r.")
    # One pass over the (few) vouchers, each joined to its receipt by key: CROSS
    # JOIN keeps SQLite to that order (its planner would otherwise scan every
    # receipt and look the vouchers up), and the currency test is written so it
    # cannot start from the receipts' index either.
    used = db.query(
        "SELECT v.campaign, r.member, v.amount FROM report_vouchers v"  # noqa: S608 - constant SQL fragments
        " CROSS JOIN report_receipts r WHERE r.till = v.till AND r.ref = v.ref"
        " AND v.campaign != '' AND r.type = 'sale' AND r.voided = 0"
        f" AND r.day >= ? AND r.day <= ? AND r.currency || '' = ?{at_store}",
        (*window, unit, *store_args),
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    redeemers: dict[str, set[str]] = defaultdict(set)
    for campaign, member, amount in used:
        counts[campaign][0] += 1
        counts[campaign][1] += int(amount)
        if member is not None:
            redeemers[campaign].add(member)
    uses = [(c, n, v) for c, (n, v) in counts.items()]
    issued = {c: int(n) for c, n in db.query("SELECT campaign, issued FROM report_campaigns")}
    if stats is None:
        stats = member_stats(db, start, end, currency=unit, store=store)
    spend = {s.member: s.revenue for s in stats}
    length = (end - start).days + 1
    prior = member_stats(
        db,
        start - timedelta(days=length),
        start - timedelta(days=1),
        currency=unit,
        store=store,
    )
    band = {s.member: _band(s.visits) for s in prior}
    population = set(spend) | set(band)
    out = []
    for campaign, count, value in sorted(uses):
        group = redeemers[campaign]
        mine = [spend.get(m, 0) for m in group]
        redeemer_avg = Fraction(sum(mine), len(mine)) if mine else Fraction(0)
        others: dict[int, list[int]] = defaultdict(list)
        for member in population - group:
            others[band.get(member, 0)].append(spend.get(member, 0))
        weights: dict[int, int] = defaultdict(int)
        for member in group:
            weights[band.get(member, 0)] += 1
        matched = [b for b in weights if others[b]]
        weight = sum(weights[b] for b in matched)
        comparable_avg = (
            sum(
                (Fraction(weights[b] * sum(others[b]), len(others[b])) for b in matched),
                Fraction(0),
            )
            / weight
            if weight
            else Fraction(0)
        )
        incremental = redeemer_avg - comparable_avg if weight else Fraction(0)
        n_issued = issued.get(campaign, 0)
        out.append(
            CampaignRow(
                campaign,
                unit,
                n_issued,
                int(count),
                int(value),
                Fraction(int(count), n_issued) if n_issued else Fraction(0),
                len(group),
                redeemer_avg,
                sum(len(others[b]) for b in matched),
                comparable_avg,
                incremental,
                incremental * len(group) / int(value) if int(value) else Fraction(0),
            )
        )
    return out


@attrs.frozen
class StoreRow:
    """One store beside the others (docs/reports.md, "Stores")."""

    store: str
    currency: str
    receipts: int
    members: int
    revenue: int
    average_basket: Fraction
    repeat_rate: Fraction  # members with two or more visits / members
    top_fifth_share: Fraction
    basket_z: float  # the store's average basket against all other stores', in standard errors
    repeat_z: float  # its repeat rate against the others', likewise
    differs: tuple[str, ...]  # which of the two differ beyond chance (5 %, Bonferroni)


def _z_critical(alpha: float) -> float:
    """The two-sided normal critical value for `alpha`, by bisection on erf."""
    low, high = 0.0, 10.0
    for _ in range(60):
        mid = (low + high) / 2
        if math.erfc(mid / math.sqrt(2)) > alpha:
            low = mid
        else:
            high = mid
    return high


def stores(
    db: Db, start: date, end: date, *, currency: str | None = None, store: str | None = None
) -> list[StoreRow]:
    """Store by store: receipts, members, net revenue, average basket, repeat rate, top-fifth
    share, and whether its basket or repeat rate differs from the other stores' beyond chance.
    `store`: that store's row alone (with no others to compare, nothing differs)."""
    unit = currency_of(db, currency)
    at_store, store_args = _at_store(store)
    window = (start.isoformat(), end.isoformat(), unit, *store_args)
    per_member = (
        f"SELECT store, member, sum({_VISIT}) AS c, {_sum('total')} AS t,"  # noqa: S608 - constant SQL fragments
        f" sum(CASE WHEN {_VISIT} = 1 THEN total * total ELSE 0 END) AS q,"
        f" {_sum(f'CASE WHEN {_VISIT} = 1 THEN total ELSE 0 END')} AS s"
        f" FROM report_receipts WHERE day >= ? AND day <= ? AND currency = ?{at_store}"
        " GROUP BY store, member"
    )
    # Per store: receipts (visits, also the basket test's n), net revenue, what the
    # visits took and its sum of squares, repeaters, members seen (the repeat test's
    # n), visiting members, their spend, and the spend of the top fifth of them.
    # One pass over the groups, in SQLite's index order. (Ranking each store's members
    # in SQL instead, with a window, sorts them again: slower on both engines.)
    per: dict[str, list[int]] = {}
    spends: dict[str, list[int]] = {}
    for store_key, member, count, total, squares, sold in db.query(per_member, window):
        acc = per.get(store_key)
        if acc is None:
            acc = per[store_key] = [0] * 9
            spends[store_key] = []
        count, total = int(count), int(total)
        acc[0] += count
        acc[1] += total
        acc[2] += int(sold)
        acc[3] += int(squares)  # a Decimal from PostgreSQL: summed as numeric, exact
        if member is not None:
            acc[5] += 1
            if count > 0:
                spends[store_key].append(total)
                if count >= 2:
                    acc[4] += 1
    for store_key, ranked in spends.items():
        ranked.sort(reverse=True)
        acc = per[store_key]
        acc[6], acc[7] = len(ranked), sum(ranked)
        acc[8] = sum(ranked[: math.ceil(len(ranked) / 5)])
    everything = [sum(acc[i] for acc in per.values()) for i in range(6)]
    critical = _z_critical(0.05 / max(1, len(per)))
    out = []
    for store_key in sorted(per):
        receipts, revenue, sold, squares, repeaters, seen, members, spend, top = per[store_key]
        rest = [everything[0] - receipts, everything[2] - sold, everything[3] - squares]
        basket_z = _mean_z([receipts, sold, squares], rest)
        repeat_z = _proportion_z(repeaters, seen, everything[4] - repeaters, everything[5] - seen)
        out.append(
            StoreRow(
                store_key,
                unit,
                receipts,
                members,
                revenue,
                Fraction(revenue, receipts) if receipts else Fraction(0),
                Fraction(repeaters, members) if members else Fraction(0),
                Fraction(top, spend) if spend else Fraction(0),
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


def _mean_z(mine: list[int], rest: list[int]) -> float:
    """Welch's statistic for two means from (n, sum, sum of squares); 0 when undefined."""
    (n1, s1, q1), (n2, s2, q2) = mine, rest
    if n1 < 2 or n2 < 2:
        return 0.0
    m1, m2 = s1 / n1, s2 / n2
    v1 = (q1 - n1 * m1 * m1) / (n1 - 1)
    v2 = (q2 - n2 * m2 * m2) / (n2 - 1)
    se = math.sqrt(max(v1, 0.0) / n1 + max(v2, 0.0) / n2)
    return (m1 - m2) / se if se else 0.0


def _proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    """The two-proportion z statistic (pooled); 0 when undefined."""
    if not n1 or not n2:
        return 0.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return (k1 / n1 - k2 / n2) / se if se else 0.0


# -- revenue and tiers ---------------------------------------------------------------------


@attrs.frozen
class RevenueRow:
    """Net revenue of one currency for one key of a breakdown."""

    currency: str
    key: str  # a store, a month (YYYY-MM), a weekday (Mon..Sun) or an hour (00..23)
    receipts: int  # sales not voided
    sales: int  # what those sales took
    refunds: int  # what refunds and voids gave back (negative or zero)
    revenue: int  # sales + refunds: net


BREAKDOWNS = ("store", "month", "weekday", "hour")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def revenue_breakdowns(
    db: Db, start: date, end: date, *, store: str | None = None
) -> dict[str, list[RevenueRow]]:
    """Net revenue per currency (never added across) by store, month, weekday and hour
    (`store`: of that store's receipts only).

    The receipts are grouped per store, day and hour (on SQLite one scan of its
    per-day index, on PostgreSQL two scans) and each breakdown is summed from
    those groups. A refund or void counts on its own day, at its own store and hour.
    """
    at_store, store_args = _at_store(store)
    sales = _sum("CASE WHEN type = 'sale' THEN total ELSE 0 END")
    returns = _sum("CASE WHEN type != 'sale' THEN total ELSE 0 END")
    figures = (
        f"sum({_VISIT}), {sales}, {returns}"
        f" FROM report_receipts WHERE day >= ? AND day <= ?{at_store}"
    )
    window = (start.isoformat(), end.isoformat(), *store_args)
    sums: dict[str, dict[tuple[str, str], list[int]]] = {
        by: defaultdict(lambda: [0, 0, 0]) for by in BREAKDOWNS
    }
    if db.dialect == "postgres":
        # Two scans with small hash tables, each in parallel: per store and day (a
        # few thousand groups, rolled up below) and per hour. Grouping sets of the
        # four would be one scan, but PostgreSQL runs those in one process only.
        per_day = [
            (unit, store_key, day, WEEKDAYS[int(weekday)], counts)
            for unit, store_key, day, weekday, *counts in db.query(
                f"SELECT currency, store, day, weekday, {figures}"
                " GROUP BY currency, store, day, weekday",
                window,
            )
        ]
        per_hour = [
            (unit, hour, counts)
            for unit, hour, *counts in db.query(
                f"SELECT currency, hour, {figures} GROUP BY currency, hour", window
            )
        ]
        return _roll_up(sums, per_day, per_hour)
    rows = db.query(
        f"SELECT currency, store, day, hour, {figures} GROUP BY currency, store, day, hour",
        window,
    )
    # Summed per store and day and per hour as the groups come (SQLite's integers),
    # then the few thousand days rolled up into stores, months and weekdays.
    days: dict[tuple[str, str, str], list[int]] = {}
    hours: dict[tuple[str, int], list[int]] = {}
    for unit, store_key, day, hour, receipts, sales, refunds in rows:
        acc = days.get((unit, store_key, day))
        if acc is None:
            acc = days[(unit, store_key, day)] = [0, 0, 0]
        acc[0] += receipts
        acc[1] += sales
        acc[2] += refunds
        acc = hours.get((unit, hour))
        if acc is None:
            acc = hours[(unit, hour)] = [0, 0, 0]
        acc[0] += receipts
        acc[1] += sales
        acc[2] += refunds
    weekday_of: dict[str, str] = {}
    for day in {day for _, _, day in days}:
        weekday_of[day] = WEEKDAYS[date.fromisoformat(day).weekday()]
    return _roll_up(
        sums,
        [(u, k, day, weekday_of[day], counts) for (u, k, day), counts in days.items()],
        [(u, hour, counts) for (u, hour), counts in hours.items()],
    )


def _roll_up(
    sums: dict[str, dict[tuple[str, str], list[int]]],
    per_day: list[tuple[str, Any, str, str, list[Any]]],
    per_hour: list[tuple[str, Any, list[Any]]],
) -> dict[str, list[RevenueRow]]:
    """The four breakdowns from figures per currency, store and day (with its weekday)
    and per currency and hour."""
    for unit, store_key, day, weekday, counts in per_day:
        for by, key in (("store", str(store_key)), ("month", day[:7]), ("weekday", weekday)):
            acc = sums[by][(unit, key)]
            for i in range(3):
                acc[i] += int(counts[i])
    for unit, hour, counts in per_hour:
        sums["hour"][(unit, f"{int(hour):02d}")] = [int(x) for x in counts]
    return _breakdown_rows(sums)


def _breakdown_rows(
    sums: dict[str, dict[tuple[str, str], list[int]]],
) -> dict[str, list[RevenueRow]]:
    order = {day: n for n, day in enumerate(WEEKDAYS)}
    out = {}
    for by, groups in sums.items():
        keyed = sorted(groups.items(), key=lambda g: (g[0][0], order.get(g[0][1], 0), g[0][1]))
        out[by] = [
            RevenueRow(unit, key, receipts, sales, refunds, sales + refunds)
            for (unit, key), (receipts, sales, refunds) in keyed
        ]
    return out


def revenue(db: Db, start: date, end: date, *, by: str = "store") -> list[RevenueRow]:
    """Net revenue per currency and per store, month, weekday or hour (`revenue_breakdowns`)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"revenue is broken down by one of {list(BREAKDOWNS)}")
    return revenue_breakdowns(db, start, end)[by]


@attrs.frozen
class TierRow:
    tier: str
    members: int
    revenue: int
    share: Fraction  # of all member revenue


def tier_mix(stats: list[MemberStats]) -> list[TierRow]:
    """Members and revenue per tier, from `member_stats`."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in stats:
        per[s.tier][0] += 1
        per[s.tier][1] += s.revenue
    total = sum(v[1] for v in per.values())
    return [
        TierRow(tier, n, rev, Fraction(rev, total) if total else Fraction(0))
        for tier, (n, rev) in sorted(per.items(), key=lambda item: (-item[1][1], item[0]))
    ]


def period(db: Db) -> tuple[date, date]:
    """The first and last day with receipts."""
    if db.dialect == "postgres":
        # Each currency's first and last day, two probes of the (currency, day) index.
        # (SQLite's indexes put the store before the day: one pass over the smallest.)
        sql = (
            f"{_CURRENCIES} SELECT min(lo), max(hi) FROM (SELECT"  # noqa: S608 - constant SQL fragments
            " (SELECT min(r.day) FROM report_receipts r WHERE r.currency = found.currency) AS lo,"
            " (SELECT max(r.day) FROM report_receipts r WHERE r.currency = found.currency) AS hi"
            " FROM found WHERE found.currency IS NOT NULL) AS spans"
        )
    else:
        sql = "SELECT min(day), max(day) FROM report_receipts"
    first, last = db.query(sql)[0]
    if first is None:
        today = date.today()
        return today, today
    return date.fromisoformat(first), date.fromisoformat(last)
