# SPDX-License-Identifier: Apache-2.0
"""Predicted customer lifetime value: BG/NBD repeat purchases times Gamma-Gamma spend.

Written from the papers' formulas:

- BG/NBD: Fader, Hardie & Lee (2005a), "'Counting your customers' the easy
  way: an alternative to the Pareto/NBD model", Marketing Science 24(2),
  with P(alive) from their note "Computing P(alive) using the BG/NBD model";
- Gamma-Gamma: Fader, Hardie & Lee (2005b), "RFM and CLV: using iso-value
  curves for customer base analysis", JMR 42(4), as set out in Fader &
  Hardie's note "The Gamma-Gamma model of monetary value" (2013).

Transactions come in as integer minor units. Everything the models return is
a float *estimate*: show it in a report, never post it to a balance.

    members = summarise(rows, date(2026, 3, 31), unit="weeks")
    purchases = fit_bgnbd(members).model
    spend = fit_gamma_gamma(members).model
    values = predict_clv(purchases, spend, members, horizon=52, margin=Fraction(1, 4))
    check = holdout_check(purchases, members, holdout_purchases(rows, ...), horizon=13)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from fractions import Fraction
from typing import Literal

import attrs
import numpy as np
import numpy.typing as npt
from scipy import optimize, special

Unit = Literal["days", "weeks"]
_DAYS_PER_UNIT: dict[str, int] = {"days": 1, "weeks": 7}

_Arr = npt.NDArray[np.float64]

# Log-parameters are kept inside exp(±_LOG_BOUND): far past any real estimate,
# short of overflow when a likelihood drifts towards a boundary.
_LOG_BOUND = 20.0
# Within this of a = 1 the BG/NBD expectations are taken either side of it.
_NEAR_ONE = 1e-6
# Gauss-Hermite (probabilists') nodes and log-weights for the fallback quadrature.
_GH_NODES, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_GH_LOG_WEIGHTS = np.log(_GH_W)


# -- typed wrappers: scipy ships no type information ------------------------------------


def _f64(value: object) -> _Arr:
    return np.asarray(value, dtype=np.float64)


def _gammaln(v: _Arr) -> _Arr:
    return _f64(special.gammaln(v))


def _betaln(a: _Arr, b: _Arr) -> _Arr:
    return _f64(special.betaln(a, b))


def _digamma(v: _Arr) -> _Arr:
    return _f64(special.digamma(v))


def _hyp2f1(a: _Arr, b: _Arr, c: _Arr, z: _Arr) -> _Arr:
    return _f64(special.hyp2f1(a, b, c, z))


@attrs.frozen
class _Optimum:
    point: _Arr
    value: float
    converged: bool


def _minimise(fun: Callable[[_Arr], tuple[float, _Arr]], start: _Arr) -> _Optimum:
    """L-BFGS-B on log-parameters with an analytic gradient."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    result = optimize.minimize(fun, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return _Optimum(_f64(result.x), float(result.fun), bool(result.success))


# -- members: the (x, t_x, T) summary ----------------------------------------------------


@attrs.frozen
class MemberSummary:
    """One member's calibration period as the papers use it.

    ``x`` is repeat purchases (distinct purchase days after the first), ``t_x``
    the time of the last purchase and ``T`` the time to the end of the
    calibration period, both since the first purchase, in the model's unit.
    ``repeat_spend`` is what the ``x`` repeat purchase days took, in minor
    units: the first day is left out, as in the Gamma-Gamma note.
    """

    member: str
    x: int = attrs.field(validator=attrs.validators.ge(0))
    t_x: float = attrs.field(validator=attrs.validators.ge(0))
    T: float = attrs.field(validator=attrs.validators.ge(0))
    repeat_spend: int = 0

    def __attrs_post_init__(self) -> None:
        if self.t_x > self.T:
            raise ValueError(f"{self.member}: t_x {self.t_x} is after T {self.T}")
        if self.x == 0 and (self.t_x != 0 or self.repeat_spend != 0):
            raise ValueError(f"{self.member}: no repeat purchase, yet t_x or spend is set")

    @property
    def mean_repeat_spend(self) -> float | None:
        """Average spend per repeat purchase day in minor units; None without one."""
        return self.repeat_spend / self.x if self.x else None


