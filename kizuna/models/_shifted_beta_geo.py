"""Shifted-beta-geometric: retention of a subscription cohort (Fader & Hardie 2007)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaln, psi

from kizuna.models._base import BaseModel, as_vector, check_nonnegative, single_threaded_blas

__all__ = ["ShiftedBetaGeo"]

# A failed fit whose mean cancellation probability per period, α / (α + β), is below this failed
# because (next to) nobody cancels.
NO_CANCELLATION = 1e-6


class ShiftedBetaGeo(BaseModel):
    """The shifted-beta-geometric (sBG) model of Fader & Hardie (2007), "How to project customer retention".

    Each subscriber cancels at the end of any period with a fixed probability θ, and θ ~ Beta(α, β)
    across subscribers. Periods are whatever the renewals are: months, years. For a duration T
    (the period in which a subscriber cancels)::

        P(T = t) = B(α + 1, β + t - 1) / B(α, β)        t = 1, 2, …
        S(t)     = P(T > t) = B(α, β + t) / B(α, β)     S(0) = 1

    Because the subscribers who stay are more and more those with a low θ, the retention rate
    ``S(t) / S(t - 1) = (β + t - 1) / (α + β + t - 1)`` rises with tenure.

    Attributes
    ----------
    params_ : dict
        ``alpha``, ``beta``; set by ``fit``.
    standard_errors_, log_likelihood_, converged_ : as for :class:`BetaGeo`
    n_customers_ : float
        The cohort's size, ``alive[0]``.

    Examples
    --------
    >>> model = ShiftedBetaGeo().fit([1000, 631, 468, 382, 326, 289, 262, 241])
    >>> {k: round(v, 3) for k, v in model.params_.items()}
    {'alpha': 0.704, 'beta': 1.182}
    >>> model.predict_retention(3).round(3)
    array([1.   , 0.627, 0.474, 0.388])
    """

    _param_names = ("alpha", "beta")

    def fit(self, alive: Any) -> ShiftedBetaGeo:
        """Fit by maximum likelihood on one cohort.

        Parameters
        ----------
        alive : array-like
            Subscribers still active at the start of periods 0, 1, …, n (``alive[0]`` is the
            cohort's size; non-increasing). Counts or percentages give the same parameters; only
            counts give meaningful standard errors (a percentage is a cohort of 100).

        Returns
        -------
        self

        Raises
        ------
        ModelFitError
            Nobody cancelled (``reason`` "no_cancellation": the cancellation probability runs to
            0); only one period observed ("not_identified": one retention rate cannot tell two
            parameters apart); an optimum at the edge of the search range or without standard
            errors. The model stays unfitted.
        """
        n = as_vector("alive", alive)
        check_nonnegative("alive", n)
        if len(n) < 2:
            raise ValueError(f"alive needs at least two values (the cohort's size and the subscribers left after "
                             f"one period), got {len(n)}.")
        if n[0] <= 0:
            raise ValueError("alive[0], the size of the cohort, must be > 0.")
        rising = np.diff(n) > 0
        if rising.any():
            at = int(np.flatnonzero(rising)[0]) + 1
            raise ValueError(f"alive must not increase from one period to the next (a cohort only loses "
                             f"subscribers): alive[{at}] = {n[at]:g} > alive[{at - 1}] = {n[at - 1]:g}.")
        if n[-1] == n[0]:
            raise self._fail("no_cancellation", "nobody cancelled in the periods observed, so the cancellation "
                             "probability cannot be estimated.", parameters=("alpha", "beta"))
        if len(n) < 3:
            raise self._fail("not_identified", "only one period observed; two parameters cannot be told apart "
                             "from one retention rate. Give at least two periods.", parameters=("alpha", "beta"))
        churned = -np.diff(n)
        with single_threaded_blas():
            self._optimize((churned, n[-1:]), np.zeros(2), float(n[0]))
        return self

    def _degenerate_reason(self, params: dict[str, float]) -> tuple[str, tuple[str, ...], str] | None:
        """"no_cancellation" when the failed fit's mean cancellation probability α / (α + β) runs to 0."""
        mean = params["alpha"] / (params["alpha"] + params["beta"])
        if mean < NO_CANCELLATION:
            return "no_cancellation", ("alpha", "beta"), (f"(next to) nobody cancels (the mean cancellation "
                                                          f"probability α / (α + β) = {mean:.2g} runs to 0)")
        return None

    def _objective(self, theta: np.ndarray, data: tuple[np.ndarray, ...]) -> tuple[float, np.ndarray]:
        churned, (survivors,) = data
        alpha, beta = np.exp(theta)
        t = np.arange(1, len(churned) + 1, dtype=np.float64)
        k = float(len(churned))
        base = betaln(alpha, beta)
        log_p = betaln(alpha + 1, beta + t - 1) - base
        log_s = betaln(alpha, beta + k) - base
        ll = churned @ log_p + survivors * log_s
        psi_a, psi_b, psi_ab = psi(alpha), psi(beta), psi(alpha + beta)
        psi_abt = psi(alpha + beta + t)
        d_alpha = churned @ (psi(alpha + 1) - psi_abt - psi_a + psi_ab) + survivors * (psi_ab - psi(alpha + beta + k))
        d_beta = (churned @ (psi(beta + t - 1) - psi_abt - psi_b + psi_ab)
                  + survivors * (psi(beta + k) - psi(alpha + beta + k) - psi_b + psi_ab))
        return -float(ll), -np.array([d_alpha * alpha, d_beta * beta])

    def predict_retention(self, periods: int) -> np.ndarray:
        """Survival S(t) for t = 0, 1, …, periods: the share of the cohort still subscribed at the start of t.

        ``S(0) = 1``; multiply by the cohort's size for the number of subscribers.
        """
        params = self._check_fitted()
        t = _periods(periods, start=0)
        alpha, beta = params["alpha"], params["beta"]
        return np.exp(betaln(alpha, beta + t) - betaln(alpha, beta))

    def predict_retention_rate(self, periods: int) -> np.ndarray:
        """Retention rate r(t) = S(t) / S(t - 1) = (β + t - 1) / (α + β + t - 1) for t = 1, …, periods."""
        params = self._check_fitted()
        t = _periods(periods, start=1)
        alpha, beta = params["alpha"], params["beta"]
        return (beta + t - 1) / (alpha + beta + t - 1)

    def predict_churn_probability(self, periods: int) -> np.ndarray:
        """P(T = t) for t = 1, …, periods: the share of the cohort that cancels in period t."""
        params = self._check_fitted()
        t = _periods(periods, start=1)
        alpha, beta = params["alpha"], params["beta"]
        return np.exp(betaln(alpha + 1, beta + t - 1) - betaln(alpha, beta))


def _periods(periods: Any, start: int) -> np.ndarray:
    if isinstance(periods, bool) or not isinstance(periods, int | np.integer) or periods < 0:
        raise ValueError(f"periods must be a whole number >= 0, got {periods!r}.")
    return np.arange(start, int(periods) + 1, dtype=np.float64)
