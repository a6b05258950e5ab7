# SPDX-License-Identifier: Apache-2.0
"""Share a refund over the tenders that paid, cumulatively, in whole minor units.

A receipt of total ``T`` was paid by tenders ``t_1 … t_n`` (points' value,
each voucher, wallet, card, cash; they sum to ``T``). After refunds worth
``R`` in all, tender ``i`` has given back ``c_i(R)``, and:

- ``Σ c_i(R) = R`` (nothing made or lost by rounding);
- ``floor(t_i·R/T) <= c_i(R) <= ceil(t_i·R/T)``: each tender's share of
  what was refunded so far, to the unit;
- ``c_i`` never falls from one refund to the next (no refund takes back
  what an earlier one gave), so ``c_i(T) = t_i``: a full refund returns
  exactly what each tender paid, and never more.

Each refund starts from what earlier refunds gave (`previous`), takes every
tender to at least its lower share, then hands the few units left to the
tenders Jefferson's rule ranks highest (``t_i / (c_i + 1)``) among those
still under their upper share. That ranking keeps, as in Balinski and
Young's quota method, the later lower shares reachable; tests check all
three properties over exhaustive small cases and random large ones. Should a
case ever leave a lower share out of reach, the first two properties give
way to the last: shares stay monotone and never pass what a tender paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction


def allocate(paid: Sequence[int], total: int, refunded: int, previous: Sequence[int]) -> list[int]:
    """What each tender has given back in all once `refunded` of `total` is refunded.

    Args:
        paid: what each tender paid (non-negative; they sum to `total`).
        total: the receipt's total.
        refunded: the refunds' value so far, this one included (0..total).
        previous: what each tender had given back before this refund.

    Returns:
        The cumulative share of each tender (subtract `previous` for this refund's).
    """
    if sum(paid) != total or not 0 <= refunded <= total or len(previous) != len(paid):
        raise ValueError(f"cannot share {refunded} of {total} over {list(paid)}")
    if total == 0:
        return [0] * len(paid)
    low = [max(done, t * refunded // total) for t, done in zip(paid, previous, strict=True)]
    high = [max(done, -(-t * refunded // total)) for t, done in zip(paid, previous, strict=True)]
    left = refunded - sum(low)
    if left < 0:  # not reached in any case tested; keep monotone and within what was paid
        return _fallback(paid, total, refunded, previous)
    order = sorted(
        (i for i in range(len(paid)) if low[i] < high[i]),
        key=lambda i: (-Fraction(paid[i], low[i] + 1), i),
    )
    shares = list(low)
    for i in order[:left]:
        shares[i] += 1
    if sum(shares) != refunded:
        return _fallback(paid, total, refunded, previous)
    return shares


def _fallback(paid: Sequence[int], total: int, refunded: int, previous: Sequence[int]) -> list[int]:
    """Monotone shares that never pass what a tender paid, summing to `refunded`."""
    shares = list(previous)
    left = refunded - sum(shares)

    def behind(i: int) -> tuple[Fraction, int]:
        return (Fraction(paid[i] * refunded, total) - shares[i], -i)

    # First towards each lower share, furthest behind first; then a unit at a time.
    for i in sorted(range(len(paid)), key=behind, reverse=True):
        step = min(max(0, paid[i] * refunded // total - shares[i]), left)
        shares[i] += step
        left -= step
    while left > 0:
        best = max((i for i in range(len(paid)) if shares[i] < paid[i]), key=behind)
        shares[best] += 1
        left -= 1
    return shares