def summarise(
    transactions: Iterable[tuple[str, date, int]],
    calibration_end: date,
    *,
    unit: Unit = "weeks",
) -> list[MemberSummary]:
    """Each member's (x, t_x, T, spend) from rows (member, day, amount in minor units).

    Only days up to and including ``calibration_end`` count; several
    transactions on one day are one purchase (the papers count purchase
    occasions). Sorted by member.
    """
    per_unit = _DAYS_PER_UNIT[unit]
    days: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for member, day, amount in transactions:
        if day <= calibration_end:
            days[member][day] += amount
    members = []
    for member in sorted(days):
        spend_by_day = days[member]
        ordered = sorted(spend_by_day)
        first, last = ordered[0], ordered[-1]
        members.append(
            MemberSummary(
                member,
                x=len(ordered) - 1,
                t_x=(last - first).days / per_unit,
                T=(calibration_end - first).days / per_unit,
                repeat_spend=sum(spend_by_day[day] for day in ordered[1:]),
            )
        )
    return members


def holdout_purchases(
    transactions: Iterable[tuple[str, date, int]], calibration_end: date, holdout_end: date
) -> dict[str, int]:
    """Purchase days in (calibration_end, holdout_end] of members who bought by calibration_end.

    Members who first bought in the holdout period are left out: the
    calibration summaries, and so the predictions, do not cover them.
    """
    known: set[str] = set()
    later: dict[str, set[date]] = defaultdict(set)
    for member, day, _amount in transactions:
        if day <= calibration_end:
            known.add(member)
        elif day <= holdout_end:
            later[member].add(day)
    return {member: len(later.get(member, ())) for member in sorted(known)}


def _columns(members: Sequence[MemberSummary]) -> tuple[_Arr, _Arr, _Arr]:
    x = _f64([m.x for m in members])
    t_x = _f64([m.t_x for m in members])
    big_t = _f64([m.T for m in members])
    return x, t_x, big_t


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be positive and finite, got {value}")


def _check_history(x: int, t_x: float, T: float) -> None:  # noqa: N803
    MemberSummary("", x, t_x, T)


# -- BG/NBD: how many repeat purchases, and is the member still there ------------------------


