# SPDX-License-Identifier: Apache-2.0
"""Reports for head office: the top 20 %, RFM segments, growth, liability, campaigns, stores.

    db = connect("hub.db")          # or a till's file, or postgresql://...
    load_from_till(db)              # or load_from_hub(db), or generate(db, ...)
    stats = member_stats(db, start, end)
    pareto(stats), rfm(stats, end), growth(db, before, after), stores(db, start, end)

Definitions are in docs/reports.md.
"""

from ._data import (
    LINE_COLUMNS,
    POSTGRES_INDEXES,
    RECEIPT_COLUMNS,
    REPORT_TABLES,
    SQLITE_INDEXES,
    VOUCHER_COLUMNS,
    PostgresDb,
    SQLiteDb,
    connect,
    generate,
    load_from_hub,
    load_from_till,
    load_records,
    receipt_rows,
    records_rows,
)
from ._html import html_report
from ._lifetime import LifetimeRow, LifetimeValue, lifetime_value, split
from ._reports import (
    BREAKDOWNS,
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
    campaigns,
    currencies,
    currency_of,
    growth,
    liability,
    member_stats,
    pareto,
    period,
    revenue,
    revenue_breakdowns,
    rfm,
    stores,
    tier_mix,
)

__all__ = [
    "BREAKDOWNS",
    "LINE_COLUMNS",
    "POSTGRES_INDEXES",
    "RECEIPT_COLUMNS",
    "REPORT_TABLES",
    "SEGMENTS",
    "SQLITE_INDEXES",
    "VOUCHER_COLUMNS",
    "WEEKDAYS",
    "CampaignRow",
    "Growth",
    "LiabilityRow",
    "LifetimeRow",
    "LifetimeValue",
    "MemberStats",
    "Pareto",
    "ParetoRow",
    "PostgresDb",
    "RevenueRow",
    "RfmRow",
    "SQLiteDb",
    "StoreRow",
    "TierRow",
    "campaigns",
    "connect",
    "currencies",
    "currency_of",
    "generate",
    "growth",
    "html_report",
    "liability",
    "lifetime_value",
    "load_from_hub",
    "load_from_till",
    "load_records",
    "member_stats",
    "pareto",
    "period",
    "receipt_rows",
    "records_rows",
    "revenue",
    "revenue_breakdowns",
    "rfm",
    "split",
    "stores",
    "tier_mix",
]

from .._public import present

present(__name__, globals())
