# SPDX-License-Identifier: Apache-2.0
"""All reports in one self-contained HTML file with charts (plotly, its JavaScript inlined).

The file needs no network to open: plotly.js is embedded once, and every
chart and table is static data in the page. Filters (a window of days, one
store) apply to every report; a GET form on the page (`from`, `to`, `store`,
`currency`) asks the same URL again with others, as the hub's
``GET /v1/admin/report`` serves it.
"""

from __future__ import annotations

import html
from collections import Counter
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from .._extras import require
from .._money import Money
from ._data import PostgresDb, SQLiteDb
from ._reports import (
    SEGMENTS,
    WEEKDAYS,
    campaigns,
    currencies,
    currency_of,
    growth,
    liability,
    member_stats,
    pareto,
    period,
    revenue_breakdowns,
    rfm,
    stores,
)


def _pct(value: Fraction) -> str:
    return f"{float(value) * 100:.1f} %"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _form(
    start: date | None,
    end: date | None,
    store: str | None,
    currency: str,
    known_stores: list[str],
    known_currencies: list[str],
    period: tuple[date, date],
) -> str:
    """The filter form: GET to the page itself, with what is shown filled in."""

    def option(value: str, label: str, chosen: bool) -> str:
        selected = " selected" if chosen else ""
        return f"<option value='{html.escape(value)}'{selected}>{html.escape(label)}</option>"

    def day(name: str, label: str, value: date | None) -> str:
        shown = value.isoformat() if value else ""
        return (
            f"<label>{label} <input type='date' name='{name}' value='{shown}'"
            f" placeholder='{period[0] if name == 'from' else period[1]}'></label> "
        )

    store_options = option("", "All stores", store is None) + "".join(
        option(s, s, s == store) for s in known_stores
    )
    fields = [
        day("from", "From", start),
        day("to", "to", end),
        f"<label>Store <select name='store'>{store_options}</select></label> ",
    ]
    if len(known_currencies) > 1:
        choices = "".join(option(c, c, c == currency) for c in known_currencies)
        fields.append(f"<label>Currency <select name='currency'>{choices}</select></label> ")
    return (
        "<form id='filters' method='get'>"
        + "".join(fields)
        + "<button type='submit'>Show</button></form>"
    )