@attrs.frozen
class BgNbd:
    """BG/NBD parameters: purchase rates ~ Gamma(r, alpha), drop-out ~ Beta(a, b).

    While active a member buys as a Poisson process; after each repeat
    purchase they drop out with their own probability p. Time is in the unit
    of the summaries that were fitted (CDNOW's published fit is in weeks).
    """

    r: float = attrs.field(validator=_positive)
    alpha: float = attrs.field(validator=_positive)
    a: float = attrs.field(validator=_positive)
    b: float = attrs.field(validator=_positive)

    def _terms(self, x: _Arr, t_x: _Arr, big_t: _Arr) -> tuple[_Arr, _Arr, _Arr]:
        """The likelihood's parts in logs: common factor, "alive at T", "dropped at t_x".

        L = Γ(r+x) α^r / Γ(r) · B(a, b+x) / B(a, b) ·
            [ (α+T)^-(r+x) + δ(x>0) · a/(b+x-1) · (α+t_x)^-(r+x) ]
        (the BG/NBD paper's likelihood for a randomly chosen member, section 3).
        The second term is -inf for x = 0, so logaddexp drops it.
        """
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        common = (
            _gammaln(r + x)
            - _gammaln(np.full_like(x, r))
            + r * np.log(alpha)
            + _betaln(np.full_like(x, a), b + x)
            - _betaln(np.full_like(x, a), np.full_like(x, b))
        )
        alive = -(r + x) * np.log(alpha + big_t)
        repeat = x > 0
        safe = np.where(repeat, b + x - 1, 1.0)
        dropped = np.where(
            repeat, np.log(a) - np.log(safe) - (r + x) * np.log(alpha + t_x), -np.inf
        )
        return common, alive, dropped

    def _log_likelihood(self, x: _Arr, t_x: _Arr, big_t: _Arr) -> _Arr:
        common, alive, dropped = self._terms(x, t_x, big_t)
        return common + np.logaddexp(alive, dropped)

    def _p_alive(self, x: _Arr, t_x: _Arr, big_t: _Arr) -> _Arr:
        _common, alive, dropped = self._terms(x, t_x, big_t)
        return np.exp(alive - np.logaddexp(alive, dropped))

    def _expected(self, t: _Arr, x: _Arr, t_x: _Arr, big_t: _Arr) -> _Arr:
        """E[Y(t) | x, t_x, T]: the paper's eq. (10), P(alive) times purchases if alive.

        Where scipy's 2F1 gives no finite value (probed: a and b in the tens or
        more, heavy buyers over long horizons; fits on near-homogeneous data go
        there) the same expectation is integrated numerically instead.
        """
        if abs(self.a - 1) < _NEAR_ONE:
            # 0/0 at a = 1: the expression is smooth in a, so take the mean of its
            # values either side (error ~1e-10, far below the model's own).
            while_alive = (
                self._while_alive(1 - _NEAR_ONE, t, x, big_t)
                + self._while_alive(1 + _NEAR_ONE, t, x, big_t)
            ) / 2
        else:
            while_alive = self._while_alive(self.a, t, x, big_t)
        failed = ~np.isfinite(while_alive)
        if failed.any():
            while_alive[failed] = self._while_alive_integrated(t[failed], x[failed], big_t[failed])
        # Rounding near a = 1 and t = 0 can dip a hair below zero; a count cannot.
        return _f64(np.maximum(while_alive, 0.0) * self._p_alive(x, t_x, big_t))

    def _while_alive(self, a: float, t: _Arr, x: _Arr, big_t: _Arr) -> _Arr:
        """Eq. (10) without its P(alive) factor, at a given a, as printed:

        (a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x-1; t/(α+T+t))].
        (Probed against quadrature, this form fails less often in scipy than its
        Euler transform.)
        """
        r, alpha, b = self.r, self.alpha, self.b
        c = a + b + x - 1
        z = t / (alpha + big_t + t)
        hyp = _hyp2f1(r + x, b + x, c, z)
        bracket = 1.0 - np.exp((r + x) * np.log1p(-z)) * hyp
        with np.errstate(invalid="ignore", over="ignore"):
            return _f64(c / (a - 1) * bracket)

    def _while_alive_integrated(self, t: _Arr, x: _Arr, big_t: _Arr) -> _Arr:
        """Purchases in the next t if still active, by quadrature: the fallback.

        Given activity at T, λ ~ Gamma(r+x, α+T) and p ~ Beta(a, b+x) independently,
        and integrating λ out leaves E_p[(1 - (1 + p t/(α+T))^-(r+x)) / p]. Where 2F1
        fails the beta is concentrated (a, b large), so Gauss-Hermite nodes on the
        logit of p, centred at its mode and self-normalised, integrate it closely.
        """
        a, b_post = self.a, self.b + x
        k = t / (self.alpha + big_t)
        shape = self.r + x
        mode = math.log(a) - np.log(b_post)
        spread = np.sqrt((a + b_post) / (a * b_post))
        y = mode[:, None] + spread[:, None] * _GH_NODES[None, :]
        log_p, log_q = -np.logaddexp(0.0, -y), -np.logaddexp(0.0, y)
        log_weight = a * log_p + b_post[:, None] * log_q + _GH_NODES**2 / 2 + _GH_LOG_WEIGHTS
        weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
        p = np.exp(log_p)
        value = -np.expm1(-shape[:, None] * np.log1p(p * k[:, None])) / p
        return _f64((weight * value).sum(axis=1) / weight.sum(axis=1))

    def log_likelihood(self, x: int, t_x: float, T: float) -> float:  # noqa: N803
        """Log-likelihood of one member's history."""
        _check_history(x, t_x, T)
        return float(self._log_likelihood(_f64([x]), _f64([t_x]), _f64([T]))[0])

    def total_log_likelihood(self, members: Sequence[MemberSummary]) -> float:
        """Sum over members: the figure the fit maximises and the paper reports."""
        return math.fsum(self._log_likelihood(*_columns(members)).tolist())

    def p_alive(self, x: int, t_x: float, T: float) -> float:  # noqa: N803
        """P(still active at T | x, t_x, T).

        1 / (1 + δ(x>0) · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)); exactly 1 for x = 0,
        because in BG/NBD members drop out only right after a repeat purchase.
        """
        _check_history(x, t_x, T)
        return float(self._p_alive(_f64([x]), _f64([t_x]), _f64([T]))[0])

    def expected_purchases(self, t: float, x: int, t_x: float, T: float) -> float:  # noqa: N803
        """Expected repeat purchases in (T, T + t] given the history: the paper's eq. (10)."""
        _check_history(x, t_x, T)
        if t < 0:
            raise ValueError(f"t must be >= 0, got {t}")
        return float(self._expected(_f64([t]), _f64([x]), _f64([t_x]), _f64([T]))[0])

    def expected_purchases_new(self, t: float) -> float:
        """E[X(t)], repeat purchases in (0, t] of a member who just bought: eq. (9).

        (a+b-1)/(a-1) · [1 - (α/(α+t))^r · 2F1(r, b; a+b-1; t/(α+t))]: eq. (10)
        with x = t_x = T = 0, computed the same way.
        """
        return self.expected_purchases(t, 0, 0.0, 0.0)


