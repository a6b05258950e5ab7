# SPDX-License-Identifier: Apache-2.0
"""A till file made by an earlier SDK opens, migrates and keeps working."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from loyaltysdk import Money, Points
from loyaltysdk.ledger import Ledger, Posting
from loyaltysdk.ledger._schema import MIGRATIONS

from .conftest import FakeClock, open_chart

# What version 3 changed, undone: the file an SDK at version 2 would have written
# (the rows are the same; only these indexes differ).
_BACK_TO_V2 = (
    "DROP INDEX postings_by_account",
    "CREATE INDEX postings_by_account ON postings(account, tx_seq)",
    "CREATE INDEX lots_due ON lots(expires_at) WHERE remaining > 0",
    "PRAGMA user_version = 2",
)


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return [(name, " ".join(sql.split())) for name, sql in rows]


def _fill(ledger: Ledger, clock: FakeClock) -> None:
    """Purchases that earn points, a redemption, an open hold and lots that expire."""
    for n, member in enumerate(("M-1", "M-2", "M-1", "M-2", "M-1")):
        paid, earned = Money(1000 + n, "EUR"), Points(10 + n)
        ledger.transfer(
            f"top-{n}",
            [
                Posting.debit("sys:float:EUR", paid),
                Posting.credit(f"member:{member}:wallet:EUR", paid),
            ],
        )
        ledger.transfer(
            f"R-{n}",
            [
                Posting.debit(f"member:{member}:wallet:EUR", paid),
                Posting.credit("sys:sales:EUR", paid),
                Posting.debit("sys:points:issued", earned),
                Posting.credit(
                    f"member:{member}:points", earned, expires_at=clock() + timedelta(days=n + 1)
                ),
            ],
        )
        clock.advance(hours=1)
    ledger.transfer(
        "spend",
        [
            Posting.debit("member:M-1:points", Points(7)),
            Posting.credit("sys:points:redeemed", Points(7)),
        ],
    )
    ledger.hold(
        "held",
        [
            Posting.debit("member:M-2:points", Points(3)),
            Posting.credit("sys:points:redeemed", Points(3)),
        ],
        timeout=timedelta(days=30),
    )


def _view(ledger: Ledger) -> object:
    names = [balance.account for balance in ledger.balances()]
    return (
        ledger.balances(),
        {name: ledger.history(name, limit=100) for name in names},
        {name: ledger.lots(name) for name in names if name.endswith(":points")},
        ledger.outbox(),
    )


def test_a_version_2_file_migrates_and_reads_the_same(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "till.db"
    ledger = Ledger.open(path, origin="S001-T1", clock=clock)
    open_chart(ledger)
    _fill(ledger, clock)
    before = _view(ledger)
    ledger.close()

    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _BACK_TO_V2:
        conn.execute(statement)
    older = sqlite3.connect(":memory:")
    for script in MIGRATIONS[:2]:
        for statement in script.split(";\n"):
            if statement.strip():
                older.execute(statement)
    assert _schema(conn) == _schema(older)  # the file is what version 2 made
    conn.close()

    ledger = Ledger.open(path, origin="S001-T1", clock=clock)
    conn = ledger.store.connection  # type: ignore[attr-defined]
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    indexes = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert "lots_due" not in indexes
    assert "postings_by_account" in indexes
    assert _view(ledger) == before
    ledger.check()

    # It keeps working: the same retry replays, new entries add to old history,
    # and the sweep across accounts still finds every expired lot.
    assert ledger.transaction("R-4") is not None
    earned = [
        Posting.debit("sys:points:issued", Points(5)),
        Posting.credit("member:M-2:points", Points(5)),
    ]
    ledger.transfer("after", earned)
    assert ledger.history("sys:points:issued", limit=1)[0].key == "after"
    assert len(ledger.history("sys:points:issued", limit=100)) == 6  # five purchases, then this
    assert ledger.history("member:M-2:points", limit=1)[0].key == "after"
    clock.advance(days=10)
    booked = ledger.expire()
    assert {tx.postings[0].account for tx in booked if tx.postings} == {
        "member:M-1:points",
        "member:M-2:points",
    }
    ledger.check()
    ledger.close()


def test_sys_and_member_history_agree_with_the_journal(tmp_path: Path, clock: FakeClock) -> None:
    """Whether or not an account's postings are in postings_by_account, its history is
    every posting of it, newest first, paged by `before_seq`."""
    ledger = Ledger.open(tmp_path / "till.db", origin="S001-T1", clock=clock)
    open_chart(ledger)
    _fill(ledger, clock)
    conn = ledger.store.connection  # type: ignore[attr-defined]
    for name in (
        "sys:sales:EUR",
        "sys:points:issued",
        "member:M-1:points",
        "member:M-2:wallet:EUR",
    ):
        expected = [
            seq
            for (seq,) in conn.execute(
                "SELECT tx_seq FROM postings WHERE account = ? ORDER BY tx_seq DESC, idx DESC",
                (name,),
            )
        ]
        seen = [entry.seq for entry in ledger.history(name, limit=100)]
        assert seen == expected
        first = ledger.history(name, limit=2)
        rest = ledger.history(name, limit=100, before_seq=first[-1].seq)
        assert [e.seq for e in first + rest] == expected
    ledger.check()
    ledger.close()
