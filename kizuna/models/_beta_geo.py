"""BG/NBD: repeat purchases and drop-out of customers without a contract (Fader, Hardie & Lee 2005),
and its variant MBG/NBD, where a customer may also drop out right after the first purchase."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy.special import betaln, expit, gammaln, hyp2f1, psi

from kizuna._errors import Phrase
from kizuna.models._base import (
    BaseModel,
    as_counts,
    as_vector,
    check_frt,
    check_nonnegative,
    compress,
    dot,
    factorize,
    softplus_sigmoid,
    warn,
)

__all__ = ["BetaGeo", "ModifiedBetaGeo"]


class _Data(NamedTuple):
    """Unique (frequency, recency, T) rows with weights, arranged for BetaGeo._objective."""

    xs: np.ndarray  # distinct frequencies
    w_x: np.ndarray  # customers per distinct frequency
    Ts: np.ndarray  # distinct T
    w_T: np.ndarray  # customers per distinct T
    wx_T: np.ndarray  # their repeat purchases per distinct T
    ts: np.ndarray  # distinct recency of the rows below
    xi: np.ndarray  # rows that may have dropped out (BG: repeat buyers; MBG: all): index into xs
    Ti: np.ndarray  # … into Ts
    ti: np.ndarray  # … into ts
    x: np.ndarray  # … their frequency
    w: np.ndarray  # … their weight


# Fewer customers than this cannot pin down four parameters; the fit runs, with a warning.
MIN_CUSTOMERS = 100
# A failed fit whose mean drop-out probability per repeat purchase, a / (a + b), is below this
# failed because the data show no drop-out at all (one in a million purchases is none).
NO_DROPOUT = 1e-6


class BetaGeo(BaseModel):
    """The BG/NBD model of Fader, Hardie & Lee (2005), "Counting your customers the easy way".

    While active, a customer buys at a Poisson rate λ ~ Gamma(r, α); after each repeat purchase
    the customer drops out for good with probability p ~ Beta(a, b).

    The data are one row per customer, in any time unit (days, weeks) used for all three:

    * ``frequency`` — number of repeat purchases (orders after the first one),
    * ``recency`` — age of the customer at the last purchase (time from first to last order;
      0 when frequency is 0),
    * ``T`` — age of the customer at the end of the observation period (time since the first order).

    Attributes
    ----------
    params_ : dict
        ``r``, ``alpha`` (in the time unit of the data), ``a``, ``b``; set by ``fit``.
    standard_errors_ : dict
        From the inverse Hessian of the negative log-likelihood at the optimum.
    log_likelihood_ : float
        The maximised log-likelihood (as in the paper: -9582.4 on CDNOW).
    converged_ : bool
    n_customers_ : float
        Customers fitted (sum of the weights).

    Examples
    --------
    The CDNOW summary of the paper (2,357 customers, weeks; in tests/data):

    >>> cdnow = np.genfromtxt("cdnow_customers_summary.csv", delimiter=",", names=True)  # doctest: +SKIP
    >>> model = BetaGeo().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])  # doctest: +SKIP
    >>> {k: round(v, 3) for k, v in model.params_.items()}  # doctest: +SKIP
    {'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426}
    >>> model.predict_purchases(39, frequency=2, recency=30.43, T=38.86).round(3)  # doctest: +SKIP
    array([1.226])
    >>> model.predict_alive(frequency=2, recency=30.43, T=38.86).round(3)  # doctest: +SKIP
    array([0.727])
    """

    _param_names = ("r", "alpha", "a", "b")
    # 0: drop-out only after a repeat purchase (BG/NBD); 1: also after the first one (MBG/NBD), which
    # turns b + x - 1 into b + x throughout.
    _shift = 0

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> BetaGeo:
        """Fit by maximum likelihood.

        Parameters
        ----------
        frequency, recency, T : array-like
            One value per row (see the class docstring). Impossible values (negative, recency > T,
            non-whole frequency, NaN, recency > 0 with frequency 0) raise ValueError.
        weights : array-like, optional
            Number of customers each row stands for, when the data are already aggregated (one row
            per distinct frequency, recency, T with a count). Default: one customer per row.

        Returns
        -------
        self

        Raises
        ------
        ModelFitError
            When the data cannot identify the model: every T is zero (``reason`` "no_time"), nobody
            has a repeat purchase ("no_repeat_buyers"), nobody seems to drop out (the drop-out
            probability runs to 0: "no_dropout" — customers who all keep buying regularly for
            years), or the optimum runs to the edge of the search range ("diverged") or has no
            standard errors ("not_identified"). The model stays unfitted.

        Warns
        -----
        ModelFitWarning
            Fewer than 100 customers.
        ConvergenceWarning
            When the optimiser stopped before converging (``converged_`` False).
        """
        x, t_x, T_ = check_frt(frequency, recency, T)
        w = as_counts(weights, len(x))
        if len(x) == 0:
            raise ValueError("no customers to fit: frequency, recency and T are empty.")
        (x, t_x, T_), w = compress((x, t_x, T_), w)
        total = float(w.sum())
        if total == 0:
            raise ValueError("every weight is 0: there are no customers to fit.")
        self._warn_about_data(x, T_, w, total)
        # Start from r = 1 and the observed purchase rate (r / α is the mean rate).
        rate = max(dot(w, x), 1.0) / max(dot(w, T_), 1e-9)
        start = np.log([1.0, 1.0 / rate, 1.0, 1.0]).clip(-10, 10)
        self._fit_rows((x, t_x, T_), w, start)
        return self

    def _warn_about_data(self, x: np.ndarray, T: np.ndarray, w: np.ndarray, total: float) -> None:
        name = type(self).__name__
        if not np.any(T > 0):
            raise self._fail("no_time", "every customer has T = 0 (observed for no time at all), so the data hold "
                             "no information on the purchase rate. Check the as-of date.")
        if not np.any(x > 0):
            raise self._fail("no_repeat_buyers", "no customer has a repeat purchase (frequency is 0 for all), so the "
                             "drop-out parameters a and b cannot be estimated. Use a longer observation period.",
                             parameters=("a", "b"))
        if total < MIN_CUSTOMERS:
            warn(Phrase.of("note.few_customers", model=name, n=f"{total:g}", least=MIN_CUSTOMERS))

    def _degenerate_reason(self, params: dict[str, float]) -> tuple[str, tuple[str, ...], str] | None:
        """"no_dropout" when the failed fit's mean drop-out probability a / (a + b) runs to 0."""
        a, b = params["a"], params["b"]
        if a / (a + b) < NO_DROPOUT:
            return "no_dropout", ("a", "b"), (f"nobody seems to drop out (the mean drop-out probability a / (a + b) "
                                              f"= {a / (a + b):.2g} runs to 0)")
        return None

    def _prepare(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> _Data:
        """The unique rows arranged for _objective: terms that depend on x or T alone are computed
        once per distinct value; only the mixture term of those who may have dropped out is computed
        row by row."""
        xs, xi = factorize(x)
        Ts, Ti = factorize(T)
        repeat = x > 0 if self._shift == 0 else np.ones(len(x), dtype=bool)
        ts, ti = factorize(t_x[repeat])
        return _Data(xs=xs, w_x=np.bincount(xi, w, len(xs)), Ts=Ts, w_T=np.bincount(Ti, w, len(Ts)),
                     wx_T=np.bincount(Ti, w * x, len(Ts)), ts=ts,
                     xi=xi[repeat], Ti=Ti[repeat], ti=ti, x=x[repeat], w=w[repeat])

    def _objective(self, theta: np.ndarray, data: tuple[np.ndarray, ...]) -> tuple[float, np.ndarray]:
        """Negative log-likelihood (equation 6 of the paper) and its gradient in log-parameters.

        Per customer: ``A1 + A2 + A3 + [x > 0] log(1 + exp(A4 - A3))`` with
        ``A1 = ln Γ(r+x) - ln Γ(r) + r ln α``, ``A2 = ln B(a, b+x) - ln B(a, b)``,
        ``A3 = -(r+x) ln(α+T)``, ``A4 = ln a - ln(b+x-1) - (r+x) ln(α+t_x)``. MBG/NBD: b+x+1 in A2,
        b+x in A4, and the last term for every customer.
        """
        d = data if isinstance(data, _Data) else self._prepare(*data)
        r, alpha, a, b = np.exp(theta)
        xs, w_x = d.xs, d.w_x
        total = w_x.sum()
        log_alpha = np.log(alpha)
        # A1 + A2, per distinct x
        bxs = b + xs + self._shift
        psi_ab, psi_abx = psi(a + b), psi(a + bxs)
        ll = w_x @ (gammaln(r + xs) + betaln(a, bxs)) + total * (r * log_alpha - gammaln(r) - betaln(a, b))
        g_r = w_x @ psi(r + xs) + total * (log_alpha - psi(r))
        g_alpha = total * r / alpha
        g_a = w_x @ (psi_ab - psi_abx)
        g_b = w_x @ (psi_ab + psi(bxs) - psi(b) - psi_abx)
        # A3, per distinct T
        log_T, inv_T = np.log(alpha + d.Ts), 1.0 / (alpha + d.Ts)
        w_rx_T = r * d.w_T + d.wx_T  # sum of w (r + x) per T
        ll -= dot(w_rx_T, log_T)
        g_r -= dot(d.w_T, log_T)
        g_alpha -= dot(w_rx_T, inv_T)
        # log(1 + exp(A4 - A3)) for those who may have dropped out, row by row
        inv_bx1 = 1.0 / (np.maximum(bxs - 1.0, b))  # 1 / (b + x - 1); unused for BG rows with x = 0
        w, rx = d.w, r + d.x
        log_ratio = log_T[d.Ti] - np.log(alpha + d.ts)[d.ti]  # ln(α+T) - ln(α+t_x)
        log_odds = (np.log(a) + np.log(inv_bx1))[d.xi] + rx * log_ratio
        # the share of "dropped out after the last purchase" in each customer's likelihood
        softplus, dropped = softplus_sigmoid(log_odds)
        w_dropped = w * dropped
        ll += dot(w, softplus)
        g_r += dot(w_dropped, log_ratio)
        g_alpha += dot(w_dropped * rx, inv_T[d.Ti] - (1.0 / (alpha + d.ts))[d.ti])
        g_a += w_dropped.sum() / a
        g_b -= np.bincount(d.xi, w_dropped, len(xs)) @ inv_bx1
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
        return -float(ll), -grad

    # -- predictions --------------------------------------------------------------------------------
    def _log_dropout_odds(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """log of P(dropped out | data) / P(alive | data); -inf where dropping out was impossible (BG/NBD:
        no repeat purchase)."""
        p = self.params_
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        b_x1 = np.maximum(b + x - 1.0 + self._shift, b)
        odds = np.log(a) - np.log(b_x1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return odds if self._shift else np.where(x > 0, odds, -np.inf)

    def predict_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """P(alive): probability that each customer has not dropped out by T (1 for frequency 0).

        ``1 / (1 + a / (b + x - 1) · ((α + T) / (α + t_x))^(r + x))``, computed on the log scale.
        """
        self._check_fitted()
        x, t_x, T_ = check_frt(frequency, recency, T)
        return expit(-self._log_dropout_odds(x, t_x, T_))

    def predict_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Expected number of purchases of each customer in the next `t` time units, given the data.

        Equation (10) of Fader, Hardie & Lee (2005), lifetimes'
        ``conditional_expected_number_of_purchases_up_to_time``::

            (a + b + x - 1) / (a - 1) · [1 - ((α + T) / (α + T + t))^(r + x)
                                             · 2F1(r + x, b + x; a + b + x - 1; t / (α + T + t))]
            · P(alive)

        The Gauss hypergeometric function is taken in Euler's transformed form where the direct
        one overflows (many purchases, long horizon), and ``1 - exp(·)`` by ``expm1``.

        Parameters
        ----------
        t : float or array-like
            Horizon, in the time unit of the data; broadcast against the customers.
        frequency, recency, T : array-like
        """
        params = self._check_fitted()
        x, t_x, T_ = check_frt(frequency, recency, T)
        t_ = as_vector("t", t)
        check_nonnegative("t", t_)
        if t_.size == 1:
            t_ = t_.reshape(())
        r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
        s = self._shift  # MBG/NBD: b + x + 1 and a + b + x (Batislam, Denizel & Filiztekin 2007)
        log_hyp = _log_hyp2f1(r + x, b + x + s, a + b + x - 1 + s, t_ / (alpha + T_ + t_))
        log_term = log_hyp + (r + x) * (np.log(alpha + T_) - np.log(alpha + T_ + t_))
        expected = (a + b + x - 1 + s) / (a - 1) * -np.expm1(log_term)
        return expected * expit(-self._log_dropout_odds(x, t_x, T_))

    def predict_unconditional(self, t: Any) -> np.ndarray:
        """Expected number of repeat purchases in (0, t] of a new customer (equation 9 of the paper)."""
        params = self._check_fitted()
        t_ = as_vector("t", t)
        check_nonnegative("t", t_)
        r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
        log_hyp = _log_hyp2f1(r, b, a + b - 1, t_ / (alpha + t_))
        return (a + b - 1) / (a - 1) * -np.expm1(r * (np.log(alpha) - np.log(alpha + t_)) + log_hyp)


def _log_hyp2f1(a: Any, b: Any, c: Any, z: Any) -> np.ndarray:
    """log 2F1(a, b; c; z) for 0 <= z < 1, through Euler's transformation where the direct value overflows.

    2F1(a, b; c; z) = (1 - z)^(c - a - b) · 2F1(c - a, c - b; c; z): for many purchases the
    parameters of the transformed series are small against c, and its value stays moderate.
    """
    a, b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, c, z)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        direct = hyp2f1(a, b, c, z)
        out = np.log(direct)
        bad = ~np.isfinite(out)
        if bad.any():
            ab, bb, cb, zb = a[bad], b[bad], c[bad], z[bad]
            out[bad] = np.log(hyp2f1(cb - ab, cb - bb, cb, zb)) + (cb - ab - bb) * np.log1p(-zb)
    return out


class ModifiedBetaGeo(BetaGeo):
    """The MBG/NBD model (Batislam, Denizel & Filiztekin 2007): BG/NBD where a customer may also drop
    out right after the first purchase, with probability p.

    So a customer without repeat purchases is not certainly alive (P(alive) < 1 for frequency 0),
    which BG/NBD assumes. Same data, parameters, attributes and methods as :class:`BetaGeo`.

    Examples
    --------
    >>> model = ModifiedBetaGeo().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])  # doctest: +SKIP
    >>> {k: round(v, 3) for k, v in model.params_.items()}  # doctest: +SKIP
    {'r': 0.525, 'alpha': 6.183, 'a': 0.891, 'b': 1.614}
    >>> model.predict_alive(frequency=0, recency=0, T=38.86).round(3)  # doctest: +SKIP
    array([0.39])
    """

    _shift = 1

    def predict_unconditional(self, t: Any) -> np.ndarray:
        """Expected number of repeat purchases in (0, t] of a new customer."""
        params = self._check_fitted()
        t_ = as_vector("t", t)
        check_nonnegative("t", t_)
        r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
        log_hyp = _log_hyp2f1(r, b + 1, a + b, t_ / (alpha + t_))
        return b / (a - 1) * -np.expm1(r * (np.log(alpha) - np.log(alpha + t_)) + log_hyp)