@attrs.frozen
class BgNbdFit:
    """A maximum-likelihood BG/NBD fit and what it was fitted on."""

    model: BgNbd
    log_likelihood: float
    members: int
    converged: bool


def _grouped(members: Sequence[MemberSummary]) -> tuple[_Arr, _Arr, _Arr, _Arr]:
    """Distinct (x, t_x, T) with counts: members who share a history share a term."""
    counts: dict[tuple[int, float, float], int] = defaultdict(int)
    for m in members:
        counts[(m.x, m.t_x, m.T)] += 1
    keys = list(counts)
    return (
        _f64([k[0] for k in keys]),
        _f64([k[1] for k in keys]),
        _f64([k[2] for k in keys]),
        _f64([counts[k] for k in keys]),
    )


def _bgnbd_objective(
    log_params: _Arr, x: _Arr, t_x: _Arr, big_t: _Arr, weight: _Arr
) -> tuple[float, _Arr]:
    """Minus the mean log-likelihood and its gradient in log-parameters.

    The gradient follows from differentiating the likelihood above: with
    w = P(alive) and 1 - w the shares of its two bracketed terms,
    d/dr = ψ(r+x) - ψ(r) + ln α - w ln(α+T) - (1-w) ln(α+t_x), and so on.
    """
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    model = BgNbd(r, alpha, a, b)
    common, alive, dropped = model._terms(x, t_x, big_t)
    total = np.logaddexp(alive, dropped)
    w_alive = np.exp(alive - total)
    w_dropped = 1.0 - w_alive
    repeat = x > 0
    log_at = np.log(alpha + big_t)
    log_atx = np.log(alpha + t_x)
    d_r = (
        _digamma(r + x)
        - _digamma(np.full_like(x, r))
        + np.log(alpha)
        - w_alive * log_at
        - w_dropped * log_atx
    )
    d_alpha = r / alpha - w_alive * (r + x) / (alpha + big_t) - w_dropped * (r + x) / (alpha + t_x)
    psi_ab = _digamma(np.full_like(x, a + b))
    psi_abx = _digamma(a + b + x)
    d_a = psi_ab - psi_abx + np.where(repeat, w_dropped / a, 0.0)
    safe = np.where(repeat, b + x - 1, 1.0)
    d_b = (
        _digamma(b + x)
        - psi_abx
        - _digamma(np.full_like(x, b))
        + psi_ab
        - np.where(repeat, w_dropped / safe, 0.0)
    )
    n = float(weight.sum())
    value = -float(np.dot(weight, common + total)) / n
    grads = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
    return value, _f64(-(grads @ weight) / n)


