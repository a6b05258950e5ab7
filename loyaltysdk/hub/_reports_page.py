# SPDX-License-Identifier: Apache-2.0
"""Head office's reports as a web page the hub serves (`GET /v1/admin/report`).

The hub files every receipt record in its own ``report_*`` tables as tills
send them, so the reports run on the hub's database directly, through a
report `Db` over its store. Members (tiers) and campaigns (vouchers issued)
are refreshed from the hub's directory on every request, in one transaction:
that is one set-based copy of the member directory and a pass over the
published voucher terms, small beside the receipt scans the reports make
anyway, and without it tiers and campaign uptake would be stale or zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, cast

from ..reports import PostgresDb, SQLiteDb, currencies, html_report, load_from_hub
from ._store import HubStore

#: Two hub processes refreshing at once would insert the same members twice.
_REFRESH_LOCK = 727_275


class HubReportDb:
    """The report `Db` protocol (``?`` SQL, rows back) over a hub's store."""

    def __init__(self, store: HubStore) -> None:
        self.store = store
        self.dialect = store.dialect

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.store.execute(sql, args)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self.store.execute(sql, args)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.store.insert_rows(table, columns, rows, "")


def report_page(
    store: HubStore,
    *,
    start: date | None = None,
    end: date | None = None,
    shop: str | None = None,
    currency: str | None = None,
) -> str:
    """The HTML report over the hub's own database, filtered; in the main currency by default."""
    # The report functions are annotated with the two report connections; they use
    # only what the `Db` protocol has, which this adapter provides.
    db = cast(SQLiteDb | PostgresDb, HubReportDb(store))
    with store.transaction():
        if store.dialect == "postgres":
            store.execute("SELECT pg_advisory_xact_lock(?)", (_REFRESH_LOCK,))
        load_from_hub(db)
    if currency is None:
        found = currencies(db)  # most receipts first: several never add up, so pick one
        currency = found[0] if found else None
    return html_report(
        db, currency=currency, title="Head office report", start=start, end=end, store=shop
    )
