# SPDX-License-Identifier: Apache-2.0
"""Ledger fixtures: an in-memory ledger with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from loyaltysdk.ledger import AccountFlags, Ledger

LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def open_chart(ledger: Ledger) -> None:
    """The accounts a small shop's till uses: system accounts and two members."""
    for name in ("issued", "redeemed", "breakage"):
        ledger.open_account(f"sys:points:{name}", "PTS")
    ledger.open_account("sys:sales:EUR", "EUR")
    ledger.open_account("sys:float:EUR", "EUR")
    ledger.open_account("sys:cash:EUR", "EUR", flags=AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
    for member in ("M-1", "M-2"):
        ledger.open_account(
            f"member:{member}:points",
            "PTS",
            flags=LIMITED,
            lots=True,
            breakage_account="sys:points:breakage",
        )
        ledger.open_account(f"member:{member}:wallet:EUR", "EUR", flags=LIMITED)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock) -> Iterator[Ledger]:
    book = Ledger.in_memory(origin="S001-T1", clock=clock)
    open_chart(book)
    yield book
    book.check()
    book.close()
