# SPDX-License-Identifier: Apache-2.0
"""The ledger's SQLite schema and its migrations.

Every uniqueness rule is a constraint here, not only a check in Python: one
transaction per idempotency key, one resolution per hold, one reversal per
entry, one outbox record per transaction. Account limits are CHECK
constraints too, so a bug above cannot store a negative member balance.
Foreign keys are declared for tools and for `Ledger.check()`, which runs
SQLite's foreign_key_check; they are not enforced on the write path, where
the ledger has already resolved every account it names.
`PRAGMA user_version` records which migrations ran.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from .._errors import LedgerError

_V1: Final = """
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    flags INTEGER NOT NULL CHECK (flags IN (0, 1, 2)),
    lots INTEGER NOT NULL DEFAULT 0 CHECK (lots IN (0, 1)),
    breakage_account TEXT REFERENCES accounts(id),
    debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    created_at INTEGER NOT NULL,
    CHECK (flags & 1 = 0 OR debits_posted + debits_pending <= credits_posted),
    CHECK (flags & 2 = 0 OR credits_posted + credits_pending <= debits_posted)
) WITHOUT ROWID;

CREATE TABLE transactions (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    fingerprint BLOB NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('committed', 'rejected')),
    ref_seq INTEGER REFERENCES transactions(seq),
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    memo TEXT,
    error_code TEXT,
    error_message TEXT
);

-- A hold resolves once and an entry is reversed once. Kept apart from the
-- journal so that the common write touches no index for these rare facts.
CREATE TABLE resolutions (
    hold_seq INTEGER PRIMARY KEY REFERENCES transactions(seq),
    tx_seq INTEGER NOT NULL UNIQUE REFERENCES transactions(seq)
);

CREATE TABLE reversals (
    original_seq INTEGER PRIMARY KEY REFERENCES transactions(seq),
    tx_seq INTEGER NOT NULL UNIQUE REFERENCES transactions(seq)
);

CREATE TABLE postings (
    tx_seq INTEGER NOT NULL REFERENCES transactions(seq),
    idx INTEGER NOT NULL,
    account TEXT NOT NULL REFERENCES accounts(id),
    side TEXT NOT NULL CHECK (side IN ('D', 'C')),
    amount INTEGER NOT NULL CHECK (amount > 0),
    unit TEXT NOT NULL,
    pending INTEGER NOT NULL CHECK (pending IN (0, 1)),
    expires_at INTEGER,
    PRIMARY KEY (tx_seq, idx)
) WITHOUT ROWID;
CREATE INDEX postings_by_account ON postings(account, tx_seq);

CREATE TABLE open_holds (
    hold_seq INTEGER PRIMARY KEY REFERENCES transactions(seq),
    expires_at INTEGER NOT NULL
);
CREATE INDEX open_holds_by_expiry ON open_holds(expires_at);

CREATE TABLE lots (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL REFERENCES accounts(id),
    tx_seq INTEGER NOT NULL REFERENCES transactions(seq),
    amount INTEGER NOT NULL CHECK (amount > 0),
    remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    earned_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX lots_open ON lots(account, earned_at, id) WHERE remaining > 0;

CREATE TABLE lot_moves (
    tx_seq INTEGER NOT NULL REFERENCES transactions(seq),
    lot_id INTEGER NOT NULL REFERENCES lots(id),
    amount INTEGER NOT NULL CHECK (amount != 0),
    PRIMARY KEY (tx_seq, lot_id)
) WITHOUT ROWID;

-- Records are never deleted: the hub's acknowledgement moves a cursor in
-- meta. So seq (max + 1) is never reused and has no gaps, which the hub
-- relies on to hold back a batch until the one before it arrived.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    tx_seq INTEGER NOT NULL UNIQUE REFERENCES transactions(seq),
    created_at INTEGER NOT NULL,
    payload TEXT NOT NULL
);

CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Version 2: what expires, found without reading every open lot: a member's
# next expiry and the expiry probe before a redemption are index ranges, and
# so is the till's sweep for expired lots across members.
_V2 = """
CREATE INDEX lots_expiring ON lots(account, expires_at) WHERE remaining > 0;
CREATE INDEX lots_due ON lots(expires_at) WHERE remaining > 0
"""

# Version 3: fewer index pages per write. A posting of a `sys:` account (sales,
# points issued, float: in nearly every entry) has no entry in postings_by_account;
# their history is read from the journal's newest end (`SQLiteStore.history`), and
# `fold_journal` groups the postings before joining accounts. The sweep for
# expired lots across accounts walks lots_expiring, one range per account, so
# lots_due goes. A transfer's WAL frames: about 20 -> 17.
_V3 = """
DROP INDEX postings_by_account;
CREATE INDEX postings_by_account ON postings(account, tx_seq)
    WHERE substr(account, 1, 4) <> 'sys:';
DROP INDEX lots_due
"""

#: The partial index's condition, repeated in every query that is to use it.
MEMBER_POSTING: Final = "substr(p.account, 1, 4) <> 'sys:'"

#: Migrations in order; index + 1 is the user_version after it ran.
MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2, _V3)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; return the version it is now at.

    Each migration runs in its own immediate transaction, so a crash leaves
    the file at a whole version. A file from a newer SDK is refused rather
    than written by code that does not know its shape.

    Raises:
        LedgerError: the file's schema is newer than this SDK.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise LedgerError(
            f"ledger schema version {version} is newer than this SDK "
            f"(knows {len(MIGRATIONS)}): upgrade loyaltysdk"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            (current,) = conn.execute("PRAGMA user_version").fetchone()
            if current < number:  # another process may have migrated meanwhile
                for statement in script.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
