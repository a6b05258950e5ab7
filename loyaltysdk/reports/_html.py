# SPDX-License-Identifier: Apache-2.0
"""All reports in one self-contained HTML file with charts (plotly, its JavaScript inlined).

The file needs no network to open: plotly.js is embedded once, and every
chart and table is static data in the page.
"""

from __future__ import annotations

import html
from collections import Counter
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from .._money import Money
from ._data import PostgresDb, SQLiteDb
from ._reports import (
    SEGMENTS,
    campaigns,
    currency_of,
    growth,
    liability,
    member_stats,
    pareto,
    period,
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


def html_report(
    db: SQLiteDb | PostgresDb,
    *,
    currency: str | None = None,
    title: str = "Loyalty programme report",
    margin: Fraction = Fraction(1, 4),
) -> str:
    """Every report, with charts, as one HTML document."""
    import plotly.graph_objects as go
    import plotly.io as pio

    currency = currency_of(db, currency)  # one currency a report: money is never mixed
    first, last = period(db)
    stats = member_stats(db, first, last, currency=currency)
    top = pareto(stats)
    segments = rfm(stats, last, margin=margin)
    middle = first + (last - first) / 2
    growth_rows = growth(db, (first, middle), (middle + timedelta(days=1), last), currency=currency)
    liability_rows = liability(db)
    campaign_rows = campaigns(db, first, last, stats, currency=currency)
    store_rows = stores(db, first, last, currency=currency)

    def money(minor: int | Fraction) -> str:
        return Money(int(minor), currency).format()

    charts: list[str] = []

    def chart(figure: Any) -> None:
        figure.update_layout(height=360, margin={"l": 40, "r": 20, "t": 50, "b": 40})
        charts.append(
            pio.to_html(
                figure,
                include_plotlyjs="inline" if not charts else False,
                full_html=False,
                config={"displayModeBar": False, "staticPlot": False},
            )
        )

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
    if campaign_rows:
        chart(
            go.Figure(
                go.Bar(
                    x=[r.campaign for r in campaign_rows], y=[r.redeemed for r in campaign_rows]
                ),
                layout={"title": "Vouchers redeemed by campaign"},
            )
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
        "<h2>Revisits and spend growth</h2>",
        _table(
            [
                "store",
                "members before",
                "came back",
                "revisit rate",
                "spend before",
                "spend after",
                "growth",
            ],
            [
                [
                    g.store,
                    g.members_before,
                    g.returned,
                    _pct(g.revisit_rate),
                    money(g.spend_before),
                    money(g.spend_after),
                    _pct(g.spend_growth),
                ]
                for g in growth_rows
            ],
        ),
        "<h2>Points liability</h2>",
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
    ]
    if campaign_rows:
        sections += [
            "<h2>Campaigns</h2>",
            charts[4],
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
        f"<p>Receipts from {first} to {last}; generated {generated}.</p>"
        + f"<p hidden id='chart-count'>{len(charts)}</p>"
        + "".join(sections)
        + "</body></html>"
    )