def fit_bgnbd(members: Sequence[MemberSummary]) -> BgNbdFit:
    """Maximum-likelihood (r, alpha, a, b) over log-parameters, so they stay positive."""
    if not members:
        raise ValueError("no members to fit")
    if not any(m.x for m in members):
        raise ValueError("no member made a repeat purchase: nothing to fit drop-out on")
    x, t_x, big_t, weight = _grouped(members)

    def objective(log_params: _Arr) -> tuple[float, _Arr]:
        return _bgnbd_objective(log_params, x, t_x, big_t, weight)

    best = _minimise(objective, np.zeros(4))
    r, alpha, a, b = (float(v) for v in np.exp(best.point))
    return BgNbdFit(BgNbd(r, alpha, a, b), -best.value * len(members), len(members), best.converged)


# -- Gamma-Gamma: how much per repeat purchase --------------------------------------------


@attrs.frozen
class GammaGamma:
    """Gamma-Gamma spend parameters: a purchase's value ~ Gamma(p, ν), ν ~ Gamma(q, v).

    ``v`` carries the spend's unit (minor units when fitted on summaries; the
    published CDNOW fit is in dollars). Assumes spend does not depend on
    purchase frequency: check that the two are barely correlated first.
    """

    p: float = attrs.field(validator=_positive)
    q: float = attrs.field(validator=_positive)
    v: float = attrs.field(validator=_positive)

    def _log_likelihood(self, x: _Arr, mean_spend: _Arr) -> _Arr:
        """Density of the average z̄ of x purchases, the note's eq. (1a), in logs.

        Γ(px+q) / (Γ(px) Γ(q)) · v^q · z̄^(px-1) · x^(px) / (v + x z̄)^(px+q).
        """
        p, q, v = self.p, self.q, self.v
        px = p * x
        return _f64(
            _gammaln(px + q)
            - _gammaln(px)
            - _gammaln(np.full_like(x, q))
            + q * np.log(v)
            + (px - 1) * np.log(mean_spend)
            + px * np.log(x)
            - (px + q) * np.log(v + x * mean_spend)
        )

    def _expected(self, x: _Arr, mean_spend: _Arr) -> _Arr:
        if self.q <= 1:
            raise ValueError(f"q = {self.q} <= 1: the model's mean spend is infinite")
        p, q, v = self.p, self.q, self.v
        return p * (v + x * mean_spend) / (p * x + q - 1)

    def log_likelihood(self, x: int, mean_spend: float) -> float:
        """Log-density of one member's average spend over x >= 1 repeat purchases."""
        if x < 1 or not mean_spend > 0:
            raise ValueError("needs x >= 1 and a positive average spend")
        return float(self._log_likelihood(_f64([x]), _f64([mean_spend]))[0])

    @property
    def mean_spend(self) -> float:
        """Population mean spend per purchase, p·v / (q - 1): the estimate for x = 0."""
        return float(self._expected(_f64([0]), _f64([0]))[0])

    def expected_spend(self, x: int, mean_spend: float) -> float:
        """E[spend per purchase | x, z̄], the note's eq. (5).

        p (v + x z̄) / (p x + q - 1): a weighted average of the population mean
        and the member's own average, leaning on the latter as x grows.
        """
        if x < 0 or (x > 0 and not mean_spend > 0):
            raise ValueError("needs x >= 0 and, for x >= 1, a positive average spend")
        return float(self._expected(_f64([x]), _f64([mean_spend if x else 0.0]))[0])


