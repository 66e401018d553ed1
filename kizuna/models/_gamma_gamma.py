"""Gamma-Gamma: the value of a customer's orders (Fader, Hardie & Lee 2005, "RFM and CLV")."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy.special import gammaln, psi

from kizuna._errors import Phrase
from kizuna.models._base import (
    BaseModel,
    as_counts,
    as_vector,
    check_nonnegative,
    check_whole,
    compress,
    dot,
    factorize,
    same_length,
    warn,
)

__all__ = ["GammaGamma"]


class _Data(NamedTuple):
    """Unique (frequency, monetary_value) rows with weights, arranged for GammaGamma._objective."""

    xs: np.ndarray  # distinct frequencies
    w_x: np.ndarray  # customers per distinct frequency
    xm: np.ndarray  # per row: frequency × mean order value (the customer's total)
    w: np.ndarray  # per row: weight
    wx: np.ndarray  # per row: weight × frequency
    sum_wx_log_xm: float  # Σ w x (ln m + ln x)
    sum_w_log_m: float  # Σ w ln m

MIN_CUSTOMERS = 50
# |correlation| of frequency and average order value above which the independence the model
# assumes is in doubt (CDNOW: 0.11).
MAX_CORRELATION = 0.3


class GammaGamma(BaseModel):
    """The Gamma-Gamma spend model of Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves".

    The value of each order of a customer is Gamma(p, ν) around the customer's own mean p/ν, and
    ν ~ Gamma(q, γ) across customers (``v`` here is the paper's γ). The model assumes that order
    value is independent of the number of orders.

    It is fitted on **repeat buyers only** (frequency > 0): ``monetary_value`` is the mean value of
    a customer's repeat orders. Rows with frequency 0 are left out with a ``ModelFitWarning``
    (filter them out first to avoid it).

    Attributes
    ----------
    params_ : dict
        ``p``, ``q``, ``v``; set by ``fit``.
    standard_errors_, log_likelihood_, converged_ : as for :class:`BetaGeo`
    n_customers_ : float
        Repeat buyers fitted.

    Examples
    --------
    The 946 repeat buyers of the CDNOW summary (``zbar`` is their mean repeat-order value; in tests/data):

    >>> cdnow = np.genfromtxt("cdnow_customers_summary_with_transactions.csv", delimiter=",",
    ...                       names=True)  # doctest: +SKIP
    >>> repeat = cdnow["x"] > 0  # doctest: +SKIP
    >>> model = GammaGamma().fit(cdnow["x"][repeat], cdnow["zbar"][repeat])  # doctest: +SKIP
    >>> {k: round(v, 2) for k, v in model.params_.items()}  # doctest: +SKIP
    {'p': 6.25, 'q': 3.74, 'v': 15.45}
    >>> model.predict_spend(frequency=[2, 0], monetary_value=[22.35, 0]).round(2)  # doctest: +SKIP
    array([24.66, 35.17])
    """

    _param_names = ("p", "q", "v")

    def fit(self, frequency: Any, monetary_value: Any, weights: Any = None) -> GammaGamma:
        """Fit by maximum likelihood on the repeat buyers.

        Parameters
        ----------
        frequency : array-like
            Number of repeat orders of each customer (whole numbers >= 0).
        monetary_value : array-like
            Mean value of those orders (> 0 where frequency > 0; ignored, and may be NaN, where
        frequency is 0).
        weights : array-like, optional
            Number of customers each row stands for (already aggregated data).

        Returns
        -------
        self

        Raises
        ------
        ModelFitError
            No repeat buyers (``reason`` "no_repeat_buyers"); an optimum at the edge of the search
            range ("diverged") or without standard errors ("not_identified") — e.g. when every
            order of every customer has the same value, so the spread of order values cannot be
            estimated. The model stays unfitted.

        Warns
        -----
        ModelFitWarning
            Rows with frequency 0 were left out; fewer than 50 repeat buyers; frequency and
            monetary value strongly correlated (|r| > 0.3); q <= 1 (the mean order value of the
            population is then infinite).
        ConvergenceWarning
            When the optimiser stopped before converging (``converged_`` False).
        """
        x, m = check_spend(frequency, monetary_value)
        w = as_counts(weights, len(x))
        name = type(self).__name__
        repeat = x > 0
        if not repeat.all():
            dropped = float((~repeat).sum() if w is None else w[~repeat].sum())
            warn(f"{name}: {dropped:g} customers with frequency 0 were left out; the model is fitted on "
                 "repeat buyers only. Pass only rows with frequency > 0 to silence this.")
            x, m, w = x[repeat], m[repeat], (None if w is None else w[repeat])
        if len(x) == 0:
            raise self._fail("no_repeat_buyers", "no repeat buyers (frequency > 0) to fit the spend model on.")
        (x, m), w = compress((x, m), w)
        total = float(w.sum())
        if total == 0:
            raise ValueError("every weight is 0: there are no customers to fit.")
        if total < MIN_CUSTOMERS:
            warn(Phrase.of("note.few_repeat_buyers", model=name, n=f"{total:g}", least=MIN_CUSTOMERS))
        correlation = _weighted_correlation(x, m, w)
        if abs(correlation) > MAX_CORRELATION:
            warn(Phrase.of("note.spend_correlated", model=name, r=f"{correlation:.2f}"))
        mean = dot(w, m) / total
        start = np.log([1.0, 2.0, mean])  # p / ν ≈ mean order value with ν ≈ q / v
        self._fit_rows((x, m), w, start)
        if self.params_["q"] <= 1:
            warn(Phrase.of("note.spend_mean_infinite", model=name, q=f"{self.params_['q']:.3g}"))
        return self

    def _prepare(self, x: np.ndarray, m: np.ndarray, w: np.ndarray) -> _Data:
        """Unique (frequency, monetary_value) rows arranged for _objective: the Gamma functions depend
        on the frequency alone, the terms without parameters are summed once."""
        xs, xi = factorize(x)
        wx = w * x
        return _Data(xs=xs, w_x=np.bincount(xi, w, len(xs)), xm=x * m, w=w, wx=wx,
                     sum_wx_log_xm=dot(wx, np.log(m) + np.log(x)), sum_w_log_m=dot(w, np.log(m)))

    def _objective(self, theta: np.ndarray, data: tuple[np.ndarray, ...]) -> tuple[float, np.ndarray]:
        """Negative log-likelihood and its gradient in log-parameters. Per customer (x orders, mean m)::

            ln Γ(px + q) - ln Γ(px) - ln Γ(q) + q ln v + (px - 1) ln m + px ln x - (px + q) ln(xm + v)
        """
        d = data if isinstance(data, _Data) else self._prepare(*data)
        p, q, v = np.exp(theta)
        xs, w_x = d.xs, d.w_x
        total = w_x.sum()
        # per distinct frequency
        px = p * xs
        psi_pxq = psi(px + q)
        ll = w_x @ (gammaln(px + q) - gammaln(px)) + total * (q * np.log(v) - gammaln(q))
        ll += p * d.sum_wx_log_xm - d.sum_w_log_m
        g_p = (w_x * xs) @ (psi_pxq - psi(px)) + d.sum_wx_log_xm
        g_q = w_x @ psi_pxq + total * (np.log(v) - psi(q))
        g_v = total * q / v
        # per row: ln(xm + v)
        log_xm_v, inv_xm_v = np.log(d.xm + v), 1.0 / (d.xm + v)
        w_log, wx_log = dot(d.w, log_xm_v), dot(d.wx, log_xm_v)
        ll -= p * wx_log + q * w_log
        g_p -= wx_log
        g_q -= w_log
        g_v -= p * dot(d.wx, inv_xm_v) + q * dot(d.w, inv_xm_v)
        grad = np.array([g_p * p, g_q * q, g_v * v])
        return -float(ll), -grad

    def predict_spend(self, frequency: Any, monetary_value: Any) -> np.ndarray:
        """Expected mean order value of each customer, given their orders so far.

        ``p (v + x m) / (p x + q - 1)``: a weighted mean of the population mean ``p v / (q - 1)``
        (what a customer with frequency 0 gets) and the customer's own mean ``m``; infinite where
        ``p x + q <= 1``.
        """
        params = self._check_fitted()
        x, m = check_spend(frequency, monetary_value)
        p, q, v = params["p"], params["q"], params["v"]
        m = np.where(x > 0, m, 0.0)
        denominator = p * x + q - 1
        # The expectation is infinite when p x + q <= 1 (only possible for q < 1 and few orders).
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator > 0, p * (v + x * m) / denominator, np.inf)

    def predict_population_mean(self) -> float:
        """The mean order value over all customers, ``p v / (q - 1)`` (infinite when q <= 1)."""
        params = self._check_fitted()
        return params["p"] * params["v"] / (params["q"] - 1) if params["q"] > 1 else float("inf")


def check_spend(frequency: Any, monetary_value: Any) -> tuple[np.ndarray, np.ndarray]:
    x = as_vector("frequency", frequency)
    m = np.array(monetary_value, dtype=np.float64, ndmin=1)
    if m.shape == x.shape:
        # Customers without repeat orders have no mean repeat-order value: NaN is fine there.
        m[(x == 0) & np.isnan(m)] = 0.0
    m = as_vector("monetary_value", m)
    same_length(frequency=x, monetary_value=m)
    check_nonnegative("frequency", x)
    check_whole("frequency", x)
    bad = (x > 0) & (m <= 0)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ValueError(f"monetary_value must be > 0 for customers with repeat orders: {int(bad.sum()):,} "
                         f"value(s), the first at position {where} ({m[where]}).")
    return x, m


def _weighted_correlation(x: np.ndarray, m: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    dx, dm = x - dot(w, x) / total, m - dot(w, m) / total
    spread = math.sqrt(dot(w, dx**2) * dot(w, dm**2))
    return dot(w, dx * dm) / spread if spread > 0 else 0.0
