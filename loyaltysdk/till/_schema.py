# SPDX-License-Identifier: Apache-2.0
"""The till's tables in the ledger's file, and their migrations.

The till owns these tables: it creates and migrates them, and nothing else
writes them. Version 1 is the layout of the first release (files made
before versions were kept have exactly it); each later version is a
script run once, in the same immediate transaction as the version bump, so
a crash leaves the file at a whole version. A file from a newer SDK is
refused.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from .._errors import ConfigurationError

_V1: Final = """
CREATE TABLE IF NOT EXISTS till_members (
    id TEXT PRIMARY KEY, tier TEXT NOT NULL DEFAULT '', segments TEXT NOT NULL DEFAULT '[]',
    birthday TEXT, pin_hash TEXT, enrolled_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_cards (
    uid TEXT PRIMARY KEY, member TEXT NOT NULL, kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active', replaced_by TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_receipts (
    ref TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, plan TEXT NOT NULL, receipt TEXT NOT NULL,
    status TEXT NOT NULL, local_date TEXT NOT NULL, created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_card_intents (
    id TEXT PRIMARY KEY, uid TEXT NOT NULL, kind INTEGER NOT NULL, amount INTEGER NOT NULL,
    receipt TEXT NOT NULL, till TEXT NOT NULL, created_at INTEGER NOT NULL,
    plan TEXT NOT NULL, status TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS till_card_intents_pending
    ON till_card_intents (uid) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS till_refunds (
    ref TEXT PRIMARY KEY, receipt TEXT NOT NULL, lines TEXT NOT NULL, result TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_revoked (code TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_pending_points (
    receipt TEXT PRIMARY KEY, member TEXT NOT NULL, points INTEGER NOT NULL,
    spendable_on TEXT NOT NULL, expires_at TEXT, status TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS till_offline (
    ref TEXT PRIMARY KEY, member TEXT, amount INTEGER NOT NULL, at TEXT NOT NULL,
    local_date TEXT NOT NULL, synced INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID
"""

# Version 2: one card intent journal for every operation that moves card
# value; what tiers, member caps and once-per rules need; how each refund
# was shared over the tenders, so later refunds continue from it.
_V2: Final = """
ALTER TABLE till_card_intents ADD COLUMN op TEXT NOT NULL DEFAULT '';
UPDATE till_card_intents SET op = coalesce(json_extract(plan, '$.op'), '');
CREATE UNIQUE INDEX till_card_intents_live ON till_card_intents (op, receipt, uid)
    WHERE status != 'abandoned';
ALTER TABLE till_members ADD COLUMN tier_review TEXT;
ALTER TABLE till_refunds ADD COLUMN shares TEXT;
CREATE INDEX till_refunds_by_receipt ON till_refunds (receipt);
CREATE TABLE till_spend (
    ref TEXT PRIMARY KEY, member TEXT NOT NULL, local_date TEXT NOT NULL, amount INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX till_spend_by_member ON till_spend (member, local_date);
CREATE TABLE till_earnings (
    ref TEXT PRIMARY KEY, member TEXT NOT NULL, local_date TEXT NOT NULL, points INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX till_earnings_by_member ON till_earnings (member, local_date);
CREATE TABLE till_rule_uses (
    member TEXT NOT NULL, rule TEXT NOT NULL, period TEXT NOT NULL, receipt TEXT NOT NULL,
    PRIMARY KEY (member, rule, period)
) WITHOUT ROWID;
CREATE INDEX till_rule_uses_by_receipt ON till_rule_uses (receipt);
INSERT INTO till_earnings (ref, member, local_date, points)
    SELECT ref, json_extract(receipt, '$.member'), local_date,
           json_extract(receipt, '$.points_earned')
    FROM till_receipts
    WHERE json_extract(receipt, '$.member') IS NOT NULL
      AND json_extract(receipt, '$.points_earned') > 0;
INSERT INTO till_spend (ref, member, local_date, amount)
    SELECT r.ref, json_extract(r.plan, '$.member'), r.local_date,
           (SELECT coalesce(sum(json_extract(l.value, '$[1]') * json_extract(l.value, '$[2]')
                                - json_extract(l.value, '$[5]')), 0)
              FROM json_each(r.plan, '$.lines') AS l
             WHERE json_extract(l.value, '$[3]') NOT IN ('gift-card', 'stored-value'))
    FROM till_receipts AS r
    WHERE json_extract(r.plan, '$.member') IS NOT NULL AND r.status = 'completed'
"""

# Version 3: what the till learns from the hub, kept durably: the sync
# cursors and times (made by the sync loop in earlier files), the rules,
# keys and allowance head office sent, and updates that could not be applied.
_V3: Final = """
CREATE TABLE IF NOT EXISTS till_sync (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE till_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE till_update_problems (
    cursor INTEGER PRIMARY KEY, kind TEXT NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE till_card_differences (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL, chip INTEGER NOT NULL, shadow INTEGER NOT NULL,
    at TEXT NOT NULL
);
INSERT INTO till_settings (name, value)
    SELECT 'rules', value FROM till_sync WHERE name = 'rules';
INSERT OR IGNORE INTO till_revoked (code)
    SELECT j.value FROM till_sync, json_each(till_sync.value) AS j WHERE till_sync.name = 'revoked'
"""

# Version 4: what the till learns (enrolments, cards, blocks, replacements,
# SUN taps) goes up to the hub as events, in the commit that learned it.
_V4: Final = """
CREATE TABLE till_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL,
    at TEXT NOT NULL
)
"""

# Version 5: a member's spend and points per day at every store of the
# chain, from the hub's last snapshot (tiers and the member cap count them).
_V5: Final = """
CREATE TABLE till_chain_days (
    member TEXT NOT NULL, day TEXT NOT NULL, spend INTEGER NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (member, day)
) WITHOUT ROWID;
CREATE TABLE till_chain_members (
    member TEXT PRIMARY KEY, events_cursor INTEGER NOT NULL, at TEXT NOT NULL
) WITHOUT ROWID
"""

MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2, _V3, _V4, _V5)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the till's tables up to date; returns the version they are at.

    Raises:
        ConfigurationError: the file was written by a newer SDK.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS till_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            " WITHOUT ROWID"
        )
        row = conn.execute("SELECT value FROM till_meta WHERE name = 'schema'").fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise ConfigurationError(
                f"the till's tables are at version {version}, newer than this SDK knows"
                f" ({len(MIGRATIONS)}): upgrade loyaltysdk"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO till_meta (name, value) VALUES ('schema', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(number),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
