"""Data drawn from the models themselves, for tests and benchmarks (parameter recovery, speed)."""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_beta_geo", "simulate_gamma_gamma", "simulate_shifted_beta_geo"]


def simulate_beta_geo(n: int, T: float | np.ndarray, r: float, alpha: float, a: float, b: float,
                      rng: np.random.Generator, *, modified: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) of `n` customers drawn from the BG/NBD model, each observed for T.

    Given its rate λ, a customer's repeat purchases in (0, T] are N ~ Poisson(λT) at uniform
    times; it drops out right after its J-th repeat purchase, J ~ Geometric(p). So x = min(N, J),
    and the x-th of N uniform times is T · Beta(x, N - x + 1). `modified`: the MBG/NBD model,
    where J counts from 0 (drop-out right after the first purchase).
    """
    T_ = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    rate = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    purchases = rng.poisson(rate * T_)
    lives = rng.geometric(p) - (1 if modified else 0)
    x = np.minimum(purchases, lives)
    recency = np.zeros(n)
    some = x > 0
    recency[some] = T_[some] * rng.beta(x[some], purchases[some] - x[some] + 1)
    return x.astype(np.float64), recency, T_


def simulate_gamma_gamma(frequency: np.ndarray, p: float, q: float, v: float,
                         rng: np.random.Generator) -> np.ndarray:
    """Mean order value of customers with the given frequency (> 0) under the Gamma-Gamma model.

    ν ~ Gamma(q, rate v); each order ~ Gamma(p, rate ν), so the mean of x orders ~ Gamma(p x, rate x ν).
    """
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(q, 1.0 / v, len(x))
    return rng.gamma(p * x, 1.0 / (x * nu))


def simulate_shifted_beta_geo(n: int, periods: int, alpha: float, beta: float,
                              rng: np.random.Generator) -> np.ndarray:
    """Subscribers of a cohort of `n` still active at the start of periods 0 … `periods` (sBG model)."""
    theta = rng.beta(alpha, beta, n)
    lifetime = rng.geometric(theta)  # the period in which each one cancels
    return np.array([(lifetime > t).sum() for t in range(periods + 1)], dtype=np.float64)
