# SPDX-License-Identifier: Apache-2.0
"""``loyalty report ...``: every report as a table, CSV or JSON; html, load and generate."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import click

from ._money import Money
from .reports import (
    SQLiteDb,
    campaigns,
    connect,
    currencies,
    generate,
    growth,
    liability,
    load_from_hub,
    load_from_till,
    member_stats,
    pareto,
    period,
    revenue,
    rfm,
    stores,
    tier_mix,
)

_DB = click.argument("db")
_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
_FROM = click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First day.")
_TO = click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day.")


#: Fields that are money (integer minor units, or exact averages of them).
_MONEY = frozenset(
    {
        "historical",
        "predicted",
        "revenue",
        "sales",
        "refunds",
        "value",
        "cost",
        "monetary",
        "spend_before",
        "spend_after",
        "revenue_before",
        "revenue_after",
        "average_basket",
        "redeemer_spend",
        "comparable_spend",
        "incremental",
    }
)


def _cell(name: str, value: Any, fmt: str, currency: str) -> Any:
    if name in _MONEY and isinstance(value, int | Fraction | float) and fmt == "table":
        # Averages round half away from zero to the minor unit, only when printed.
        minor = int(value) if isinstance(value, int) else round(value)
        return Money(minor, currency).format()
    if isinstance(value, Fraction | float) and fmt == "table":
        return f"{float(value):.4f}"
    if isinstance(value, Fraction):
        return f"{float(value):.6f}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return value


def _emit(rows: list[Any], fmt: str, currency: str) -> None:
    records = [
        {
            k: _cell(k, v, fmt, getattr(r, "currency", currency))
            for k, v in attrs.asdict(r, recurse=False).items()
        }
        if attrs.has(type(r))
        else r
        for r in rows
    ]
    if fmt == "json":
        click.echo(json.dumps(records, indent=1))
        return
    if not records:
        click.echo("(no rows)")
        return
    headers = list(records[0])
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, headers)
        writer.writeheader()
        writer.writerows(records)
        click.echo(out.getvalue().rstrip("\n"))
        return
    widths = {h: max(len(h), *(len(str(r[h])) for r in records)) for h in headers}
    click.echo("  ".join(h.ljust(widths[h]) for h in headers))
    for r in records:
        click.echo("  ".join(str(r[h]).rjust(widths[h]) for h in headers))


def _window(db: Any, start: Any, end: Any) -> tuple[date, date]:
    first, last = period(db)
    return (start.date() if start else first), (end.date() if end else last)


@click.group("report")
def report_group() -> None:
    """Reports for head office, on a till's or a hub's SQLite file or on PostgreSQL."""


_CURRENCY = click.option(
    "--currency", default=None, help="One currency (default: each in turn; never added up)."
)


def _command(name: str, help_text: str) -> Callable[[Callable[..., list[Any]]], click.Command]:
    def wrap(compute: Callable[..., list[Any]]) -> click.Command:
        @report_group.command(name, help=help_text)
        @_DB
        @_FROM
        @_TO
        @_CURRENCY
        @_FORMAT
        def command(db: str, start: Any, end: Any, currency: str | None, fmt: str) -> None:
            connection = connect(db)
            try:
                first, last = _window(connection, start, end)
                units = [currency] if currency else currencies(connection) or ["EUR"]
                for unit in units:
                    if len(units) > 1:
                        click.echo(f"# {unit}", err=True)
                    _emit(compute(connection, first, last, unit), fmt, unit)
            finally:
                connection.close()

        return command

    return wrap


@_command("pareto", "Top members by revenue, their share, and the top fifth's share (the 80/20).")
def _pareto(db: Any, first: date, last: date, currency: str) -> list[Any]:
    top = pareto(member_stats(db, first, last, currency=currency))
    click.echo(
        f"# {top.top_fifth_members} of {top.members} members bring"
        f" {float(top.top_fifth_share) * 100:.1f} % of member revenue",
        err=True,
    )
    return list(top.rows)


@_command("rfm", "RFM scores and segments (most valuable, growable, at risk, below zero...).")
def _rfm(db: Any, first: date, last: date, currency: str) -> list[Any]:
    return rfm(member_stats(db, first, last, currency=currency), last)


@_command("growth", "Revenue, revisit and member spend growth: the second half over the first.")
def _growth(db: Any, first: date, last: date, currency: str) -> list[Any]:
    middle = first + (last - first) / 2
    return growth(db, (first, middle), (middle + timedelta(days=1), last), currency=currency)


@_command("liability", "Points earned, redeemed and outstanding by month.")
def _liability(db: Any, first: date, last: date, currency: str) -> list[Any]:
    return liability(db)


@_command("campaigns", "Per campaign: uptake, value granted, spend against comparable members.")
def _campaigns(db: Any, first: date, last: date, currency: str) -> list[Any]:
    return campaigns(db, first, last, currency=currency)


@_command("stores", "Store by store, side by side, and what differs beyond chance.")
def _stores(db: Any, first: date, last: date, currency: str) -> list[Any]:
    return stores(db, first, last, currency=currency)


@_command("revenue", "Net revenue (refunds and voids taken off) per store.")
def _revenue(db: Any, first: date, last: date, currency: str) -> list[Any]:
    return [r for r in revenue(db, first, last, by="store") if r.currency == currency]


@_command("hours", "Net revenue per weekday and per hour of the day.")
def _hours(db: Any, first: date, last: date, currency: str) -> list[Any]:
    rows = revenue(db, first, last, by="weekday") + revenue(db, first, last, by="hour")
    return [r for r in rows if r.currency == currency]


@_command("months", "Net revenue per month.")
def _months(db: Any, first: date, last: date, currency: str) -> list[Any]:
    return [r for r in revenue(db, first, last, by="month") if r.currency == currency]


@_command("tiers", "Members and revenue per tier.")
def _tiers(db: Any, first: date, last: date, currency: str) -> list[Any]:
    return tier_mix(member_stats(db, first, last, currency=currency))


@report_group.command("clv")
@_DB
@_FROM
@_TO
@_CURRENCY
@_FORMAT
@click.option("--horizon", type=int, default=52, show_default=True, help="Weeks ahead.")
@click.option("--top", type=int, default=20, show_default=True, help="Members listed.")
def clv_command(
    db: str, start: Any, end: Any, currency: str | None, fmt: str, horizon: int, top: int
) -> None:
    """Lifetime value: historical, and predicted (BG/NBD, Gamma-Gamma) with the fit shown.

    The last third of the window is held out: the model is fitted on the
    rest and its predicted repeat purchases are set against the actual ones.
    """
    from .reports import lifetime_value, split

    connection = connect(db)
    try:
        first, last = _window(connection, start, end)
        calibration_end, holdout_end = split(first, last)
        for unit in [currency] if currency else currencies(connection) or ["EUR"]:
            found = lifetime_value(
                connection,
                calibration_end,
                currency=unit,
                horizon_weeks=horizon,
                holdout_end=holdout_end,
                limit=top,
            )
            r, alpha, a, b = found.bgnbd
            click.echo(
                f"# {unit}: fitted to {calibration_end}; BG/NBD r={r:.3f} alpha={alpha:.3f}"
                f" a={a:.3f} b={b:.3f}; holdout to {holdout_end}: predicted"
                f" {found.holdout.predicted:.0f} repeat purchases, actual {found.holdout.actual}",
                err=True,
            )
            _emit(list(found.rows), fmt, unit)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    finally:
        connection.close()


@report_group.command("html")
@_DB
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="report.html")
@click.option("--currency", default=None, help="Which currency (needed when there are several).")
def html_command(db: str, out: Path, currency: str | None) -> None:
    """Every report with charts in one self-contained HTML file (no network needed)."""
    try:
        from .reports import html_report
    except ImportError as error:
        raise click.ClickException(f"charts need plotly (loyaltysdk[reports]): {error}") from error
    connection = connect(db)
    try:
        out.write_text(html_report(connection, currency=currency))
    finally:
        connection.close()
    click.echo(f"wrote {out}")


@report_group.command("load")
@_DB
@click.option("--source", type=click.Choice(["till", "hub"]), default="till", show_default=True)
def load(db: str, source: str) -> None:
    """Fill the report tables from a till's receipt records, or a hub's members and campaigns.

    A hub files receipt records as they arrive; a till file is loaded whole.
    """
    connection = connect(db)
    try:
        if source == "hub":
            count = load_from_hub(connection)
        elif isinstance(connection, SQLiteDb):
            count = load_from_till(connection)
        else:
            raise click.ClickException("a till's receipts live in its SQLite file")
    finally:
        connection.close()
    click.echo(f"loaded {count} receipts")


@report_group.command("generate")
@_DB
@click.option("--receipts", type=int, default=100_000, show_default=True)
@click.option("--members", type=int, default=10_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
def generate_command(db: str, receipts: int, members: int, seed: int) -> None:
    """Synthetic receipts for trying the reports (the benchmark's generator)."""
    connection = connect(db)
    try:
        generate(connection, receipts=receipts, members=members, seed=seed)
    finally:
        connection.close()
    click.echo(f"generated {receipts} receipts for {members} members in {db}")
