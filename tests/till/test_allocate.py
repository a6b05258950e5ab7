# SPDX-License-Identifier: Apache-2.0
"""Sharing refunds over tenders: each tender's share of all refunded so far, exact at the end."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from loyaltysdk.till._allocate import allocate


def _check(paid: list[int], steps: list[int]) -> None:
    total = sum(paid)
    shares = [0] * len(paid)
    for refunded in steps:
        new = allocate(paid, total, refunded, shares)
        assert sum(new) == refunded
        for i, (t, before, after) in enumerate(zip(paid, shares, new, strict=True)):
            assert after >= before, (paid, steps, i)  # no refund takes back an earlier one
            assert t * refunded // total <= after <= -(-t * refunded // total), (paid, steps, i)
        shares = new
    assert shares == paid  # a full refund returns exactly what each tender paid


def test_every_way_to_refund_small_receipts() -> None:
    """Exhaustive: up to five tenders, totals to 8, every sequence of partial refunds."""
    for n in range(1, 6):
        for paid in itertools.product(range(5), repeat=n):
            total = sum(paid)
            if not 0 < total <= 8:
                continue
            for mask in range(1 << (total - 1)):
                steps = [r for r in range(1, total) if mask >> (r - 1) & 1] + [total]
                _check(list(paid), steps)


@settings(max_examples=400, deadline=None)
@given(
    paid=st.lists(
        st.one_of(st.integers(0, 3), st.integers(0, 500), st.integers(0, 10**7)),
        min_size=1,
        max_size=9,
    ).filter(lambda p: sum(p) > 0),
    data=st.data(),
)
def test_any_sequence_of_refunds(paid: list[int], data: st.DataObject) -> None:
    total = sum(paid)
    cuts = data.draw(st.lists(st.integers(1, total), max_size=12, unique=True))
    _check(paid, sorted(cuts) + ([] if total in cuts else [total]))


def test_the_issue_example_returns_exactly_what_was_paid() -> None:
    # 777 points, 11.11 wallet and the rest in cash, over five lines refunded one by one.
    prices = [999, 1_234, 577, 2_001, 1_311]
    paid = [777, 1_111, sum(prices) - 777 - 1_111]
    steps = list(itertools.accumulate(prices))
    _check(paid, steps)
