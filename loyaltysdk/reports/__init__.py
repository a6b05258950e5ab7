# SPDX-License-Identifier: Apache-2.0
"""Reports for head office: the top 20 %, RFM segments, growth, liability, campaigns, stores.

    db = connect("hub.db")          # or a till's file, or postgresql://...
    load_from_till(db)              # or load_from_hub(db), or generate(db, ...)
    stats = member_stats(db, start, end)
    pareto(stats), rfm(stats, end), growth(db, before, after), stores(db, start, end)

Definitions are in docs/reports.md.
"""

from ._data import (
    REPORT_TABLES,
    PostgresDb,
    SQLiteDb,
    connect,
    generate,
    load_from_hub,
    load_from_till,
)
from ._html import html_report
from ._reports import (
    SEGMENTS,
    CampaignRow,
    Growth,
    LiabilityRow,
    MemberStats,
    Pareto,
    ParetoRow,
    RfmRow,
    StoreRow,
    campaigns,
    growth,
    liability,
    member_stats,
    pareto,
    period,
    rfm,
    stores,
)

__all__ = [
    "REPORT_TABLES",
    "SEGMENTS",
    "CampaignRow",
    "Growth",
    "LiabilityRow",
    "MemberStats",
    "Pareto",
    "ParetoRow",
    "PostgresDb",
    "RfmRow",
    "SQLiteDb",
    "StoreRow",
    "campaigns",
    "connect",
    "generate",
    "growth",
    "html_report",
    "liability",
    "load_from_hub",
    "load_from_till",
    "member_stats",
    "pareto",
    "period",
    "rfm",
    "stores",
]
