# SPDX-License-Identifier: Apache-2.0
"""`Ledger.balances_of` gives what `balance` gives each account, in one statement;
`Ledger.available_of` gives each one's `available` as an integer, in one statement."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyaltysdk import Money, Points, WrongType
from loyaltysdk.ledger import InsufficientFunds, Ledger, Posting, UnknownAccount

from .conftest import FakeClock, open_chart

ACCOUNTS = [
    "member:M-1:points",
    "member:M-2:points",
    "sys:points:issued",
    "sys:float:EUR",
    "sys:sales:EUR",
    "sys:cash:EUR",  # debit-normal
]


def _connection(ledger: Ledger) -> sqlite3.Connection:
    return ledger.store.connection  # type: ignore[attr-defined,no-any-return]


# Each step: (member 1 or 2, earn or spend, points, days the lot lives, days the clock moves).
steps = st.lists(
    st.tuples(
        st.sampled_from(["M-1", "M-2"]),
        st.sampled_from(["earn", "spend", "hold"]),
        st.integers(1, 50),
        st.integers(1, 5),
        st.integers(0, 3),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=6))
def test_the_same_balances_as_one_read_each(
    moves: list[tuple[str, str, int, int, int]], asked: list[str]
) -> None:
    clock = FakeClock()
    ledger = Ledger.in_memory(clock=clock)
    open_chart(ledger)
    ledger.transfer(
        "fund",
        [
            Posting.debit("sys:float:EUR", Money(500, "EUR")),
            Posting.credit("sys:sales:EUR", Money(500, "EUR")),
        ],
    )
    ledger.transfer(
        "till",
        [
            Posting.debit("sys:cash:EUR", Money(300, "EUR")),
            Posting.credit("sys:sales:EUR", Money(300, "EUR")),
        ],
    )
    for n, (member, what, points, lives, wait) in enumerate(moves):
        account = f"member:{member}:points"
        expires = clock.now + timedelta(days=lives)
        try:
            if what == "earn":
                ledger.transfer(
                    f"e{n}",
                    [
                        Posting.debit("sys:points:issued", Points(points)),
                        Posting.credit(account, Points(points), expires_at=expires),
                    ],
                )
            else:
                spend = [
                    Posting.debit(account, Points(points)),
                    Posting.credit("sys:points:redeemed", Points(points)),
                ]
                if what == "hold":  # pending: `available` takes it off, `posted` does not
                    ledger.hold(f"h{n}", spend, timeout=timedelta(days=lives))
                else:
                    ledger.transfer(f"s{n}", spend)
        except InsufficientFunds:
            pass
        clock.advance(days=wait)  # some lots expire unbooked: `expired` must count them
    asked.append("member:M-1:wallet:EUR")
    expected = [ledger.balance(account) for account in dict.fromkeys(asked)]
    assert ledger.balances_of(asked) == expected
    amounts = {b.account: b.available for b in expected}
    assert ledger.available_of(asked) == {
        account: amount.minor if isinstance(amount, Money) else amount.value
        for account, amount in amounts.items()
    }


@pytest.mark.parametrize("read", ["balances_of", "available_of"])
def test_one_statement_for_several_accounts_with_lots(read: str) -> None:
    ledger = Ledger.in_memory(clock=FakeClock())
    open_chart(ledger)
    seen: list[str] = []
    conn = _connection(ledger)
    conn.set_trace_callback(seen.append)
    try:
        found = getattr(ledger, read)(["member:M-1:points", "member:M-2:points", "sys:float:EUR"])
    finally:
        conn.set_trace_callback(None)
    assert len(seen) == 1
    if read == "available_of":
        assert found == {"member:M-1:points": 0, "member:M-2:points": 0, "sys:float:EUR": 0}


@pytest.mark.parametrize("read", ["balances_of", "available_of"])
def test_an_unknown_account_is_named(read: str) -> None:
    ledger = Ledger.in_memory(clock=FakeClock())
    open_chart(ledger)
    with pytest.raises(UnknownAccount, match="member:M-9:points"):
        getattr(ledger, read)(["member:M-1:points", "member:M-9:points"])


@pytest.mark.parametrize("read", ["balances_of", "available_of"])
def test_one_id_instead_of_a_list_is_a_wrong_type(read: str) -> None:
    ledger = Ledger.in_memory(clock=FakeClock())
    open_chart(ledger)
    with pytest.raises(WrongType, match="a sequence of account ids"):
        getattr(ledger, read)("member:M-1:points")