@attrs.frozen
class GammaGammaFit:
    """A maximum-likelihood Gamma-Gamma fit; ``members`` is how many it used."""

    model: GammaGamma
    log_likelihood: float
    members: int
    converged: bool


def _spenders(members: Sequence[MemberSummary]) -> list[MemberSummary]:
    return [m for m in members if m.x >= 1 and m.repeat_spend > 0]


def _gg_objective(log_params: _Arr, x: _Arr, z: _Arr) -> tuple[float, _Arr]:
    """Minus the mean log-likelihood and its gradient in log-parameters."""
    p, q, v = (float(val) for val in np.exp(log_params))
    model = GammaGamma(p, q, v)
    ll = model._log_likelihood(x, z)
    px = p * x
    psi = _digamma(px + q)
    log_vxz = np.log(v + x * z)
    d_p = x * (psi - _digamma(px) + np.log(z) + np.log(x) - log_vxz)
    d_q = psi - _digamma(np.full_like(x, q)) + np.log(v) - log_vxz
    d_v = q / v - (px + q) / (v + x * z)
    n = float(len(x))
    grads = np.stack([d_p.sum() * p, d_q.sum() * q, d_v.sum() * v])
    return -float(ll.sum()) / n, _f64(-grads / n)


def fit_gamma_gamma(members: Sequence[MemberSummary]) -> GammaGammaFit:
    """Maximum-likelihood (p, q, v) on members with x >= 1 and a positive repeat spend.

    Members without a repeat purchase carry no spend information; zero or
    negative spend (refunds, points-only days) cannot come from a gamma.
    """
    used = _spenders(members)
    if len(used) < 2:
        raise ValueError("fewer than two members with repeat purchases and spend")
    x = _f64([m.x for m in used])
    z = _f64([m.repeat_spend / m.x for m in used])
    # Start with v at the spend's scale, so minor units and dollars both converge.
    start = _f64([0.0, 0.0, math.log(float(np.mean(z)))])

    def objective(log_params: _Arr) -> tuple[float, _Arr]:
        return _gg_objective(log_params, x, z)

    best = _minimise(objective, start)
    p, q, v = (float(val) for val in np.exp(best.point))
    return GammaGammaFit(GammaGamma(p, q, v), -best.value * len(used), len(used), best.converged)


# -- the two together: value over a horizon ----------------------------------------------


@attrs.frozen
class ClvEstimate:
    """One member's model estimates over the horizon: floats, never money to post.

    ``expected_spend_minor`` is per purchase; ``clv_minor`` is expected margin
    over the horizon, discounted when a rate was given, in minor units.
    """

    member: str
    p_alive: float
    expected_purchases: float
    expected_spend_minor: float
    clv_minor: float


