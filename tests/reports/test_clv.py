# SPDX-License-Identifier: Apache-2.0
"""CLV models: fits recover simulated parameters; formulas match numeric integration.

The published CDNOW estimates (BG/NBD: r=0.243, alpha=4.414, a=0.793,
b=2.426, time in weeks; Gamma-Gamma: p=6.25, q=3.74, v=15.44 dollars) are
the fixed reference. The CDNOW data set itself is not in the repository: at
these parameters the likelihood, P(alive) and the expectations of hand-made
histories are recomputed here by quadrature over the gamma and beta mixing
distributions, a different route to the same numbers than the closed forms.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

from loyaltysdk.reports._clv import (
    BgNbd,
    GammaGamma,
    MemberSummary,
    _bgnbd_objective,
    _gg_objective,
    fit_bgnbd,
    fit_gamma_gamma,
    holdout_check,
    holdout_purchases,
    predict_clv,
    summarise,
)

CDNOW = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)
CDNOW_SPEND = GammaGamma(p=6.25, q=3.74, v=15.44)

# (x, t_x, T) in weeks: CDNOW-like histories, from no repeat purchase to a heavy buyer.
HISTORIES = [
    (0, 0.0, 38.86),
    (1, 1.71, 38.86),
    (2, 30.43, 38.86),
    (5, 10.0, 30.0),
    (7, 35.0, 36.0),
    (40, 38.0, 39.0),
]


# -- simulation from the generative processes ---------------------------------------------


def simulate_bgnbd(
    rng: random.Random, n: int, model: BgNbd, ages: tuple[float, float], holdout: float
) -> tuple[list[MemberSummary], dict[str, int]]:
    """Members drawn from BG/NBD's story, with their purchases in a holdout after T.

    Rate λ ~ Gamma(r, rate alpha), drop-out p ~ Beta(a, b); from a first
    purchase at 0, Poisson purchases, each repeat followed by drop-out with
    probability p.
    """
    members, later = [], {}
    for i in range(n):
        rate = rng.gammavariate(model.r, 1 / model.alpha)
        drop = rng.betavariate(model.a, model.b)
        age = rng.uniform(*ages)
        times: list[float] = []
        t = 0.0
        while True:
            t += rng.expovariate(rate)
            if t > age + holdout:
                break
            times.append(t)
            if rng.random() < drop:
                break
        seen = [s for s in times if s <= age]
        members.append(MemberSummary(f"M{i}", len(seen), seen[-1] if seen else 0.0, age))
        later[f"M{i}"] = len(times) - len(seen)
    return members, later


def simulate_spend(rng: random.Random, n: int, model: GammaGamma) -> list[MemberSummary]:
    """Spend per purchase ~ Gamma(p, rate ν) with ν ~ Gamma(q, rate v), 1-4 purchases each."""
    members = []
    for i in range(n):
        x = rng.randint(1, 4)
        nu = rng.gammavariate(model.q, 1 / model.v)
        total = sum(rng.gammavariate(model.p, 1 / nu) for _ in range(x))
        members.append(MemberSummary(f"M{i}", x, 1.0, 2.0, round(total)))
    return members


def test_bgnbd_fit_recovers_simulated_parameters() -> None:
    true = BgNbd(r=0.8, alpha=5.0, a=1.2, b=3.0)
    members, _ = simulate_bgnbd(random.Random(7), 4000, true, (30.0, 60.0), 26.0)
    fit = fit_bgnbd(members)
    got = fit.model
    assert fit.converged
    assert fit.members == 4000
    # Tolerances: over 20 seeds the worst misses were 6 % (r), 7 % (alpha),
    # 18 % (a), 20 % (b), 6 % (mean drop-out a/(a+b)); a and b move together.
    assert got.r == pytest.approx(true.r, rel=0.12)
    assert got.alpha == pytest.approx(true.alpha, rel=0.12)
    assert got.a == pytest.approx(true.a, rel=0.30)
    assert got.b == pytest.approx(true.b, rel=0.30)
    assert got.a / (got.a + got.b) == pytest.approx(true.a / (true.a + true.b), rel=0.10)
    # The true parameters lie in the fit's 99.9 % likelihood-ratio region,
    # and the fit is at least as likely as the truth (it is the maximum).
    gap = fit.log_likelihood - true.total_log_likelihood(members)
    assert 0 <= gap < stats.chi2.ppf(0.999, 4) / 2
    assert fit.log_likelihood == pytest.approx(got.total_log_likelihood(members), rel=1e-12)


def test_bgnbd_predicts_what_simulated_members_do_next() -> None:
    true = BgNbd(r=0.8, alpha=5.0, a=1.2, b=3.0)
    members, later = simulate_bgnbd(random.Random(11), 4000, true, (30.0, 60.0), 26.0)
    check = holdout_check(fit_bgnbd(members).model, members, later, horizon=26.0)
    # Over 20 seeds the fitted model's total missed the simulated one by 7 % at worst.
    assert check.predicted == pytest.approx(check.actual, rel=0.10)
    for bucket in check.buckets[:4]:  # the buckets with hundreds of members
        assert bucket.predicted == pytest.approx(bucket.actual, rel=0.25)


def test_gamma_gamma_fit_recovers_simulated_parameters() -> None:
    true = GammaGamma(p=6.25, q=3.74, v=1544.0)  # CDNOW's, in cents
    members = simulate_spend(random.Random(3), 3000, true)
    fit = fit_gamma_gamma(members)
    got = fit.model
    assert fit.converged
    assert fit.members == 3000
    # p and v trade off along a ridge (over 20 seeds: worst 18 % and 34 %);
    # q and the mean spend p·v/(q-1) are pinned down (9 %, 3 %).
    assert got.q == pytest.approx(true.q, rel=0.10)
    assert got.mean_spend == pytest.approx(true.mean_spend, rel=0.05)
    assert got.p == pytest.approx(true.p, rel=0.35)
    assert got.v == pytest.approx(true.v, rel=0.40)
    x = np.array([m.x for m in members], dtype=float)
    z = np.array([m.repeat_spend / m.x for m in members])
    truth = float(true._log_likelihood(x, z).sum())
    assert 0 <= fit.log_likelihood - truth < stats.chi2.ppf(0.999, 3) / 2


def test_fits_do_not_depend_on_the_money_unit() -> None:
    cents = simulate_spend(random.Random(5), 500, GammaGamma(6.25, 3.74, 1544.0))
    pounds = [scaled_spend(m, 100) for m in cents]
    in_cents, in_hundreds = fit_gamma_gamma(cents).model, fit_gamma_gamma(pounds).model
    assert in_cents.p == pytest.approx(in_hundreds.p, rel=1e-3)
    assert in_cents.q == pytest.approx(in_hundreds.q, rel=1e-3)
    assert in_hundreds.v == pytest.approx(in_cents.v * 100, rel=1e-3)


def scaled_spend(m: MemberSummary, factor: int) -> MemberSummary:
    return MemberSummary(m.member, m.x, m.t_x, m.T, m.repeat_spend * factor)


@pytest.mark.parametrize(
    ("objective", "point", "data"),
    [
        (
            _bgnbd_objective,
            np.log([0.243, 4.414, 0.793, 2.426]),
            [np.array(c, dtype=float) for c in zip(*HISTORIES, strict=True)] + [np.ones(6)],
        ),
        (
            _gg_objective,
            np.log([6.25, 3.74, 15.44]),
            [np.array([1.0, 2, 4, 10]), np.array([10.0, 22.35, 33.32, 50.0])],
        ),
    ],
)
def test_analytic_gradients_match_finite_differences(objective, point, data) -> None:
    numeric = optimize.approx_fprime(point, lambda v: objective(v, *data)[0], 1e-7)
    assert objective(point, *data)[1] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


# -- the published parameters against numeric integration --------------------------------

_RATE = stats.gamma(CDNOW.r, scale=1 / CDNOW.alpha)
# Gauss-Jacobi nodes for the Beta(a, b) drop-out: the weight p^(a-1) (1-p)^(b-1)
# is built in, and normalising by the weights' sum needs no Beta function.
_U, _W = special.roots_jacobi(64, CDNOW.b - 1, CDNOW.a - 1)
_P = (1 + _U) / 2
_PW = _W / _W.sum()


def _over_rate(f) -> float:
    """E[f(λ)] under the gamma mixing distribution, by adaptive quadrature."""
    opts = {"limit": 400, "epsabs": 0, "epsrel": 1e-11}

    def g(lam: float) -> float:
        return f(lam) * _RATE.pdf(lam)

    return integrate.quad(g, 0, 1, **opts)[0] + integrate.quad(g, 1, math.inf, **opts)[0]


def _integrated(x: int, t_x: float, T: float, t: float) -> tuple[float, float, float]:  # noqa: N803
    """Likelihood, P(alive) and E[Y(t)] from the individual-level model, integrated.

    Given λ and p: P(history, alive) = (1-p)^x λ^x e^(-λT), P(history, dropped at
    t_x) = p (1-p)^(x-1) λ^x e^(-λ t_x), and an active member buys (1 - e^(-λpt))/p
    in the next t on average.
    """
    alive = _over_rate(lambda lam: lam**x * math.exp(-lam * T)) * (_PW @ (1 - _P) ** x)
    dropped = 0.0
    if x:
        dropped = _over_rate(lambda lam: lam**x * math.exp(-lam * t_x)) * (
            _PW @ (_P * (1 - _P) ** (x - 1))
        )
    future = _over_rate(
        lambda lam: (
            lam**x * math.exp(-lam * T) * (_PW @ ((1 - _P) ** x * -np.expm1(-lam * _P * t) / _P))
        )
    )
    total = alive + dropped
    return total, alive / total, future / total


@pytest.mark.parametrize(("x", "t_x", "T"), HISTORIES)
def test_published_bgnbd_matches_integration(x: int, t_x: float, T: float) -> None:  # noqa: N803
    likelihood, p_alive, expected = _integrated(x, t_x, T, 39.0)
    assert CDNOW.log_likelihood(x, t_x, T) == pytest.approx(math.log(likelihood), rel=1e-9)
    assert CDNOW.p_alive(x, t_x, T) == pytest.approx(p_alive, rel=1e-9)
    assert CDNOW.expected_purchases(39.0, x, t_x, T) == pytest.approx(expected, rel=1e-9)


def test_published_bgnbd_worked_example() -> None:
    # CDNOW's customer 1 (x=2, t_x=30.43, T=38.86): 1.226 purchases in the next 39 weeks.
    assert CDNOW.expected_purchases(39.0, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)


@pytest.mark.parametrize("t", [1.0, 39.0, 78.0, 200.0])
def test_unconditional_expectation_eq9(t: float) -> None:
    r, alpha, a, b = CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b
    # eq. (9) as printed, without the module's Euler transformation
    z = t / (alpha + t)
    printed = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, z))
    )
    integrated = _over_rate(lambda lam: _PW @ (-np.expm1(-lam * _P * t) / _P))
    assert CDNOW.expected_purchases_new(t) == pytest.approx(printed, rel=1e-9)
    assert CDNOW.expected_purchases_new(t) == pytest.approx(integrated, rel=1e-9)


@pytest.mark.parametrize("t", [1e3, 1e4, 1e6])
def test_long_horizons_agree_with_eq9_as_printed(t: float) -> None:
    # Past a few hundred weeks the 64-node rule above no longer resolves
    # (1 - e^(-λpt))/p near p = 0; the two closed forms still agree.
    r, alpha, a, b = CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b
    z = t / (alpha + t)
    printed = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, z))
    )
    assert CDNOW.expected_purchases_new(t) == pytest.approx(printed, rel=1e-9)


def test_expectations_are_continuous_through_a_equal_one() -> None:
    values = [
        BgNbd(0.5, 3.0, a, 2.0).expected_purchases(20.0, 3, 8.0, 20.0)
        for a in (1 - 1e-4, 1.0, 1 + 1e-4)
    ]
    assert math.isfinite(values[1])
    assert values[1] == pytest.approx((values[0] + values[2]) / 2, rel=1e-7)


@pytest.mark.parametrize(("x", "mean_spend"), [(1, 10.0), (2, 22.35), (4, 33.32), (10, 50.0)])
def test_published_gamma_gamma_matches_integration(x: int, mean_spend: float) -> None:
    model = CDNOW_SPEND
    mixing = stats.gamma(model.q, scale=1 / model.v)

    def over_nu(f) -> float:
        def g(nu: float) -> float:
            # the mean of x purchases each Gamma(p, rate ν) is Gamma(px, rate νx)
            return (
                f(nu)
                * stats.gamma.pdf(mean_spend, model.p * x, scale=1 / (nu * x))
                * mixing.pdf(nu)
            )

        return integrate.quad(g, 0, math.inf, epsabs=0, epsrel=1e-11, limit=400)[0]

    density = over_nu(lambda nu: 1.0)
    assert model.log_likelihood(x, mean_spend) == pytest.approx(math.log(density), rel=1e-9)
    # E[p/ν | z̄]: the member's own mean spend per purchase, averaged over the posterior
    posterior_mean = over_nu(lambda nu: model.p / nu) / density
    assert model.expected_spend(x, mean_spend) == pytest.approx(posterior_mean, rel=1e-9)


def test_gamma_gamma_population_mean() -> None:
    assert CDNOW_SPEND.mean_spend == pytest.approx(6.25 * 15.44 / 2.74)
    assert CDNOW_SPEND.expected_spend(0, 0.0) == CDNOW_SPEND.mean_spend
    with pytest.raises(ValueError, match="infinite"):
        _ = GammaGamma(2.0, 0.9, 10.0).mean_spend


# -- known special cases and monotonicity ------------------------------------------------


def test_p_alive_special_cases() -> None:
    # No repeat purchase: the member cannot have dropped out (drop-out follows a repeat).
    for T in (0.0, 1.0, 38.86, 1e6):
        assert CDNOW.p_alive(0, 0.0, T) == 1.0
    # A purchase just now: as alive as the model allows for x >= 1, then decaying.
    assert CDNOW.p_alive(3, 20.0, 20.0) == pytest.approx(1 / (1 + 0.793 / (2.426 + 2)))
    assert (
        CDNOW.p_alive(3, 20.0, 60.0) < CDNOW.p_alive(3, 20.0, 30.0) < CDNOW.p_alive(3, 20.0, 20.0)
    )
    assert CDNOW.p_alive(3, 20.0, 1e5) < 1e-6


def test_unconditional_equals_conditional_at_the_first_purchase() -> None:
    assert CDNOW.expected_purchases_new(39.0) == CDNOW.expected_purchases(39.0, 0, 0.0, 0.0)
    assert CDNOW.expected_purchases(0.0, 5, 10.0, 30.0) == 0.0


models = st.builds(
    BgNbd,
    r=st.floats(0.05, 5.0),
    alpha=st.floats(0.5, 50.0),
    a=st.one_of(st.floats(0.1, 5.0), st.floats(5.0, 1e5)),
    b=st.one_of(st.floats(0.1, 10.0), st.floats(10.0, 1e6)),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, float, float, float]:
    """x >= 1, two last-purchase times t_early <= t_late, and T >= t_late."""
    x = draw(st.integers(1, 60))
    T = draw(st.floats(1.0, 200.0))
    first = draw(st.floats(0.0, T))
    second = draw(st.floats(0.0, T))
    return x, min(first, second), max(first, second), T


@settings(max_examples=150, deadline=None)
@given(models, histories(), st.floats(0.5, 100.0))
def test_more_recent_purchase_means_more_alive_and_more_purchases(
    model: BgNbd, history: tuple[int, float, float, float], t: float
) -> None:
    x, early, late, T = history
    assert 0 < model.p_alive(x, early, T) <= model.p_alive(x, late, T) * (1 + 1e-9) <= 1 + 1e-12
    assert model.expected_purchases(t, x, early, T) <= model.expected_purchases(t, x, late, T) * (
        1 + 1e-9
    )


@settings(max_examples=150, deadline=None)
@given(models, histories(), st.floats(0.0, 300.0), st.floats(0.5, 100.0))
def test_longer_silence_means_less_alive_and_fewer_purchases(
    model: BgNbd, history: tuple[int, float, float, float], extra: float, t: float
) -> None:
    x, _, t_x, T = history
    later = T + extra
    assert model.p_alive(x, t_x, later) <= model.p_alive(x, t_x, T) * (1 + 1e-9)
    assert model.expected_purchases(t, x, t_x, later) <= model.expected_purchases(t, x, t_x, T) * (
        1 + 1e-9
    )


@settings(max_examples=150, deadline=None)
@given(models, histories(), st.floats(0.0, 100.0), st.floats(0.0, 100.0))
def test_expected_purchases_grow_with_the_horizon(
    model: BgNbd, history: tuple[int, float, float, float], t1: float, t2: float
) -> None:
    x, _, t_x, T = history
    short, long = sorted((t1, t2))
    low = model.expected_purchases(short, x, t_x, T)
    assert 0 <= low <= model.expected_purchases(long, x, t_x, T) * (1 + 1e-9) + 1e-12


@settings(max_examples=150, deadline=None)
@given(
    st.floats(0.05, 5.0),
    st.floats(0.5, 50.0),
    st.floats(2.0, 40.0),
    st.floats(2.0, 100.0),
    st.integers(0, 60),
    st.floats(1.0, 200.0),
    st.floats(0.5, 200.0),
)
def test_fallback_quadrature_agrees_with_the_closed_form(
    r: float,
    alpha: float,
    a: float,
    b: float,
    x: int,
    T: float,  # noqa: N803
    t: float,
) -> None:
    # Where both work, the Gauss-Hermite fallback and eq. (10) agree.
    model = BgNbd(r, alpha, a, b)
    args = (np.array([t]), np.array([float(x)]), np.array([T]))
    closed = model._while_alive(a, *args)[0]
    if math.isfinite(closed):
        assert model._while_alive_integrated(*args)[0] == pytest.approx(closed, rel=1e-6)


@pytest.mark.parametrize(
    ("model", "x", "T", "t"),
    [
        (BgNbd(2.0, 4.414, 120.0, 300.0), 40, 39.0, 500.0),
        (BgNbd(2.0, 4.414, 1200.0, 3000.0), 5, 10.0, 1e5),
    ],
)
def test_fallback_where_scipy_gives_nan(model: BgNbd, x: int, T: float, t: float) -> None:  # noqa: N803
    # Large a and b (fits on near-homogeneous drop-out run there), a heavy buyer,
    # a long horizon: scipy's 2F1 gives nan. So long after T an active member
    # buys until drop-out: E[1/p] for p ~ Beta(a, b+x), (a+b+x-1)/(a-1).
    args = (np.array([t]), np.array([float(x)]), np.array([T]))
    assert not math.isfinite(model._while_alive(model.a, *args)[0])
    expected = model.expected_purchases(t, x, 0.9 * T, T)
    limit = (model.a + model.b + x - 1) / (model.a - 1)
    assert expected == pytest.approx(limit * model.p_alive(x, 0.9 * T, T), rel=1e-9)


# -- the summary from transactions -------------------------------------------------------

D0 = date(2026, 1, 1)
ROWS = [
    ("ann", D0, 1_000),
    ("ann", D0, 500),  # same day: one purchase
    ("ann", D0 + timedelta(days=7), 2_000),
    ("ann", D0 + timedelta(days=14), 3_000),
    ("ann", D0 + timedelta(days=14), 1_000),
    ("bob", D0 + timedelta(days=21), 700),  # one purchase only
    ("cat", D0 + timedelta(days=3), 900),
    ("cat", D0 + timedelta(days=31), 100),
    ("cat", D0 + timedelta(days=40), 800),  # after the calibration end
    ("cat", D0 + timedelta(days=40), 200),
    ("ann", D0 + timedelta(days=45), 400),
    ("ann", D0 + timedelta(days=90), 400),  # after the holdout end
    ("dan", D0 + timedelta(days=50), 400),  # first buys in the holdout
]
END = D0 + timedelta(days=34)


def test_summarise_counts_distinct_repeat_days() -> None:
    assert summarise(ROWS, END, unit="days") == [
        MemberSummary("ann", x=2, t_x=14.0, T=34.0, repeat_spend=6_000),
        MemberSummary("bob", x=0, t_x=0.0, T=13.0, repeat_spend=0),
        MemberSummary("cat", x=1, t_x=28.0, T=31.0, repeat_spend=100),
    ]
    weeks = summarise(ROWS, END)
    assert [(m.x, m.t_x, m.T) for m in weeks] == [
        (2, 2.0, 34 / 7),
        (0, 0.0, 13 / 7),
        (1, 4.0, 31 / 7),
    ]
    assert weeks[0].mean_repeat_spend == 3_000.0
    assert weeks[1].mean_repeat_spend is None


def test_holdout_purchases() -> None:
    assert holdout_purchases(ROWS, END, END + timedelta(days=30)) == {"ann": 1, "bob": 0, "cat": 1}


def test_member_summary_refuses_impossible_histories() -> None:
    with pytest.raises(ValueError, match="after T"):
        MemberSummary("m", 2, 10.0, 5.0)
    with pytest.raises(ValueError, match="no repeat purchase"):
        MemberSummary("m", 0, 3.0, 5.0)
    with pytest.raises(ValueError, match=">= 0"):
        MemberSummary("m", -1, 0.0, 5.0)
    with pytest.raises(ValueError, match="positive"):
        BgNbd(0.0, 1.0, 1.0, 1.0)


# -- holdout check and CLV ---------------------------------------------------------------


def test_holdout_buckets_add_up_to_the_totals() -> None:
    members, later = simulate_bgnbd(random.Random(1), 800, CDNOW, (27.0, 39.0), 39.0)
    del later[members[0].member]  # missing from the counts: made none
    check = holdout_check(CDNOW, members, later, horizon=39.0)
    assert [b.label for b in check.buckets] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert check.members == 800 == sum(b.members for b in check.buckets)
    assert check.actual == sum(later.values()) == sum(b.actual for b in check.buckets)
    assert check.predicted == pytest.approx(
        math.fsum(b.predicted for b in check.buckets), rel=1e-12
    )
    by_x = {k: [m for m in members if min(m.x, 7) == k] for k in range(8)}
    for k, bucket in enumerate(check.buckets):
        assert bucket.members == len(by_x[k])
        assert bucket.actual == sum(later.get(m.member, 0) for m in by_x[k])
    empty = holdout_check(CDNOW, [], {}, horizon=39.0)
    assert empty.predicted == 0.0
    assert all(b.members == 0 and b.predicted_mean is None for b in empty.buckets)


def test_holdout_check_refuses_strangers() -> None:
    members = [MemberSummary("m", 1, 1.0, 2.0)]
    with pytest.raises(ValueError, match="without a calibration summary"):
        holdout_check(CDNOW, members, {"m": 1, "new": 2}, horizon=10.0)


def test_clv_is_purchases_times_spend_times_margin() -> None:
    members = [
        MemberSummary("a", 2, 30.43, 38.86, 4_470),
        MemberSummary("b", 0, 0.0, 38.86),
        MemberSummary("c", 5, 10.0, 30.0, 0),  # points-only repeat days
    ]
    spend = GammaGamma(6.25, 3.74, 1544.0)
    plain = predict_clv(CDNOW, spend, members, horizon=52.0, margin=Fraction(1, 4))
    for m, estimate in zip(members, plain, strict=True):
        assert estimate.member == m.member
        assert estimate.p_alive == CDNOW.p_alive(m.x, m.t_x, m.T)
        assert estimate.expected_purchases == pytest.approx(
            CDNOW.expected_purchases(52.0, m.x, m.t_x, m.T), rel=1e-12
        )
        assert estimate.clv_minor == pytest.approx(
            estimate.expected_purchases * estimate.expected_spend_minor / 4, rel=1e-12
        )
    assert plain[0].expected_spend_minor == pytest.approx(spend.expected_spend(2, 2_235.0))
    assert plain[1].expected_spend_minor == pytest.approx(spend.mean_spend)
    assert plain[2].expected_spend_minor == pytest.approx(6.25 * 1544.0 / (6.25 * 5 + 2.74))

    one_period = predict_clv(
        CDNOW, spend, members, horizon=52.0, margin=0.25, discount_rate=0.1, period=52.0
    )
    weekly = predict_clv(CDNOW, spend, members, horizon=52.0, margin=0.25, discount_rate=0.002)
    for p, once, w in zip(plain, one_period, weekly, strict=True):
        assert once.clv_minor == pytest.approx(p.clv_minor / 1.1, rel=1e-12)
        assert p.clv_minor / 1.002**52 < w.clv_minor < p.clv_minor / 1.002


def test_clv_fits_end_to_end_from_transactions() -> None:
    rng = random.Random(2)
    rows = []
    for i in range(300):
        day = D0 + timedelta(days=rng.randrange(60))
        while day < D0 + timedelta(days=400):
            rows.append((f"M{i}", day, rng.randrange(500, 5_000)))
            day += timedelta(days=1 + int(rng.expovariate(1 / 20)))
            if rng.random() < 0.05:
                break
    end = D0 + timedelta(days=280)
    members = summarise(rows, end, unit="weeks")
    purchases, spend = fit_bgnbd(members).model, fit_gamma_gamma(members).model
    values = predict_clv(purchases, spend, members, horizon=17.0, margin=0.3)
    assert len(values) == len(members)
    assert all(v.clv_minor >= 0 and 0 <= v.p_alive <= 1 for v in values)
    check = holdout_check(
        purchases, members, holdout_purchases(rows, end, end + timedelta(days=119)), horizon=17.0
    )
    assert check.actual > 0
    assert check.predicted == pytest.approx(check.actual, rel=0.35)