def html_report(
    db: SQLiteDb | PostgresDb,
    *,
    currency: str | None = None,
    title: str = "Loyalty programme report",
    margin: Fraction = Fraction(1, 4),
    start: date | None = None,
    end: date | None = None,
    store: str | None = None,
) -> str:
    """Every report, with charts, as one HTML document.

    `start` and `end` (inclusive; default the first and last day with
    receipts) and `store` (default all) filter every report but the points
    liability, which is the chain's (points earned at one store are spent
    at another): of that, the months of the window are shown.
    """
    require("plotly", extra="reports", feature="the HTML report's charts")
    import plotly.graph_objects as go
    import plotly.io as pio

    currency = currency_of(db, currency)  # one currency a report: money is never mixed
    data_first, data_last = period(db)
    # The window asked, within the days there are receipts (an empty window stays empty).
    first = max(start, data_first) if start else data_first
    last = min(end, data_last) if end else data_last
    if last < first:  # no day of the window has receipts: an empty window, kept in range
        last = first - timedelta(days=1)
    stats = member_stats(db, first, last, currency=currency, store=store)
    top = pareto(stats)
    segments = rfm(stats, last, margin=margin)
    middle = first + (last - first) / 2
    growth_rows = growth(
        db, (first, middle), (middle + timedelta(days=1), last), currency=currency, store=store
    )
    months = (first.isoformat()[:7], last.isoformat()[:7])
    liability_rows = [r for r in liability(db) if months[0] <= r.month <= months[1]]
    campaign_rows = campaigns(db, first, last, stats, currency=currency, store=store)
    store_rows = stores(db, first, last, currency=currency, store=store)
    breakdowns = {
        by: [r for r in rows if r.currency == currency]
        for by, rows in revenue_breakdowns(db, first, last, store=store).items()
    }
    net = sum(r.revenue for r in breakdowns["store"])
    weekdays = {r.key: r for r in breakdowns["weekday"]}
    hours = {r.key: r for r in breakdowns["hour"]}
    known_stores = [str(s) for (s,) in db.query("SELECT DISTINCT store FROM report_receipts")]
    form = _form(
        start,
        end,
        store,
        currency,
        sorted(known_stores),
        currencies(db),
        (data_first, data_last),
    )

    def money(minor: int | Fraction) -> str:
        return Money(int(minor), currency).format()

    charts: list[str] = []

    def chart(figure: Any) -> str:
        figure.update_layout(height=360, margin={"l": 40, "r": 20, "t": 50, "b": 40})
        charts.append(
            pio.to_html(
                figure,
                include_plotlyjs="inline" if not charts else False,
                full_html=False,
                config={"displayModeBar": False, "staticPlot": False},
            )
        )
        return charts[-1]

    chart(
        go.Figure(
            go.Scatter(
                x=[float(x) * 100 for x, _ in top.curve],
                y=[float(y) * 100 for _, y in top.curve],
                mode="lines",
            ),
            layout={"title": "Share of revenue by share of members (%)"},
        )
    )
    counts = Counter(row.segment for row in segments)
    chart(
        go.Figure(
            go.Bar(x=list(SEGMENTS), y=[counts[s] for s in SEGMENTS]),
            layout={"title": "RFM segments"},
        )
    )
    chart(
        go.Figure(
            go.Scatter(
                x=[r.month for r in liability_rows], y=[r.outstanding for r in liability_rows]
            ),
            layout={"title": "Points liability outstanding, month end"},
        )
    )
    chart(
        go.Figure(
            go.Bar(x=[r.store for r in store_rows], y=[r.revenue / 100 for r in store_rows]),
            layout={"title": f"Revenue by store ({currency})"},
        )
    )
    weekday_chart = chart(
        go.Figure(
            go.Bar(
                x=list(WEEKDAYS),
                y=[weekdays[d].revenue / 100 if d in weekdays else 0 for d in WEEKDAYS],
            ),
            layout={"title": f"Net revenue by weekday ({currency})"},
        )
    )
    hour_keys = sorted(hours)
    hour_chart = chart(
        go.Figure(
            go.Bar(x=hour_keys, y=[hours[h].revenue / 100 for h in hour_keys]),
            layout={"title": f"Net revenue by hour ({currency})"},
        )
    )
    campaign_chart = (
        chart(
            go.Figure(
                go.Bar(
                    x=[r.campaign for r in campaign_rows], y=[r.redeemed for r in campaign_rows]
                ),
                layout={"title": "Vouchers redeemed by campaign"},
            )
        )
        if campaign_rows
        else ""
    )

    def breakdown_table(label: str, rows: list[Any]) -> str:
        return _table(
            [label, "receipts", "sales", "refunds and voids", "net revenue"],
            [[r.key, r.receipts, money(r.sales), money(r.refunds), money(r.revenue)] for r in rows],
        )

    sections = [
        f"<h2>The top 20 %</h2><p>{top.top_fifth_members} of {top.members} members bring"
        f" {_pct(top.top_fifth_share)} of member revenue ({money(top.revenue)}).</p>",
        charts[0],
        _table(
            ["#", "member", "tier", "revenue", "share", "cumulative", "last visit"],
            [
                [
                    r.rank,
                    r.member,
                    r.tier,
                    money(r.revenue),
                    _pct(r.share),
                    _pct(r.cumulative_share),
                    r.last_visit,
                ]
                for r in top.rows
            ],
        ),
        f"<h2>RFM segments</h2><p>Margin assumed: {_pct(margin)} of revenue.</p>",
        charts[1],
        _table(["segment", "members"], [[s, counts[s]] for s in SEGMENTS]),
        "<h2>Growth</h2><p>The second half of the window over the first (definitions in"
        " docs/reports.md): revenue over every receipt; revisits and spend of the members"
        " who visited in the first half.</p>",
        _table(
            [
                "store",
                "revenue growth",
                "members before",
                "came back",
                "revisit rate",
                "revisit growth",
                "spend before",
                "spend after",
                "spend growth",
            ],
            [
                [
                    g.store,
                    _pct(g.revenue_growth),
                    g.members_before,
                    g.returned,
                    _pct(g.revisit_rate),
                    _pct(g.revisit_growth),
                    money(g.spend_before),
                    money(g.spend_after),
                    _pct(g.spend_growth),
                ]
                for g in growth_rows
            ],
        ),
        "<h2>Points liability</h2><p>The chain's, whatever the store filter:"
        " outstanding at each month end of the window.</p>",
        charts[2],
        "<h2>Stores</h2>",
        charts[3],
        _table(
            [
                "store",
                "receipts",
                "members",
                "revenue",
                "average basket",
                "repeat rate",
                "top-fifth share",
            ],
            [
                [
                    s.store,
                    s.receipts,
                    s.members,
                    money(s.revenue),
                    money(s.average_basket),
                    _pct(s.repeat_rate),
                    _pct(s.top_fifth_share),
                ]
                for s in store_rows
            ],
        ),
        "<h2>Net revenue by weekday and hour</h2>"
        f"<p>Net revenue: <strong data-figure='revenue'>{money(net)}</strong>"
        " (sales less refunds and voids, each on its own day and hour).</p>",
        weekday_chart,
        breakdown_table("weekday", [weekdays[d] for d in WEEKDAYS if d in weekdays]),
        hour_chart,
        breakdown_table("hour", [hours[h] for h in hour_keys]),
    ]
    if campaign_rows:
        sections += [
            "<h2>Campaigns</h2>"
            + ("<p>Vouchers issued are the chain's; redeemed, at this store.</p>" if store else ""),
            campaign_chart,
            _table(
                [
                    "campaign",
                    "issued",
                    "redeemed",
                    "uptake",
                    "value",
                    "redeemer spend",
                    "comparable",
                    "incremental",
                    "return per value",
                ],
                [
                    [
                        c.campaign,
                        c.issued,
                        c.redeemed,
                        _pct(c.uptake),
                        money(c.value),
                        money(c.redeemer_spend),
                        money(c.comparable_spend),
                        money(c.incremental),
                        f"{float(c.return_per_value):.2f}",
                    ]
                    for c in campaign_rows
                ],
            ),
        ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "form{margin:1em 0;padding:.5em;background:#f4f4f4}label{margin-right:1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f4f4f4}"
    )
    generated = date.today().isoformat()
    # The page checks itself: script errors and drawn charts end up on <body>
    # as data attributes, which a headless browser test (or a person) can read.
    self_check = (
        "<script>window.addEventListener('error',function(e){document.body.dataset.errors="
        "(document.body.dataset.errors||'')+e.message+';'});window.addEventListener('load',"
        "function(){setTimeout(function(){var n=0;document.querySelectorAll('.js-plotly-plot')"
        ".forEach(function(p){if(p.querySelector('svg.main-svg'))n++;});"
        "document.body.dataset.charts=n;},500);});"
        "</script>"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{self_check}<h1>{html.escape(title)}</h1>"
        f"<p id='scope' data-store='{html.escape(store or '')}'>Receipts from {first} to {last}"
        f" in {html.escape(currency)}, {html.escape(store) if store else 'all stores'};"
        f" generated {generated}.</p>"
        + form
        + f"<p hidden id='chart-count'>{len(charts)}</p>"
        + "".join(sections)
        + "</body></html>"
    )