def predict_clv(
    purchases: BgNbd,
    spend: GammaGamma,
    members: Sequence[MemberSummary],
    *,
    horizon: float,
    margin: Fraction | float,
    discount_rate: float = 0.0,
    period: float = 1.0,
) -> list[ClvEstimate]:
    """Expected purchases x expected spend x margin over ``horizon``, per member.

    With a ``discount_rate`` (per ``period``, both in the model's time unit),
    the purchases expected in the k-th period, E[Y(k·period)] - E[Y((k-1)·period)],
    are discounted by (1 + rate)^-k: a discrete-time take on the discounted
    expected transactions of Fader, Hardie & Lee (2005b). The last period ends
    at the horizon. A member whose repeat days took nothing or less (refunds,
    points-only days) is given an average of 0 for the spend model.
    """
    if horizon < 0 or period <= 0 or discount_rate <= -1:
        raise ValueError("needs horizon >= 0, period > 0 and discount_rate > -1")
    if not members:
        return []
    x, t_x, big_t = _columns(members)
    ones = np.ones_like(x)
    total = purchases._expected(horizon * ones, x, t_x, big_t)
    if discount_rate == 0 or horizon == 0:
        discounted = total
    else:
        steps = max(1, math.ceil(horizon / period - 1e-9))
        discounted = np.zeros_like(x)
        before = np.zeros_like(x)
        for k in range(1, steps + 1):
            upto = purchases._expected(min(k * period, horizon) * ones, x, t_x, big_t)
            discounted += (upto - before) / (1.0 + discount_rate) ** k
            before = upto
    mean_spend = _f64([max(m.repeat_spend, 0) / m.x if m.x else 0.0 for m in members])
    per_purchase = spend._expected(x, mean_spend)
    alive = purchases._p_alive(x, t_x, big_t)
    share = float(margin)
    return [
        ClvEstimate(
            m.member,
            float(alive[i]),
            float(total[i]),
            float(per_purchase[i]),
            float(discounted[i] * per_purchase[i] * share),
        )
        for i, m in enumerate(members)
    ]


# -- holdout check: does the purchase model track what happened next ------------------------


@attrs.frozen
class HoldoutBucket:
    """Members with the same calibration frequency: predicted vs actual holdout purchases."""

    label: str  # "0", "1", ..., "7+"
    members: int
    predicted: float  # estimate: sum of the members' conditional expectations
    actual: int

    @property
    def predicted_mean(self) -> float | None:
        return self.predicted / self.members if self.members else None

    @property
    def actual_mean(self) -> float | None:
        return self.actual / self.members if self.members else None


@attrs.frozen
class HoldoutCheck:
    """Predicted vs actual repeat purchases in a holdout period, in total and by frequency.

    The BG/NBD paper's test of fit: conditional expectations against what the
    same members did next, by the number of repeat purchases in calibration.
    """

    horizon: float
    members: int
    predicted: float
    actual: int
    buckets: tuple[HoldoutBucket, ...]


def holdout_check(
    purchases: BgNbd,
    calibration: Sequence[MemberSummary],
    actual: Mapping[str, int],
    *,
    horizon: float,
    top_bucket: int = 7,
) -> HoldoutCheck:
    """Compare E[Y(horizon) | x, t_x, T] with the purchases ``actual`` counted in the holdout.

    ``actual`` maps member to repeat purchase days in the holdout period
    (`holdout_purchases`); a member missing from it made none. Buckets are
    x = 0, 1, ..., top_bucket - 1 and top_bucket or more, every one present.
    """
    if top_bucket < 1:
        raise ValueError("top_bucket must be >= 1")
    if any(count < 0 for count in actual.values()):
        raise ValueError("holdout purchase counts must be >= 0")
    known = {m.member for m in calibration}
    strangers = sorted(set(actual) - known)
    if strangers:
        raise ValueError(
            f"holdout purchases for members without a calibration summary: {strangers[:5]}"
        )
    if calibration:
        expected = purchases._expected(
            horizon * np.ones(len(calibration)), *_columns(calibration)
        ).tolist()
    else:
        expected = []
    predicted: list[list[float]] = [[] for _ in range(top_bucket + 1)]
    done = [0] * (top_bucket + 1)
    for m, estimate in zip(calibration, expected, strict=True):
        k = min(m.x, top_bucket)
        predicted[k].append(estimate)
        done[k] += actual.get(m.member, 0)
    buckets = tuple(
        HoldoutBucket(
            f"{k}+" if k == top_bucket else str(k),
            len(predicted[k]),
            math.fsum(predicted[k]),
            done[k],
        )
        for k in range(top_bucket + 1)
    )
    return HoldoutCheck(horizon, len(calibration), math.fsum(expected), sum(done), buckets)
