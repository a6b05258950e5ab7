# SPDX-License-Identifier: Apache-2.0
"""A session reads a balance once until the till writes; what the till writes shows at once.

A checkout session keeps the points and wallet balances it read, keyed by
the connection's change count, so quoting again costs no statement; any
write on the till (another session's sale, a top-up) makes the next quote
read again. Decided by SQLite's trace, not by time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loyaltysdk import Money
from loyaltysdk.rules import Basket, Line
from loyaltysdk.till import NotEnoughPoints, Till, WalletShort

EUR = "EUR"
UID = bytes.fromhex("04AABBCCDDEEFF")  # a tap: the member is present to redeem


@pytest.fixture
def shopper(till: Till) -> str:
    till.enrol("M9", card_uid=UID)
    till.top_up("M9", Money(5_000, EUR), payment_ref="P-M9")
    # 200.00 of goods earns 200 points under the test rules.
    till.checkout(Basket(EUR, [Line("TV", 1, 20_000)]), till.identify(UID)).complete("R-seed")
    return "M9"


@contextmanager
def traced(till: Till) -> Iterator[list[str]]:
    seen: list[str] = []
    conn = till.ledger.store.connection  # type: ignore[attr-defined]
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def basket(price: int = 3_000) -> Basket:
    return Basket(EUR, [Line("A", 1, price)])


def test_quoting_again_reads_nothing_until_the_till_writes(till: Till, shopper: str) -> None:
    sale = till.checkout(basket(), till.identify(UID))
    first = sale.quote()
    with traced(till) as seen:
        for _ in range(3):
            assert sale.quote() == first
        sale.redeem_points(50)
        sale.quote()
    assert seen == []  # redeeming is taken in memory: nothing written, nothing read again
    till.top_up(shopper, Money(1_000, EUR), payment_ref="P-more")
    with traced(till) as seen:
        after = sale.quote()
    assert after.wallet_available == first.wallet_available + Money(1_000, EUR)
    assert any("FROM accounts" in statement for statement in seen)


def test_another_sessions_sale_shows_in_the_next_quote(till: Till, shopper: str) -> None:
    one = till.checkout(basket(6_000), till.identify(UID))
    two = till.checkout(basket(), till.identify(UID))
    before = one.quote()
    assert before.points_available == 200
    two.redeem_points(150)
    two.pay_wallet(Money(1_000, EUR))
    # Taken by an open session: counted at once, without a read.
    assert one.quote().points_available == 50
    two.complete("R-two")
    after = one.quote()
    earned = till.receipt("R-two").points_earned
    assert after.points_available == 50 + earned
    assert after.wallet_available == before.wallet_available - Money(1_000, EUR)
    with pytest.raises(NotEnoughPoints):
        one.redeem_points(51 + earned)
    with pytest.raises(WalletShort):
        one.pay_wallet(before.wallet_available)
    assert one.complete("R-one").points_redeemed == 0


def test_another_connection_spends_what_a_session_read_and_the_commit_refuses(
    till: Till, shopper: str
) -> None:
    """The session's figures may be stale for another process's writes; the commit is not."""
    other = Till.open(
        till.ledger.store.path,  # type: ignore[attr-defined]
        store=till.store,
        till_id=till.till_id,
        currency=EUR,
        timezone=till.timezone,
        rules=till.rules,
    )
    try:
        sale = till.checkout(basket(), till.identify(UID))
        assert sale.quote().points_available == 200
        sale.redeem_points(200)
        elsewhere = other.checkout(basket(), other.identify(UID))
        elsewhere.redeem_points(200)
        elsewhere.complete("R-elsewhere")
        with pytest.raises(NotEnoughPoints):
            sale.complete("R-here")  # the whole sale rolled back
        sale.cancel()
        assert till.balance(shopper).points_available == other.balance(shopper).points_available
        assert till._stored_receipt("R-here") is None
    finally:
        other.close()
